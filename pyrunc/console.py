"""Terminals: the pty made inside the container, the console socket, and the
foreground proxy.

The pty comes from the container's own devpts instance (its /dev/pts/ptmx),
opened by the container's process itself after it entered the container's
mount namespace.  The slave becomes that process's controlling terminal and
stdio (and, for the init, /dev/console); the master leaves over a unix
socket as one SCM_RIGHTS fd, the way conmon and containerd's shim read it:
either the caller's `--console-socket`, or a socketpair whose other end the
foreground `run`/`exec` reads to proxy the user's own terminal.

Only built-in modules here (`_socket`, `fcntl`): this runs in the init after
pivot_root, where nothing new can be imported.
"""
import os

from .errors import PyruncError

TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


class ConsoleError(PyruncError):
    pass


# -- checks and channels (runtime side) -----------------------------------

def check_terminal(terminal, detach, console_socket):
    """runc's rules for combining process.terminal, detaching and
    --console-socket (create always detaches)."""
    if detach and terminal and not console_socket:
        raise ConsoleError("cannot allocate tty if pyrunc will detach without setting console socket")
    if (not detach or not terminal) and console_socket:
        raise ConsoleError("cannot use console socket if pyrunc will not detach or allocate tty")


def connect_socket(path):
    """A connected AF_UNIX stream socket to the caller's console socket."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise ConsoleError("connect to console socket %s: %s" % (path, e.strerror or e)) from None
    return s.detach()


def socket_pair():
    """(runtime end, container end), both close-on-exec."""
    from .channel import socketpair

    return socketpair()


def send_fd(sock_fd, fd, name="/dev/pts/ptmx"):
    from .channel import send_fd

    send_fd(sock_fd, fd, name.encode())


def recv_fd(sock_fd):
    """The one fd sent over `sock_fd` (as go-runc's ReceiveMaster reads it)."""
    from .channel import recv_fd

    fd, _ = recv_fd(sock_fd)
    if fd is None:
        raise ConsoleError("container did not send its console (pty master)")
    return fd


# -- the pty (container side) ----------------------------------------------

def open_pty():
    """-> (master fd, slave fd, slave path) from the container's devpts."""
    import fcntl

    master = -1
    for path in ("/dev/pts/ptmx", "/dev/ptmx"):
        try:
            master = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            break
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConsoleError("open %s: %s" % (path, e.strerror)) from None
    if master < 0:
        raise ConsoleError("no /dev/pts/ptmx in the container (process.terminal needs a devpts mount)")
    try:
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
        num = int.from_bytes(fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"), "little")
        path = "/dev/pts/%d" % num
        try:
            # The peer of this master, never whatever a path lookup finds.
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, path


def set_size(fd, rows, cols):
    import fcntl

    ws = rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + b"\0\0\0\0"
    fcntl.ioctl(fd, TIOCSWINSZ, ws)


def get_size(fd):
    """-> (rows, cols), or None when `fd` is not a terminal."""
    import fcntl

    try:
        ws = fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    return int.from_bytes(ws[0:2], "little"), int.from_bytes(ws[2:4], "little")


def bind_console(slave_fd):
    """Bind the slave onto /dev/console (made if missing), as runc does.
    Runs after pivot_root: '/' is the container's root."""
    import stat

    from . import linux

    try:
        target = os.open("/dev/console", linux.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = os.open("/dev/console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)
        target = os.open("/dev/console", linux.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(target).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise ConsoleError("/dev/console in the container is neither a file nor a device")
        from .rootfs import bind_fd_onto_fd

        bind_fd_onto_fd(slave_fd, target)  # no path lookup (CVE-2025-52565)
    finally:
        os.close(target)


def setup_console(sock_fd, console_size=None, mount_console=False):
    """In the container's process (a session leader): make a pty, the slave
    as controlling terminal and stdio, send the master over `sock_fd`."""
    import fcntl

    master, slave, _ = open_pty()
    try:
        if console_size is not None and console_size.height and console_size.width:
            set_size(master, console_size.height, console_size.width)
        if mount_console:
            bind_console(slave)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        fcntl.ioctl(0, TIOCSCTTY, 0)
        send_fd(sock_fd, master)
    finally:
        os.close(master)
        if slave > 2:
            os.close(slave)
        os.close(sock_fd)


# -- the foreground proxy (runtime side) -------------------------------------

class TerminalProxy:
    """Copies the user's stdin to the pty master and the master to stdout
    until the container's process exits; the user's terminal is in raw
    mode meanwhile and its size follows onto the pty (SIGWINCH)."""

    __slots__ = ("master", "saved", "stdin_open")

    def __init__(self, master):
        self.master = master
        self.saved = None
        self.stdin_open = True

    def __enter__(self):
        self.resize()
        if os.isatty(0):
            import termios

            self.saved = termios.tcgetattr(0)
            raw = termios.tcgetattr(0)
            # cfmakeraw
            raw[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP |
                        termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
            raw[1] &= ~termios.OPOST
            raw[2] &= ~(termios.CSIZE | termios.PARENB)
            raw[2] |= termios.CS8
            raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
            raw[6][termios.VMIN] = 1
            raw[6][termios.VTIME] = 0
            termios.tcsetattr(0, termios.TCSANOW, raw)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSANOW, self.saved)
        return False

    def resize(self, *_):
        size = get_size(0)
        if size is not None:
            try:
                set_size(self.master, *size)
            except OSError:
                pass

    def run(self, pid):
        """Proxy until `pid` (our child) exits; return its exit code."""
        import _signal as signal
        import select

        from .signals import forward_to

        forward_to(pid)
        signal.signal(signal.SIGWINCH, self.resize)  # the window size follows, not the signal
        pidfd = os.pidfd_open(pid)
        try:
            poller = select.poll()
            poller.register(self.master, select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            poller.register(0, select.POLLIN)
            while True:
                for fd, ev in poller.poll():
                    if fd == pidfd:
                        self._drain()
                        return wait_exit_code(pid)
                    if fd == 0:
                        if not self._copy(0, self.master):
                            poller.unregister(0)
                    elif not self._copy(self.master, 1):
                        poller.unregister(self.master)
        finally:
            os.close(pidfd)

    def _copy(self, src, dst):
        try:
            data = os.read(src, 65536)
        except OSError:  # EIO: the last slave closed
            data = b""
        if not data:
            return False
        while data:
            try:
                n = os.write(dst, data)
            except OSError:
                return False
            data = data[n:]
        return True

    def _drain(self):
        """Output the process wrote just before exiting."""
        os.set_blocking(self.master, False)
        try:
            while self._copy(self.master, 1):
                pass
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(self.master, True)


def wait_exit_code(pid):
    """Reap `pid`: its exit status, or 128+signal when killed."""
    from .signals import exit_code

    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        return exit_code(status)


def console_channel(process, opts):
    """For `create`: the fd the init sends its pty master over (owned by the
    caller of this function), or None without a terminal.  `opts.console_fd`
    (a foreground `run`'s socketpair end) stands in for --console-socket."""
    given = getattr(opts, "console_fd", None)
    if given is not None:
        return os.dup(given) if process.terminal else None
    check_terminal(process.terminal, True, opts.console_socket)
    return connect_socket(opts.console_socket) if process.terminal else None
