"""The parent <-> child channel of create, exec and run: every message, who
sends it and when, in one place; and the one SCM_RIGHTS helper.

A channel is two pipes (one per direction) carrying `TAG [payload]\\n`
lines, plus, only where a child must hand the runtime a file descriptor
(an unprivileged runtime's seccomp notify fd), a unix socket pair for it.
Pipes, not a socket, for the lines: `_socket` is an extension module
(~0.5 ms to import) and most creates never pass an fd.

Messages (P = the runtime, S1 = stage 1 or exec's middle process, C = the
container's init or exec'd process; "create" / "exec" / "both"):

  tag  name           from -> to  when                                          payload
  U    USERNS_READY   S1 -> P     create: stage 1 unshared its user namespace   -
                                  (P writes its uid/gid maps)
  G    GO             P -> S1|C   both: id maps written, the cgroup (and        -
                                  resctrl group) joined by P: enter the
                                  namespaces now
  P    CHILD_PID      S1 -> P     both, two-stage spawn: the init / process     host pid
                                  was forked (S1 exits next)
  H    MOUNTS_READY   C -> P      create: the rootfs is mounted: P runs          -
                                  prestart/createRuntime hooks, moves netDevices
  h    HOOKS_DONE     P -> C      create: those hooks ran                       -
  S    STATE          P -> C      create: the state for createContainer and     JSON
                                  startContainer hooks
  N    NOTIFY_FD      C -> P      both: a SCMP_ACT_NOTIFY filter is loaded:     fd number
                                  P copies the fd (pidfd_getfd), or, from an    (or none: the fd
                                  unprivileged runtime, C sends it on the       is on the socket)
                                  fd socket first
  n    NOTIFY_TAKEN   P -> C      both: P has the notify fd (C closes its own,  -
                                  P hands it to linux.seccomp.listenerPath)
  R    READY          C -> P      create: everything before `start` is done     -
  C    COMMIT         P -> C      create: state.json and --pid-file written;    -
                                  C closes the channel and waits on exec.fifo
  E    ERROR          S1|C -> P   both: a child failed (and exits)              "<exit code> <text>"
  EOF                 either      the other side is gone; from an exec'd        -
                                  process (close-on-exec) it means execve
                                  succeeded

Everything a child may still need after it entered the container's mount
namespace is in this module or imported before (os only, `_socket` only
where the fd socket exists).
"""
import os
import sys

from .errors import PyruncError

USERNS_READY = "U"
GO = "G"
CHILD_PID = "P"
MOUNTS_READY = "H"
HOOKS_DONE = "h"
STATE = "S"
NOTIFY_FD = "N"
NOTIFY_TAKEN = "n"
READY = "R"
COMMIT = "C"
ERROR = "E"
EOF = "EOF"

NAMES = {USERNS_READY: "USERNS_READY", GO: "GO", CHILD_PID: "CHILD_PID", MOUNTS_READY: "MOUNTS_READY",
         HOOKS_DONE: "HOOKS_DONE", STATE: "STATE", NOTIFY_FD: "NOTIFY_FD", NOTIFY_TAKEN: "NOTIFY_TAKEN",
         READY: "READY", COMMIT: "COMMIT", ERROR: "ERROR", EOF: "EOF"}


class ChildError(PyruncError):
    """A child reported a failure (ERROR) or vanished (EOF) mid-protocol.
    `code` is the child's exit code (exec reports it as its own; create
    exits 1 whatever it is)."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Channel:
    """One end of the channel: a read fd, a write fd, and (optionally) the
    fd socket.  Both ends are built by pair()."""

    __slots__ = ("rfd", "wfd", "fd_sock", "_buf")
    trace = None  # a list to append ("send"|"recv", tag) to (tests; a debugging aid)

    def __init__(self, rfd, wfd, fd_sock=-1):
        self.rfd = rfd
        self.wfd = wfd
        self.fd_sock = fd_sock
        self._buf = b""

    def send(self, tag, payload=""):
        line = (tag + (" " + payload.replace("\n", "\\n") if payload else "") + "\n").encode()
        if Channel.trace is not None:
            Channel.trace.append(("send", tag))
        view = memoryview(line)
        while view:
            view = view[os.write(self.wfd, view):]

    def recv(self):
        """-> (tag, payload); (EOF, '') when the other side is gone.
        Linear in the line's length: only each new chunk is searched for
        the newline (a 20 MB state line took 11 s when the whole buffer
        was searched and copied once per 4 KiB read)."""
        chunks = [self._buf]
        found = b"\n" in self._buf
        while not found:
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                self._buf = b"".join(chunks)
                if Channel.trace is not None:
                    Channel.trace.append(("recv", EOF))
                return EOF, ""
            chunks.append(chunk)
            found = b"\n" in chunk
        line, self._buf = b"".join(chunks).split(b"\n", 1)
        tag, _, payload = line.decode(errors="replace").partition(" ")
        if Channel.trace is not None:
            Channel.trace.append(("recv", tag))
        return tag, payload.replace("\\n", "\n")

    def expect(self, tag):
        """The payload of the next message, which must be `tag`; an ERROR
        or EOF instead raises ChildError in the child's words."""
        got, payload = self.recv()
        if got != tag:
            unexpected(got, payload, NAMES.get(tag, tag))
        return payload

    # -- a child's failure ---------------------------------------------------
    def fail(self, exc):
        """Report `exc` (exit code and text) to the other side, then exit
        with that code."""
        code = getattr(exc, "exit_code", 1) or 1
        try:
            self.send(ERROR, "%d %s" % (code, describe(exc)))
        finally:
            os._exit(code)

    # -- passing an fd ---------------------------------------------------------
    def send_notify_fd(self, fd):
        """NOTIFY_FD for the seccomp notify fd `fd`: the number (the runtime
        copies it with pidfd_getfd), or the fd itself on the fd socket."""
        if self.fd_sock < 0:
            self.send(NOTIFY_FD, str(fd))
        else:
            send_fd(self.fd_sock, fd, b"N")  # on the socket before the runtime looks
            self.send(NOTIFY_FD)

    def received_fd(self):
        """The fd a NOTIFY_FD without a number came with."""
        fd, _ = recv_fd(self.fd_sock, 16)
        if fd is None:
            raise ChildError("the container process did not send its seccomp notify fd")
        return fd

    # -- ends ---------------------------------------------------------------------
    def close_read(self):
        if self.rfd >= 0:
            _close(self.rfd)
            self.rfd = -1

    def close(self):
        for fd in (self.rfd, self.wfd, self.fd_sock):
            if fd >= 0:
                _close(fd)
        self.rfd = self.wfd = self.fd_sock = -1


class Pair:
    """Both ends before the fork; each side keeps its own with parent() or
    child(), which close the other's."""

    __slots__ = ("p2c", "c2p", "sock")

    def __init__(self, with_fd_socket=False):
        self.p2c = os.pipe()
        self.c2p = os.pipe()
        self.sock = socketpair() if with_fd_socket else (-1, -1)

    def parent(self):
        _close(self.p2c[0])
        _close(self.c2p[1])
        if self.sock[1] >= 0:
            _close(self.sock[1])
        return Channel(self.c2p[0], self.p2c[1], self.sock[0])

    def child(self):
        _close(self.p2c[1])
        _close(self.c2p[0])
        if self.sock[0] >= 0:
            _close(self.sock[0])
        return Channel(self.p2c[0], self.c2p[1], self.sock[1])


def unexpected(tag, payload, wanted="a message"):
    if tag == ERROR:
        code, _, text = payload.partition(" ")
        # runc's prefix, which tools read first
        raise ChildError("unable to start container process: " + text, int(code) if code.isdigit() else 1)
    if tag == EOF:
        raise ChildError("container init exited unexpectedly")
    raise ChildError("unexpected message %s from container init (expected %s)" % (NAMES.get(tag, repr(tag)), wanted))


def describe(exc):
    """A child's exception as one line for the runtime to print."""
    if isinstance(exc, OSError) and exc.strerror:
        where = " %s" % exc.filename if exc.filename else ""
        return "%s%s: %s" % (type(exc).__name__ if not isinstance(exc, PyruncError) else "", where, exc.strerror)
    return str(exc) or type(exc).__name__


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


# -- SCM_RIGHTS: the one sender and receiver --------------------------------
# Used by the channel's fd socket, the console (pty master) and the seccomp
# listener handoff.  `_socket` is imported when used: after pivot_root it
# must already be loaded (the init's preload does it when it will be needed).

def socketpair():
    """(one end, the other) of an AF_UNIX stream socket pair, close-on-exec."""
    import _socket

    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return a.detach(), b.detach()


def send_fd(sock_fd, fd, data=b"\0"):
    """One message on the connected unix socket `sock_fd` (not closed):
    `data` (a stream socket needs at least one byte for the ancillary data
    to travel) with `fd` attached."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, sock_fd)
    try:
        s.sendmsg([data or b"\0"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, int(fd).to_bytes(4, sys.byteorder, signed=True))])
    finally:
        s.detach()


def recv_fd(sock_fd, bufsize=4096):
    """-> (fd or None, data) from one message on `sock_fd` (not closed);
    the fd is close-on-exec; extra fds are closed."""
    fds, data = recv_fds(sock_fd, bufsize, 8)
    for extra in fds[1:]:
        os.close(extra)
    return (fds[0] if fds else None), data


def recv_fds(sock_fd, bufsize=4096, max_fds=16):
    """-> ([fds], data) from one message on `sock_fd` (not closed), the
    fds close-on-exec (at most max_fds travel)."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, sock_fd)
    try:
        data, anc, _, _ = s.recvmsg(bufsize, _socket.CMSG_SPACE(4 * max_fds), _socket.MSG_CMSG_CLOEXEC)
    finally:
        s.detach()
    fds = []
    for level, kind, payload in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4)]
    return fds, data
