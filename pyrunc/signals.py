"""Signal names and numbers as runc accepts them: KILL, SIGKILL, 9."""
import signal

from .errors import PyruncError


def parse_signal(text):
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise PyruncError("invalid signal: %s" % text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            return _realtime(name)
        raise PyruncError("unknown signal %r" % text)
    return int(sig)


def _realtime(name):
    base, off = (signal.SIGRTMIN, name[8:]) if name.startswith("SIGRTMIN") else (signal.SIGRTMAX, name[8:])
    if not off:
        return int(base)
    try:
        n = int(off)
    except ValueError:
        raise PyruncError("unknown signal %r" % name) from None
    return int(base) + n
