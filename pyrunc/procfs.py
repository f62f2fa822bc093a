"""Facts about processes read from /proc, so that a recycled pid is never
mistaken for the container's init."""
import os


def stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name, or None if gone.
    fields[0] is the state letter, fields[19] the start time in ticks."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()


def start_time(pid):
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid, expected_start):
    """True while `pid` is the very process that started at `expected_start`
    and has not exited (a zombie counts as exited)."""
    if not pid or pid <= 0:
        return False
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return expected_start is None or int(fields[19]) == expected_start


def ns_inode(pid, ns):
    try:
        return os.stat("/proc/%s/ns/%s" % (pid, ns)).st_ino
    except FileNotFoundError:
        return None
