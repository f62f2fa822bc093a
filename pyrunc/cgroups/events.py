"""`events`: runc's event objects from a container's cgroup.

    emit(stats_event(cid, mgr))                       # events --stats
    watch(cid, mgr, interval_s, emit, running)        # events [--interval]

Events are dicts for the caller to print as JSON lines:
{"type": "stats", "id": ..., "data": {...}} and {"type": "oom", "id": ...}.
"""
import time


def stats_event(cid, mgr):
    return {"type": "stats", "id": cid, "data": mgr.stats()}


def watch(cid, mgr, interval, emit, running, poll=0.1):
    """Emit a stats event every `interval` seconds and an oom event for each
    new OOM kill, until running() turns false.  OOM kills are noticed by
    polling the cgroup's counter (memory.oom_control / memory.events)."""
    seen = mgr.oom_events()
    next_stats = time.monotonic()
    while running():
        now = time.monotonic()
        if now >= next_stats:
            emit(stats_event(cid, mgr))
            next_stats = now + interval
        count = mgr.oom_events()
        for _ in range(count - seen):
            emit({"type": "oom", "id": cid})
        seen = max(seen, count)
        time.sleep(min(poll, max(0.0, next_stats - time.monotonic())) or poll)
