"""`events`: stats once (--stats) or a stream of stats and OOM events as
JSON lines, in runc's shape."""
import sys

from .errors import PyruncError


def parse_duration(text):
    """Go durations as runc's --interval takes them: 5s, 100ms, 1m, 1.5s."""
    units = (("ms", 0.001), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise PyruncError("invalid --interval %r: a positive duration such as 5s or 500ms" % text)


def events_cli(g, ns):
    from .cgroups.events import stats_event, watch
    from .container import STOPPED, Container
    from .jsonio import dumps

    c = Container.load(ns.args[0], g.root, lock=False)
    if c.status() == STOPPED:
        raise PyruncError("container with id %s is not running" % c.id)
    mgr = c.cgroup_manager()
    if mgr is None:
        raise PyruncError("container has no cgroup")

    def emit(event):
        sys.stdout.write(dumps(event) + "\n")
        sys.stdout.flush()

    if ns.stats:
        emit(stats_event(c.id, mgr))
        return 0
    interval = parse_duration(ns.interval)
    watch(c.id, mgr, interval, emit, lambda: c.status() != STOPPED)
    return 0
