"""Signal names and numbers as runc accepts them: KILL, SIGKILL, 9.

Uses the `_signal` builtin: the `signal` module wraps it in enums, and
importing `enum` costs ~8 ms on a verb that takes ~15."""
import _signal

from .errors import PyruncError

NAMES = {n: getattr(_signal, n) for n in dir(_signal)
         if n.startswith("SIG") and not n.startswith("SIG_") and n not in ("SIGRTMIN", "SIGRTMAX")}


def parse_signal(text):
    if text.isdigit():
        num = int(text)
        if 0 <= num < _signal.NSIG:  # 0: runc sends it (an existence check)
            return num
        raise PyruncError("invalid signal: %s" % text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in NAMES:
        return NAMES[name]
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
