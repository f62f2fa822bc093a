"""`events`: stats once or a stream of stats and OOM events, each a JSON
line in runc's shape."""
from .errors import PyruncError


def events(c, emit, stats_only=False, interval=5.0):
    """Call `emit(event)` with container `c`'s stats once (`stats_only`),
    or every `interval` seconds and on OOM, while it runs."""
    from .cgroups.events import stats_event, watch
    from .container import STOPPED

    if c.status() == STOPPED:
        raise PyruncError("container with id %s is not running" % c.id)
    mgr = c.cgroup_manager()
    if mgr is None:
        raise PyruncError("container has no cgroup")
    if stats_only:
        emit(stats_event(c.id, mgr))
        return 0
    watch(c.id, mgr, interval, emit, lambda: c.status() != STOPPED)
    return 0
