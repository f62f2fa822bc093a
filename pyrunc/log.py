"""Logging in runc's formats: `--log FILE --log-format text|json`.

json lines are {"level","msg","time"}: containerd's shim and conmon read
them back to report why the runtime failed."""
import sys

from . import lazyos as os  # os without its import cost (see lazyos)

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


# Where the log fd is moved: above the fds a caller may pass to the
# container (--preserve-fds, LISTEN_FDS), which are checked after start-up.
_HIGH_FD = 256


class Logger:
    __slots__ = ("path", "fmt", "level", "_fd")

    def __init__(self, path=None, fmt="text", debug=False):
        self.path = path
        self.fmt = fmt
        self.level = 10 if debug else 20
        self._fd = 2

    def open(self):
        """runc opens --log at start-up: the file exists even when nothing
        is logged, and a relative path is the caller's, not the bundle's.
        With --debug and no file, a private copy of stderr: the children
        log through it after the container's stdio has taken fd 2."""
        if self.level <= 10:
            # the children log after pivot_root / setns(mnt): import now
            import time  # noqa: F401  (rfc3339_now)
            if self.fmt == "json":
                from . import jsonio  # noqa: F401
        if self.path:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        elif self.level <= 10:
            fd = 2
        else:
            return
        try:
            import fcntl

            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
        except OSError:
            self._fd = fd
            return
        if fd != 2:
            os.close(fd)
        self._fd = high

    def _out(self):
        return self._fd

    def log(self, level, msg):
        if _LEVELS[level] < self.level:
            return
        now = rfc3339_now()
        if self.fmt == "json":
            from .jsonio import dumps

            line = dumps({"level": level, "msg": msg, "time": now}) + "\n"
        else:
            line = 'time="%s" level=%s msg="%s"\n' % (now, level, msg.replace("\\", "\\\\").replace('"', '\\"'))
        try:
            os.write(self._out(), line.encode(errors="replace"))
        except OSError:
            pass

    def debug(self, msg):
        self.log("debug", msg)

    def info(self, msg):
        self.log("info", msg)

    def warning(self, msg):
        self.log("warning", msg)

    def error(self, msg):
        self.log("error", msg)

    @property
    def to_stderr(self):
        return not self.path


_logger = Logger()


def configure(path=None, fmt="text", debug=False):
    """Raises OSError when --log cannot be opened."""
    global _logger
    _logger = Logger(path, fmt, debug)
    _logger.open()
    return _logger


def logger():
    return _logger


def debug(msg):
    """A --debug line (the children's progress, at runc's points)."""
    if _logger.level <= 10:
        _logger.debug(msg)


def report_error(msg):
    """A failure: to the log (json for engines), and one plain line on
    stderr when the log is elsewhere (runc does the same)."""
    _logger.error(msg)
    if not _logger.to_stderr:
        sys.stderr.write(msg + "\n")


def rfc3339_now():
    """UTC time with nanoseconds, like Go's time.RFC3339Nano (runc's `created`)."""
    import time

    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return "%s.%sZ" % (base, ("%09d" % frac).rstrip("0")) if frac else base + "Z"
