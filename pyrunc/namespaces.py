"""Namespaces: which to create, which to join by path, and the id maps."""
import os

from . import linux
from .errors import ConfigError
from .spec import NAMESPACE_FILES

# Joining order: the user namespace first (it owns the others), mount last
# (after it, paths given for the other namespaces would resolve differently).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class NamespacePlan:
    __slots__ = ("new_flags", "join", "new_user", "new_types")

    def __init__(self, linux_spec):
        self.new_flags = 0
        self.new_types = set()
        joins = {}
        for i, ns in enumerate(linux_spec.namespaces):
            if ns.type in self.new_types or ns.type in joins:
                raise ConfigError("linux.namespaces[%d].type: duplicate namespace %r" % (i, ns.type))
            if ns.path:
                joins[ns.type] = ns.path
            else:
                self.new_types.add(ns.type)
                self.new_flags |= ns.flag
        self.join = [(t, joins[t]) for t in _JOIN_ORDER if t in joins]
        self.new_user = "user" in self.new_types

    def has(self, ns_type):
        return ns_type in self.new_types or any(t == ns_type for t, _ in self.join)

    def open_join_fds(self):
        """Open every namespace path up front (in the runtime's own view of
        the filesystem) and check each is the namespace type it claims."""
        fds = []
        try:
            for ns_type, path in self.join:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                fds.append((ns_type, fd))
                want = os.stat("/proc/self/ns/" + NAMESPACE_FILES[ns_type])
                got = os.fstat(fd)
                if got.st_dev != want.st_dev:
                    raise ConfigError("linux.namespaces: %s is not a %s namespace" % (path, ns_type))
        except FileNotFoundError as e:
            for _, fd in fds:
                os.close(fd)
            raise ConfigError("linux.namespaces: %s: no such namespace file" % e.filename) from None
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        return fds


def fork_into_pid_ns(join_fd=None, new=False, cgroup=None):
    """os.fork() with the child in another pid namespace and the caller
    staying in its own: setns(join_fd) or unshare (new=True) CLONE_NEWPID
    changes only the caller's pid_for_children, which goes back to its own
    namespace right after the fork, before anything else can fork.  The
    child becomes pid 1 of a new namespace.  With a cgroup manager, the
    child is born in its v2 directory where it has one (fork_in_cgroup).
    Returns what os.fork() does."""
    if join_fd is None and not new:
        return fork_in_cgroup(cgroup)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if join_fd is not None:
            linux.setns(join_fd, linux.CLONE_NEWPID)
        else:
            linux.unshare(linux.CLONE_NEWPID)
        pid = -1
        try:
            pid = fork_in_cgroup(cgroup)
        finally:
            if pid != 0:
                linux.setns(own, linux.CLONE_NEWPID)
    finally:
        os.close(own)
    return pid


def fork_in_cgroup(mgr):
    """os.fork(); with a cgroup manager that has a v2 directory (a pure v2
    host, or the unified hierarchy of a hybrid one), the child is born in
    it (linux.fork_into_cgroup) and its copy of the manager says so
    (v2_placed: mgr.join_self() then writes only the v1 hierarchies' tasks,
    which need no global lock).  Where the kernel refuses, a plain fork:
    the child joins by writing, as before."""
    fd = mgr.open_v2_dir() if mgr is not None else None
    if fd is None:
        return os.fork()
    try:
        pid = linux.fork_into_cgroup(fd)
    except OSError:
        pid = None
    finally:
        os.close(fd)
    if pid is None:
        return os.fork()
    if pid == 0:
        mgr.v2_placed = True
    return pid


def join_all(fds):
    from .spec import NAMESPACE_FLAGS

    for ns_type, fd in fds:
        linux.setns(fd, NAMESPACE_FLAGS[ns_type])
        os.close(fd)


def write_id_maps(pid, uid_mappings, gid_mappings, deny_setgroups=False):
    """Written by the parent (privileged in the outer namespace) for a child
    that has just unshared its user namespace."""
    if gid_mappings and deny_setgroups:
        _write("/proc/%d/setgroups" % pid, "deny")
    if uid_mappings:
        _write("/proc/%d/uid_map" % pid, "".join(m.line() for m in uid_mappings))
    if gid_mappings:
        _write("/proc/%d/gid_map" % pid, "".join(m.line() for m in gid_mappings))


def _write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_time_offsets(offsets):
    """/proc/self/timens_offsets, after unshare(CLONE_NEWTIME), before any
    process enters the namespace."""
    clocks = {"monotonic": 1, "boottime": 7}
    lines = []
    for name, off in offsets.items():
        if name not in clocks:
            raise ConfigError("linux.timeOffsets: unknown clock %r" % name)
        lines.append("%d %d %d\n" % (clocks[name], off.secs, off.nanosecs))
    if lines:
        _write("/proc/self/timens_offsets", "".join(lines))
