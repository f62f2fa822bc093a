"""Logging in runc's formats: `--log FILE --log-format text|json`.

json lines are {"level","msg","time"}: containerd's shim and conmon read
them back to report why the runtime failed."""
import sys

from . import lazyos as os  # os without its import cost (see lazyos)

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    __slots__ = ("path", "fmt", "level", "_fd")

    def __init__(self, path=None, fmt="text", debug=False):
        self.path = path
        self.fmt = fmt
        self.level = 10 if debug else 20
        self._fd = -1

    def _out(self):
        if self._fd < 0:
            if self.path:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            else:
                self._fd = 2
        return self._fd

    def log(self, level, msg):
        if _LEVELS[level] < self.level:
            return
        from .state import rfc3339_now

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
    global _logger
    _logger = Logger(path, fmt, debug)
    return _logger


def logger():
    return _logger


def report_error(msg):
    """A failure: to the log (json for engines), and one plain line on
    stderr when the log is elsewhere (runc does the same)."""
    _logger.error(msg)
    if not _logger.to_stderr:
        sys.stderr.write(msg + "\n")
