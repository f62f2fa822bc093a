"""Finding and ending processes an engine test started (by pid, never by name)."""
import os
import signal
import time


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def pids_with_args(*needles):
    """Pids whose argv holds every one of `needles` (bytes) as a whole argument."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            argv = cmdline(int(name))
            if all(n in argv for n in needles):
                found.append(int(name))
    return found


def in_net_namespace(inode):
    """Pids whose network namespace is the one with this inode."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat("/proc/%s/ns/net" % name).st_ino == inode:
                    found.append(int(name))
            except OSError:
                pass
    return found


def end(pids, grace=5.0):
    """TERM, then KILL after `grace` seconds, each pid given."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if os.path.exists("/proc/%d" % p) and not _zombie(p)]
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def mounts_under(prefix):
    """Mount points at or below `prefix`, deepest first."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def cgroup_dirs(name):
    """`/sys/fs/cgroup/<controller>/<name>` directories that exist (v1, and
    hybrid's v2 mount), or `/sys/fs/cgroup/<name>` on a unified (v2 only) host."""
    base = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        path = os.path.join(base, name.lstrip("/"))
        return [path] if os.path.isdir(path) else []
    dirs = []
    for ctl in sorted(os.listdir(base)):
        path = os.path.join(base, ctl, name.lstrip("/"))
        if os.path.isdir(path):
            dirs.append(path)
    return dirs


def remove_cgroup_tree(path):
    for root, subdirs, _ in sorted(os.walk(path), key=lambda t: len(t[0]), reverse=True):
        try:
            os.rmdir(root)
        except OSError:
            pass
