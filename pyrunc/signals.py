"""Signal names and numbers as runc accepts them: KILL, SIGKILL, 9.

Uses the `_signal` builtin: the `signal` module wraps it in enums, and
importing `enum` costs ~8 ms on a verb that takes ~15."""
import _signal

from . import lazyos as os  # os without its import cost (see lazyos): kill parses signals here
from .errors import PyruncError

_NAMES = {}


def names():
    """SIG* name -> number (made on first use: only kill parses names)."""
    if not _NAMES:
        _NAMES.update((n, getattr(_signal, n)) for n in dir(_signal)
                      if n.startswith("SIG") and not n.startswith("SIG_") and n not in ("SIGRTMIN", "SIGRTMAX"))
    return _NAMES


def parse_signal(text):
    if text.isdigit():
        num = int(text)
        if 0 <= num < _signal.NSIG:  # 0: runc sends it (an existence check)
            return num
        raise PyruncError("invalid signal: %s" % text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in names():
        return names()[name]
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
        return _realtime(name)
    raise PyruncError("unknown signal %r" % text)


def _realtime(name):
    base = _signal.SIGRTMIN if name.startswith("SIGRTMIN") else _signal.SIGRTMAX
    off = name[8:]
    if not off:
        return base
    try:
        return base + int(off)
    except ValueError:
        raise PyruncError("unknown signal %r" % name) from None


# -- forwarding (foreground run/exec) ------------------------------------------

# What a foreground run/exec passes on to the container's process; a child
# forked by the runtime puts these back to the default (default_signals).
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def default_signals():
    """A forked child drops the handlers a foreground run/exec installed
    to forward signals: the container's processes get the default ones."""
    for name in FORWARDED:
        num = getattr(_signal, name)
        if callable(_signal.getsignal(num)):  # ignored ones stay ignored (nohup)
            _signal.signal(num, _signal.SIG_DFL)


def forward_to(pid):
    """Send every FORWARDED signal pyrunc gets to `pid` from now on."""
    def forward(signum, frame):
        send_quietly(pid, signum)

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), forward)


def send_quietly(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class SignalForwarder:
    """Installed before the container's process exists: signals that come
    meanwhile are held and delivered once target() names the process (as
    runc queues them), instead of killing pyrunc halfway through."""

    __slots__ = ("pid", "pending")

    def __init__(self):
        self.pid = None
        self.pending = []
        for name in FORWARDED:
            _signal.signal(getattr(_signal, name), self._on_signal)

    def _on_signal(self, signum, frame):
        if self.pid is None:
            self.pending.append(signum)
        else:
            send_quietly(self.pid, signum)

    def target(self, pid):
        self.pid = pid
        for signum in self.pending:
            send_quietly(pid, signum)
        self.pending = []


def wait_forwarding_signals(pid):
    """Reap children until `pid` exits; return its code (128+sig if killed).
    Signals sent to pyrunc meanwhile go to `pid`."""
    forward_to(pid)
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if wpid == pid:
            return exit_code(status)


def exit_code(status):
    """A wait status as a shell reports it: the exit code, 128+signal."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
