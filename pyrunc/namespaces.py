"""Namespaces: which to create, which to join (by path for create, the
init's for exec) and in which order, entering them, the id maps and time
offsets.  Syscalls go through `kernel` (the linux module unless a test
passes its fake)."""
import os

from . import linux
from .errors import ConfigError, StateError
from .spec import NAMESPACE_FILES

# Joining order, for create and exec alike: the user namespace first (it
# owns the others, and gives us the capabilities to join them), mount last
# (after it, paths given for the other namespaces would resolve differently).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")

# namespace type -> its clone/unshare/setns flag (the constants live in linux)
NAMESPACE_FLAGS = {
    "pid": linux.CLONE_NEWPID, "network": linux.CLONE_NEWNET, "mount": linux.CLONE_NEWNS,
    "ipc": linux.CLONE_NEWIPC, "uts": linux.CLONE_NEWUTS, "user": linux.CLONE_NEWUSER,
    "cgroup": linux.CLONE_NEWCGROUP, "time": linux.CLONE_NEWTIME,
}


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
                self.new_flags |= NAMESPACE_FLAGS[ns.type]
        self.join = [(t, joins[t]) for t in JOIN_ORDER if t in joins]
        self.new_user = "user" in self.new_types

    def has(self, ns_type):
        return ns_type in self.new_types or any(t == ns_type for t, _ in self.join)

    def needs_stage1(self):
        """Without user and time namespaces nothing has to happen between
        entering the namespaces and forking pid 1 that the parent cannot do
        for itself (a user namespace must exist before the others, owning
        them; time offsets must be written before the first process enters)."""
        return self.has("user") or self.has("time")

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


def fork_into_pid_ns(join_fd=None, new=False, cgroup=None, kernel=linux):
    """os.fork() with the child in another pid namespace and the caller
    staying in its own: setns(join_fd) or unshare (new=True) CLONE_NEWPID
    changes only the caller's pid_for_children, which goes back to its own
    namespace right after the fork, before anything else can fork.  The
    child becomes pid 1 of a new namespace.  With a cgroup manager, the
    child is born in its v2 directory where it has one (fork_in_cgroup).
    Returns what os.fork() does."""
    if join_fd is None and not new:
        return fork_in_cgroup(cgroup, kernel)
    own = kernel.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if join_fd is not None:
            kernel.setns(join_fd, linux.CLONE_NEWPID)
        else:
            kernel.unshare(linux.CLONE_NEWPID)
        pid = -1
        try:
            pid = fork_in_cgroup(cgroup, kernel)
        finally:
            if pid != 0:
                kernel.setns(own, linux.CLONE_NEWPID)
    finally:
        kernel.close(own)
    return pid


def fork_in_cgroup(mgr, kernel=linux):
    """os.fork(); with a cgroup manager that has a v2 directory (a pure v2
    host, or the unified hierarchy of a hybrid one), the child is born in
    it (linux.fork_into_cgroup) and its copy of the manager says so
    (v2_placed: mgr.join_self() then writes only the v1 hierarchies' tasks,
    which need no global lock).  Where the kernel refuses, a plain fork:
    the child joins by writing, as before."""
    fd = mgr.open_v2_dir() if mgr is not None else None
    if fd is None:
        return kernel.fork()
    try:
        pid = kernel.fork_into_cgroup(fd)
    except OSError:
        pid = None
    finally:
        os.close(fd)
    if pid is None:
        return kernel.fork()
    if pid == 0:
        mgr.v2_placed = True
    return pid


def enter(fds, skip_pid=False, kernel=linux):
    """setns into each (type, fd) in the order given (JOIN_ORDER), closing
    the fds; the pid namespace is skipped (its fd just closed) where the
    caller was already forked into it."""
    for ns_type, fd in fds:
        if not (skip_pid and ns_type == "pid"):
            kernel.setns(fd, NAMESPACE_FLAGS[ns_type])
        kernel.close(fd)


def become_root(kernel=linux):
    """uid/gid 0 of the user namespace just entered."""
    kernel.setresgid(0, 0, 0)
    kernel.setresuid(0, 0, 0)


def open_process_namespaces(pid, expected_start):
    """exec: fds of the init's namespaces that differ from ours, in join
    order; the init is pinned by a pidfd meanwhile, so they are surely its."""
    from .procfs import start_time

    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        raise StateError("cannot exec in a stopped container") from None
    fds = []
    try:
        for ns_type in JOIN_ORDER:
            name = NAMESPACE_FILES[ns_type]
            try:
                fd = os.open("/proc/%d/ns/%s" % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # e.g. no time namespaces in this kernel
            st, mine = os.fstat(fd), os.stat("/proc/self/ns/" + name)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                os.close(fd)
                continue
            fds.append((ns_type, fd))
        if expected_start is not None and start_time(pid) != expected_start:
            raise StateError("cannot exec in a stopped container")
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(pidfd)
    return fds


def write_id_maps(pid, uid_mappings, gid_mappings, deny_setgroups=False):
    """Written by the parent (privileged in the outer namespace) for a child
    that has just unshared its user namespace."""
    if gid_mappings and deny_setgroups:
        _write("/proc/%d/setgroups" % pid, "deny")
    if uid_mappings:
        _write("/proc/%d/uid_map" % pid, "".join(m.line() for m in uid_mappings))
    if gid_mappings:
        _write("/proc/%d/gid_map" % pid, "".join(m.line() for m in gid_mappings))


def _write(path, text, kernel=linux):
    fd = kernel.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        kernel.write(fd, text.encode())
    finally:
        kernel.close(fd)


def write_time_offsets(offsets, kernel=linux):
    """/proc/self/timens_offsets, after unshare(CLONE_NEWTIME), before any
    process enters the namespace."""
    import time

    clocks = {"monotonic": time.CLOCK_MONOTONIC, "boottime": time.CLOCK_BOOTTIME}
    lines = []
    for name, off in offsets.items():
        if name not in clocks:
            raise ConfigError("linux.timeOffsets: unknown clock %r" % name)
        lines.append("%d %d %d\n" % (clocks[name], off.secs, off.nanosecs))
    if lines:
        _write("/proc/self/timens_offsets", "".join(lines), kernel)
