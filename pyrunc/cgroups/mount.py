"""Realise an OCI mount of type "cgroup" inside the container's mount
namespace (before pivot_root), as runc does:

v1: a tmpfs at the target, one directory per host hierarchy named like its
    mount point ("cpu,cpuacct", "memory", "systemd", ...) holding a bind of
    the container's cgroup in that hierarchy (or a fresh cgroup mount of
    the hierarchy in a new cgroup namespace, whose root then *is* the
    container's cgroup), and symlinks "cpu" -> "cpu,cpuacct" for
    co-mounted controllers.
v2: a cgroup2 mount in a new cgroup namespace, else a bind of the
    container's cgroup directory.

The target may be a /proc/self/fd/N path.  A path through such a magic link
lands on the directory *under* anything mounted on it afterwards, so every
mount made here is reached again through its parent (openat of the name
crosses onto the newest mount) before anything is created inside it.
"""
import errno
import os

from .. import linux
from . import paths as pathsmod

BASE_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC


def v1_mount_plan(container_paths, mountinfo_text=None, proc_cgroup_text=None):
    """[{"name", "options", "source", "links"}] per host v1 hierarchy:
    `name` the directory under the target, `options` the data for a fresh
    cgroup mount, `source` the host dir to bind, `links` symlink names."""
    if mountinfo_text is None:
        mountinfo_text = pathsmod.read_text("/proc/self/mountinfo")
    own = None
    plan, seen = [], set()
    for fstype, mountpoint, root, opts in pathsmod.cgroup_mounts(mountinfo_text):
        if fstype != "cgroup":
            continue
        ctrls = [o for o in opts if o in pathsmod.V1_CONTROLLERS or o.startswith("name=")]
        # One entry per hierarchy, the first mount of it (the host's): the
        # same hierarchy shows again wherever /sys was bound (a bundle's
        # rootfs with /sys rbind, as `runc spec --rootless` makes).
        if not ctrls or tuple(ctrls) in seen:
            continue
        seen.add(tuple(ctrls))
        source = next((container_paths[c] for c in ctrls if c in container_paths), None)
        if source is None:
            # a hierarchy the manager doesn't use: show our own cgroup, as runc
            if own is None:
                own = pathsmod.own_cgroups(
                    proc_cgroup_text if proc_cgroup_text is not None
                    else pathsmod.read_text("/proc/self/cgroup"))
            source = pathsmod.join_under(mountpoint, root, own.get(ctrls[0]), ".")
        name = os.path.basename(mountpoint)
        links = [c for c in name.split(",") if c != name] if "," in name else []
        plan.append({"name": name, "options": ",".join(ctrls), "source": source, "links": links})
    return plan


def v2_mount_plan(path):
    return {"source": path}


def mount_cgroup(target_path, mgr_dict, cgroupns, readonly):
    """Mount the container's cgroup view at `target_path` (an existing dir)."""
    flags = BASE_FLAGS | (linux.MS_RDONLY if readonly else 0)
    if mgr_dict.get("version") == 2:
        _mount_v2(target_path, mgr_dict["path"], cgroupns, flags)
    else:
        _mount_v1(target_path, mgr_dict.get("paths") or {}, cgroupns, readonly)


def _proc_fd(fd, name=None):
    return "/proc/self/fd/%d" % fd + ("/" + name if name else "")


def _reopen_top(path):
    """O_PATH fd of whatever is mounted on top of `path` now."""
    parent = os.open(path + "/..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        magic = os.path.dirname(path) == "/proc/self/fd"
        name = os.path.basename(os.readlink(path) if magic else os.path.normpath(path))
        return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)


def _bind(source, target, flags):
    """Bind `source` on `target`, then remount with `flags` (a bind mount
    ignores flags until remounted)."""
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    top = _reopen_top(target)
    try:
        linux.mount(None, _proc_fd(top), None, linux.MS_BIND | linux.MS_REMOUNT | flags)
    finally:
        os.close(top)


def _mount_v2(target, path, cgroupns, flags):
    if cgroupns:
        try:
            linux.mount("cgroup2", target, "cgroup2", flags)
            return
        except OSError as e:
            # in a user namespace without its own cgroupns: bind instead
            if e.errno not in (errno.EPERM, errno.EBUSY):
                raise
    _bind(path, target, flags)


def _mount_v1(target, container_paths, cgroupns, readonly):
    plan = v1_mount_plan(container_paths)
    linux.mount("tmpfs", target, "tmpfs", BASE_FLAGS, "mode=755")
    root = _reopen_top(target)
    try:
        # O_PATH fds can't be dir_fd for mkdir/symlink: use a real one
        dfd = os.open(_proc_fd(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for h in plan:
                os.mkdir(h["name"], 0o755, dir_fd=dfd)
                dest = _proc_fd(root, h["name"])
                flags = BASE_FLAGS | (linux.MS_RDONLY if readonly else 0)
                if cgroupns:
                    source = "systemd" if h["options"] == "name=systemd" else "cgroup"
                    linux.mount(source, dest, "cgroup", flags, h["options"])
                else:
                    _bind(h["source"], dest, flags)
            for h in plan:
                for link in h["links"]:
                    try:
                        os.symlink(h["name"], link, dir_fd=dfd)
                    except FileExistsError:
                        pass
        finally:
            os.close(dfd)
        if readonly:
            linux.mount(None, _proc_fd(root), None, linux.MS_REMOUNT | linux.MS_BIND | BASE_FLAGS | linux.MS_RDONLY)
    finally:
        os.close(root)
