"""Idmapped bind mounts (mounts[].uidMappings/gidMappings, `idmap`, `ridmap`).

The runtime makes them before it forks, while it still holds the host's
privileges: a detached clone of the bind source (open_tree), given the
mount's mapping with mount_setattr(MOUNT_ATTR_IDMAP) and a user namespace
that carries that mapping.  The init only attaches the clone with
move_mount onto its destination, resolved inside the rootfs like any other
mount (rootfs.RootfsBuilder.mount_one).

A file owned on disk by id C shows as id H through a mapping "C H size"
(containerID, hostID), and a file created as H is stored as C.  `ridmap`
applies the mapping to every mount under the source (rbind); `idmap` to the
top one only.  Without mappings of its own a mount takes the container's
user namespace mappings; with neither, the config is refused.
"""
import errno
import os

from . import linux
from .errors import ConfigError

def check(spec, plan):
    """Refuse idmapped mount configs that cannot be honoured, naming the field."""
    for i, m in enumerate(spec.mounts):
        if not m.idmapped:
            continue
        where = "mounts[%d]" % i
        if not ("bind" in m.options or "rbind" in m.options or m.type == "bind"):
            raise ConfigError("%s.options: idmapped mounts are bind mounts (add \"bind\" or \"rbind\")" % where)
        if bool(m.uid_mappings) != bool(m.gid_mappings):
            field = "gidMappings" if m.uid_mappings else "uidMappings"
            raise ConfigError("%s.%s: uidMappings and gidMappings must be given together" % (where, field))
        if not m.uid_mappings and not plan.has("user"):
            raise ConfigError("%s.options: idmap without uidMappings/gidMappings needs a user namespace "
                              "whose mappings it can take" % where)


def make_trees(spec):
    """{mount index: fd of a detached, idmapped clone of its source} for the
    mounts that want one; the fds are close-on-exec, the caller closes them."""
    trees = {}
    userns_by_mapping = {}
    try:
        for i, m in enumerate(spec.mounts):
            if not m.idmapped:
                continue
            uids = m.uid_mappings or spec.linux.uid_mappings
            gids = m.gid_mappings or spec.linux.gid_mappings
            key = ("".join(x.line() for x in uids), "".join(x.line() for x in gids))
            if key not in userns_by_mapping:
                userns_by_mapping[key] = userns_with_maps(uids, gids)
            try:
                trees[i] = idmapped_clone(m, userns_by_mapping[key])
            except OSError as e:
                raise ConfigError("mounts[%d]: idmapped mount of %s: %s%s" % (
                    i, m.source, e.strerror,
                    " (its filesystem may not support idmapped mounts)" if e.errno == errno.EINVAL else "")) from None
    except BaseException:
        close_all(trees)
        raise
    finally:
        close_all(userns_by_mapping)
    return trees


def idmapped_clone(m, userns_fd):
    recursive = "rbind" in m.options
    flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC | (linux.AT_RECURSIVE if recursive else 0)
    tree = linux.open_tree(-100, m.source, flags)  # AT_FDCWD: the bundle, where create works
    try:
        linux.mount_setattr(tree, "", linux.AT_EMPTY_PATH | (linux.AT_RECURSIVE if "ridmap" in m.options else 0),
                            attr_set=linux.MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    except BaseException:
        os.close(tree)
        raise
    return tree


def userns_with_maps(uid_mappings, gid_mappings):
    """An fd of a new user namespace with these mappings: a child unshares
    it and waits while we write its maps, then is done."""
    from .namespaces import write_id_maps

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(errno.EPERM, "could not make a user namespace for an idmapped mount")
        write_id_maps(pid, uid_mappings, gid_mappings)
        return os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)  # the child's read returns: it exits
        os.waitpid(pid, 0)


def close_all(fds_by_key):
    for fd in fds_by_key.values():
        try:
            os.close(fd)
        except OSError:
            pass
