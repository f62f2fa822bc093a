"""Facts about processes read from /proc, so that a recycled pid is never
mistaken for the container's init."""
from . import lazyos as os  # os without its import cost (see lazyos)


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


PROC_SUPER_MAGIC = 0x9FA0


def proc_is_procfs(path="/proc"):
    """Whether `path` (not followed if a symlink) is the root of a procfs."""
    from . import linux

    try:
        fd = os.open(path, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return linux.fstatfs_type(fd) == PROC_SUPER_MAGIC
    finally:
        os.close(fd)


def open_private_procfs():
    """An fd of a fresh, unattached procfs instance for the caller's pid
    namespace, limited to the process directories (subset=pid: no
    /proc/sys, no sysrq-trigger): nothing in a container can fake it."""
    from . import linux

    fs = linux.fsopen("proc")
    try:
        linux.fsconfig(fs, linux.FSCONFIG_SET_STRING, "subset", "pid")
        linux.fsconfig(fs, linux.FSCONFIG_CMD_CREATE)
        return linux.fsmount(fs, linux.FSMOUNT_CLOEXEC, 0)
    finally:
        os.close(fs)


def wait_gone(pid, expected_start, timeout=10.0):
    """Wait until a process that is not our child has exited."""
    import select

    if not pid:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if expected_start is not None and start_time(pid) != expected_start:
            return
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        p.poll(int(timeout * 1000))
    finally:
        os.close(pidfd)
