"""The container's root filesystem: mounts, devices, pivot_root, masked and
read-only paths.  Runs in the init, inside the new mount namespace.

Every destination is resolved inside the rootfs by the kernel (openat2 with
RESOLVE_IN_ROOT), and mounts are made onto /proc/self/fd/N of the resolved
O_PATH handle, so a symlink swapped in by the container's image (or racing
with us) can never send a mount outside the rootfs.

Every syscall goes through a kernel object, the linux module unless a test
passes its fake (`k=` / RootfsBuilder(kernel=)): the mount plan, device
nodes and pivot are unit-tested on a recording fake (tests/fakekernel.py).
"""
import errno
import os
import stat

from . import linux
from .cgroups.paths import unescape as _unescape  # mountinfo's octal escapes
from .errors import PyruncError
from .procfs import PROC_SUPER_MAGIC
from .spec import DEFAULT_DEVICES

L = linux

# option -> (set flags, clear flags)
_FLAG_OPTIONS = {
    "defaults": (0, 0),
    "ro": (L.MS_RDONLY, 0), "rw": (0, L.MS_RDONLY),
    "nosuid": (L.MS_NOSUID, 0), "suid": (0, L.MS_NOSUID),
    "nodev": (L.MS_NODEV, 0), "dev": (0, L.MS_NODEV),
    "noexec": (L.MS_NOEXEC, 0), "exec": (0, L.MS_NOEXEC),
    "sync": (L.MS_SYNCHRONOUS, 0), "async": (0, L.MS_SYNCHRONOUS),
    "dirsync": (L.MS_DIRSYNC, 0),
    "remount": (L.MS_REMOUNT, 0),
    "mand": (L.MS_MANDLOCK, 0), "nomand": (0, L.MS_MANDLOCK),
    "noatime": (L.MS_NOATIME, 0), "atime": (0, L.MS_NOATIME),
    "nodiratime": (L.MS_NODIRATIME, 0), "diratime": (0, L.MS_NODIRATIME),
    "relatime": (L.MS_RELATIME, 0), "norelatime": (0, L.MS_RELATIME),
    "strictatime": (L.MS_STRICTATIME, 0), "nostrictatime": (0, L.MS_STRICTATIME),
    "lazytime": (L.MS_LAZYTIME, 0), "nolazytime": (0, L.MS_LAZYTIME),
    "nosymfollow": (L.MS_NOSYMFOLLOW, 0), "symfollow": (0, L.MS_NOSYMFOLLOW),
    "bind": (L.MS_BIND, 0), "rbind": (L.MS_BIND | L.MS_REC, 0),
    # the rest of runc's table (specconv's mountFlags): flags, not fs data
    "acl": (L.MS_POSIXACL, 0), "noacl": (0, L.MS_POSIXACL),
    "iversion": (L.MS_I_VERSION, 0), "noiversion": (0, L.MS_I_VERSION),
    "silent": (L.MS_SILENT, 0), "loud": (0, L.MS_SILENT),
}
PROPAGATION_OPTIONS = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# Recursive mount attributes: applied to the mount and every mount under it
# with mount_setattr(AT_RECURSIVE) once it is in place.  option -> (MOUNT_ATTR
# bits to set, bits to clear); an access-time option always clears the whole
# MOUNT_ATTR__ATIME field (the kernel's rule), so the "no" forms of the atime
# family leave relatime, the kernel's default.
_ATIME = L.MOUNT_ATTR__ATIME
REC_ATTR_OPTIONS = {
    "rro": (L.MOUNT_ATTR_RDONLY, 0), "rrw": (0, L.MOUNT_ATTR_RDONLY),
    "rnosuid": (L.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, L.MOUNT_ATTR_NOSUID),
    "rnodev": (L.MOUNT_ATTR_NODEV, 0), "rdev": (0, L.MOUNT_ATTR_NODEV),
    "rnoexec": (L.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, L.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (L.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, L.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (L.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, L.MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (L.MOUNT_ATTR_NOATIME, _ATIME), "ratime": (0, _ATIME),
    "rstrictatime": (L.MOUNT_ATTR_STRICTATIME, _ATIME), "rnostrictatime": (0, _ATIME),
    "rrelatime": (L.MOUNT_ATTR_RELATIME, _ATIME), "rnorelatime": (0, _ATIME),
}
# Options that only steer pyrunc (or other runtimes) and never reach mount(2).
_IGNORED_OPTIONS = frozenset(("tmpcopyup", "idmap", "ridmap"))
# statvfs f_flag bits the kernel locks on bind mounts made in a user namespace
_ST_LOCKED = ((1, L.MS_RDONLY), (2, L.MS_NOSUID), (4, L.MS_NODEV), (8, L.MS_NOEXEC),
              (1024, L.MS_NOATIME), (2048, L.MS_NODIRATIME), (4096, L.MS_RELATIME))

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)


class MountError(PyruncError):
    pass


def parse_options(options):
    """-> (flags, propagation flags list, data string)."""
    flags = 0
    propagation = []
    data = []
    for opt in options:
        fl = _FLAG_OPTIONS.get(opt)
        if fl is not None:
            flags = (flags | fl[0]) & ~fl[1]
        elif opt in PROPAGATION_OPTIONS:
            propagation.append(PROPAGATION_OPTIONS[opt])
        elif opt not in _IGNORED_OPTIONS and opt not in REC_ATTR_OPTIONS:
            data.append(opt)
    return flags, propagation, ",".join(data)


def recursive_attrs(options):
    """-> (attr_set, attr_clr) for mount_setattr(AT_RECURSIVE); later options
    win over earlier ones."""
    attr_set = attr_clr = 0
    for opt in options:
        sc = REC_ATTR_OPTIONS.get(opt)
        if sc is not None:
            attr_set = (attr_set & ~sc[1]) | sc[0]
            attr_clr = (attr_clr & ~sc[0]) | sc[1]
    return attr_set, attr_clr


# Files under /proc a config may mount over: what lxcfs emulates (runc
# allows the same few).  Anything else there could cover what the runtime
# writes or the kernel shows (attr/, sys/, the mask targets): CVE-2019-19921.
PROC_MOUNT_ALLOWED = frozenset((
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
))


def check_proc_destinations(mounts):
    """On /proc itself only a procfs (fresh, or a bind of one); under it
    only PROC_MOUNT_ALLOWED."""
    for i, m in enumerate(mounts):
        dest = _norm(m.destination)
        if dest == "/proc":
            if m.type == "proc" or _is_procfs_bind(m):
                continue
            raise MountError("mounts[%d]: %s cannot be mounted on /proc: it is not a procfs" % (i, m.source or m.type))
        if dest.startswith("/proc/") and dest not in PROC_MOUNT_ALLOWED:
            raise MountError("mounts[%d].destination: %s: mounts under /proc are refused, except over %s"
                             % (i, m.destination, ", ".join(sorted(PROC_MOUNT_ALLOWED))))


def _is_procfs_bind(m):
    if m.type != "bind" and "bind" not in m.options and "rbind" not in m.options:
        return False
    try:
        fd = os.open(m.source or "", L.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return L.fstatfs_type(fd) & 0xFFFFFFFF == PROC_SUPER_MAGIC
    finally:
        os.close(fd)


# -- resolving paths inside the rootfs -----------------------------------

def fd_path(fd):
    return "/proc/self/fd/%d" % fd


def open_in_root(rootfd, path, flags=L.O_PATH, extra_resolve=0, k=L):
    rel = path.lstrip("/") or "."
    return k.openat2(rootfd, rel, flags, L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS | extra_resolve)


def resolve_in_rootfs(rootfs, path):
    """`path` inside the container with the symlinks of the rootfs
    followed, each relative to the rootfs and never above it (a missing
    component ends the walk: the rest is taken as written); -> a normalised
    absolute path.  Only names a mount point, never opens anything."""
    todo = [p for p in path.split("/") if p and p != "."]
    done = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        try:
            target = os.readlink(os.path.join(rootfs, *done, name))
        except OSError:  # not a symlink, or missing
            done.append(name)
            continue
        links += 1
        if links > 40:  # a loop: name it as written, as create would fail on it
            return _norm(path)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p and p != "."] + todo
    return "/" + "/".join(done)


def make_path_in_root(rootfd, path, is_dir=True, mode=0o755, k=L):
    """Create `path` (and its parents) inside the rootfs; return an O_PATH fd.

    Components are walked one by one, each looked up by the kernel inside
    the root; symlinks (dangling ones too) are expanded by hand relative to
    the root, and missing components are made with mkdirat under a parent
    that was itself resolved inside the root.
    """
    try:
        return open_in_root(rootfd, path, k=k)
    except FileNotFoundError:
        pass
    todo = [p for p in path.split("/") if p and p != "."]
    done = []  # symlink-free components that exist
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        sub = "/".join(done + [name])
        try:
            fd = open_in_root(rootfd, sub, L.O_PATH | os.O_NOFOLLOW, k=k)
        except FileNotFoundError:
            _create_in(rootfd, done, name, is_dir or bool(todo), mode, k=k)
            done.append(name)
            continue
        try:
            if stat.S_ISLNK(k.fstat(fd).st_mode):
                links += 1
                if links > 40:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = k.readlink("", dir_fd=fd)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p and p != "."] + todo
            else:
                done.append(name)
        finally:
            k.close(fd)
    return open_in_root(rootfd, "/".join(done), k=k)


def _create_in(rootfd, parent_parts, name, is_dir, mode, k=L):
    parent = open_in_root(rootfd, "/".join(parent_parts), L.O_PATH | os.O_DIRECTORY, k=k)
    try:
        if is_dir:
            try:
                k.mkdir(name, mode, dir_fd=parent)
            except FileExistsError:
                pass
        else:
            fd = k.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=parent)
            k.close(fd)
    finally:
        k.close(parent)


# -- mounts ----------------------------------------------------------------

class RootfsBuilder:
    """Prepares the rootfs at `rootfs` for `spec` in the current (new) mount
    namespace.  Call prepare(), then pivot(), then finalize()."""

    def __init__(self, spec, rootfs, in_userns=False, cgroup_manager=None, new_cgroupns=False,
                 own_mount_ns=True, idmapped=None, bind_sources=None, kernel=L):
        self.k = kernel  # every syscall goes through it (tests pass a recording fake)
        self.spec = spec
        self.rootfs = rootfs
        # Without a mount namespace of its own (runc allows that), the
        # container's mounts are made in the caller's namespace, the host's
        # propagation is left alone, and the root is entered with chroot.
        self.own_mount_ns = own_mount_ns
        self.in_userns = in_userns
        self.cgroup_manager = cgroup_manager
        self.new_cgroupns = new_cgroupns
        self.rootfd = -1
        self.idmapped = idmapped or {}  # mount index -> detached idmapped clone (pyrunc.idmap)
        self.bind_sources = bind_sources or {}  # mount index -> O_PATH fd (open_bind_sources)
        # a read-only /dev is mounted read-write and made read-only in
        # finalize(): devices, symlinks and /dev/pts go in first (runc)
        self.dev_readonly = False
        # destination -> O_PATH fd of the proc/sysfs mount made there: checked
        # again after pivot_root, and masked/readonly paths go through it
        self.pinned = {}

    # 1. before pivot_root --------------------------------------------------
    def prepare(self):
        if self.own_mount_ns:
            prop = self.spec.linux.rootfs_propagation
            root_flag = PROPAGATION_OPTIONS[prop] if prop else L.MS_SLAVE | L.MS_REC
            self.k.mount(None, "/", None, root_flag)
            self._make_parent_private()
            self.k.mount(self.rootfs, self.rootfs, "bind", L.MS_BIND | L.MS_REC)
        self.rootfd = self.k.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for i, m in enumerate(self.spec.mounts):
            try:
                self.mount_one(m, self.idmapped.get(i), self.bind_sources.get(i))
            except OSError as e:
                raise MountError("mounts[%d]: mount %s to %s: %s" % (
                    i, m.source or m.type, m.destination, e.strerror or e)) from None
        for fd in list(self.idmapped.values()) + list(self.bind_sources.values()):
            self.k.close(fd)  # attached now; nothing of the host's stays open
        self.idmapped = {}
        self.bind_sources = {}
        if self._needs_dev_setup():
            self.create_devices()
            self.create_dev_symlinks()

    def _make_parent_private(self):
        # pivot_root(2) refuses a root whose parent mount is shared.  That
        # parent is the mount holding the rootfs: the rootfs itself when it
        # is a mount point (containerd's overlay), so the walk starts there.
        path = self.k.realpath(self.rootfs)
        while True:
            try:
                self.k.mount(None, path, None, L.MS_PRIVATE)
                return
            except OSError:
                if path == "/":
                    return
                path = os.path.dirname(path)

    def _needs_dev_setup(self):
        for m in self.spec.mounts:
            if m.destination.rstrip("/") == "/dev" and ("bind" in m.options or "rbind" in m.options or m.type == "bind"):
                return False
        return True

    def mount_one(self, m, idmapped_tree=None, source_fd=None):
        dest_key = _norm(m.destination)
        self._unpin_under(dest_key)
        flags, propagation, data = parse_options(m.options)
        is_bind = bool(flags & L.MS_BIND) or m.type == "bind"
        if m.type == "cgroup" or m.type == "cgroup2":
            self._mount_cgroup(m, flags)
            return self._set_recursive_attrs(m)
        if is_bind:
            src = m.source if source_fd is None else fd_path(source_fd)
            src_is_dir = self.k.isdir(src)
            if not self.k.exists(src):
                raise FileNotFoundError(2, "No such file or directory", src)
            target = make_path_in_root(self.rootfd, m.destination, is_dir=src_is_dir, k=self.k)
            try:
                if idmapped_tree is not None:
                    self.k.move_mount(idmapped_tree, "", target, "",
                                 L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
                else:
                    self.k.mount(src, fd_path(target), None, L.MS_BIND | (flags & L.MS_REC))
            finally:
                self.k.close(target)
            extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
            if extra:
                self._remount_bind(src, m.destination, extra)
        else:
            extra = L.RESOLVE_NO_SYMLINKS if m.type in ("proc", "sysfs") else 0
            if dest_key == "/dev" and flags & L.MS_RDONLY:
                flags &= ~L.MS_RDONLY
                self.dev_readonly = True
            target = self._dir_target(m.destination, extra)
            try:
                self.k.mount(m.source or m.type, fd_path(target), m.type, flags & ~L.MS_REMOUNT, data or None)
            finally:
                self.k.close(target)
            if m.type in _PINNED_FS:
                self.pinned[dest_key] = self._pin(m.destination, _PINNED_FS[m.type])
        self._set_recursive_attrs(m)
        if propagation:
            target = open_in_root(self.rootfd, m.destination, k=self.k)
            try:
                for p in propagation:
                    self.k.mount(None, fd_path(target), None, p)
            finally:
                self.k.close(target)

    def _set_recursive_attrs(self, m):
        """rro, rnosuid, ...: on the mount and every mount under it."""
        attr_set, attr_clr = recursive_attrs(m.options)
        if attr_set or attr_clr:
            # Resolved again: the mount now sits on the destination.
            target = open_in_root(self.rootfd, m.destination, k=self.k)
            try:
                self.k.mount_setattr(target, "", L.AT_EMPTY_PATH | L.AT_RECURSIVE, attr_set, attr_clr)
            finally:
                self.k.close(target)

    def _pin(self, dest, magic):
        """The proc/sysfs mount just made, looked up again: it must be there
        (nothing swapped the destination meanwhile)."""
        try:
            fd = open_in_root(self.rootfd, dest, L.O_PATH | os.O_DIRECTORY, L.RESOLVE_NO_SYMLINKS, k=self.k)
        except OSError:
            fd = -1
        if fd >= 0 and self.k.fstatfs_type(fd) & 0xFFFFFFFF == magic:
            return fd
        if fd >= 0:
            self.k.close(fd)
        raise MountError("mount destination %s was replaced while it was being mounted" % dest)

    def _unpin_under(self, dest):
        """A later mount on or above a pinned proc/sysfs destination is the
        config's own: that pin no longer names what the container sees."""
        prefix = dest.rstrip("/") + "/"
        for pinned in [p for p in self.pinned if p == dest or p.startswith(prefix)]:
            self.k.close(self.pinned.pop(pinned))

    def proc_handle(self):
        """The pinned procfs at /proc (checked after pivot_root), or -1."""
        return self.pinned.get("/proc", -1)

    def check_pinned(self):
        """After pivot_root: each proc/sysfs mount must still be what its
        path names.  A destination swapped for a symlink or another
        directory during create would leave the real procfs under another
        name, unseen by anything that goes by the name /proc: refuse
        (CVE-2019-16884 / CVE-2021-30465 classes)."""
        for dest, fd in self.pinned.items():
            try:
                now = self.k.openat2(L.AT_FDCWD, dest, L.O_PATH | os.O_DIRECTORY, L.RESOLVE_NO_SYMLINKS)
            except OSError:
                now = -1
            try:
                same = now >= 0 and _same_inode(self.k.fstat(now), self.k.fstat(fd))
            finally:
                if now >= 0:
                    self.k.close(now)
            if not same:
                raise MountError("%s in the container was replaced after it was mounted; "
                                 "refusing to go on with the real one elsewhere" % dest)

    def close_pinned(self):
        # Not kept past finalize: the created init holds nothing but stdio
        # and its exec fifo handle while it waits for `start`.
        for fd in self.pinned.values():
            self.k.close(fd)
        self.pinned = {}

    def _dir_target(self, dest, extra_resolve=0):
        """An O_PATH fd of a directory for a filesystem mount; proc and sysfs
        must land on a real directory, never a symlink (CVE-2019-16884 class)."""
        fd = make_path_in_root(self.rootfd, dest, k=self.k)
        self.k.close(fd)
        try:
            fd = open_in_root(self.rootfd, dest, L.O_PATH | os.O_DIRECTORY, extra_resolve, k=self.k)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                # runc's words, which tools match on
                raise MountError("mount destination %s is not a real directory inside the rootfs: "
                                 "proc and sysfs must be mounted on ordinary directory" % dest) from None
            raise
        return fd

    def _remount_bind(self, src, dest, flags):
        # Resolve the destination again: the fd used for the bind still names
        # the dentry under the new mount, and the remount is for the mount.
        fd = open_in_root(self.rootfd, dest, k=self.k)
        try:
            path = fd_path(fd)
            try:
                self.k.mount(None, path, None, L.MS_REMOUNT | L.MS_BIND | flags)
            except PermissionError:
                # Flags locked by the source mount (user namespaces) must be kept.
                self.k.mount(None, path, None, L.MS_REMOUNT | L.MS_BIND | flags | _locked_flags(src, k=self.k))
        finally:
            self.k.close(fd)

    def _mount_cgroup(self, m, flags):
        target = self._dir_target(m.destination)
        try:
            mgr = self.cgroup_manager
            try:
                from .cgroups.mount import mount_cgroup
            except ImportError:
                mount_cgroup = None
            if mount_cgroup is not None and mgr is not None:
                mount_cgroup(fd_path(target), mgr.to_dict(), self.new_cgroupns, bool(flags & L.MS_RDONLY))
            else:
                # Without a cgroup manager: the cgroup2 hierarchy if the host has one.
                self.k.mount("cgroup", fd_path(target), "cgroup2", flags & ~L.MS_REMOUNT)
        finally:
            self.k.close(target)

    # -- /dev -------------------------------------------------------------
    def create_devices(self):
        """linux.devices, then the default nodes the config does not list."""
        for dev in self.spec.linux.devices:
            self.make_device(dev.path, dev.type, dev.major, dev.minor,
                             dev.file_mode if dev.file_mode is not None else 0o666,
                             dev.uid or 0, dev.gid or 0)
        configured = {d.path for d in self.spec.linux.devices}
        for path, dtype, major, minor in DEFAULT_DEVICES:
            if path not in configured:
                self.make_device(path, dtype, major, minor, 0o666, 0, 0)

    def make_device(self, path, dtype, major, minor, mode, uid, gid):
        parent_path, name = os.path.split(path.rstrip("/"))
        parent = make_path_in_root(self.rootfd, parent_path, k=self.k)
        try:
            try:
                self.k.unlink(name, dir_fd=parent)
            except FileNotFoundError:
                pass
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dtype]
            if self.in_userns and dtype != "p":
                # No mknod in a user namespace: bind the host's node instead.
                fd = self.k.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=parent)
                self.k.close(fd)
                target = open_in_root(self.rootfd, path, k=self.k)
                try:
                    self.k.mount(path, fd_path(target), None, L.MS_BIND)
                finally:
                    self.k.close(target)
                return
            self.k.mknod(name, (mode & 0o7777) | kind, os.makedev(major, minor), dir_fd=parent)
            # Owner and mode through a handle on the node just made: a name
            # swapped for a symlink meanwhile is refused, never followed.
            node = self.k.open(name, L.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                st = self.k.fstat(node)
                if stat.S_IFMT(st.st_mode) != kind or (kind != stat.S_IFIFO and st.st_rdev != os.makedev(major, minor)):
                    raise MountError("device %s was replaced while it was being created" % path)
                self.k.chown(fd_path(node), uid, gid)
                self.k.chmod(fd_path(node), mode & 0o7777)
            finally:
                self.k.close(node)
        finally:
            self.k.close(parent)

    def create_dev_symlinks(self):
        dev = make_path_in_root(self.rootfd, "/dev", k=self.k)
        try:
            links = list(DEV_SYMLINKS)
            if self.k.exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core"))
            for target, path in links:
                name = path[5:]
                try:
                    self.k.symlink(target, name, dir_fd=dev)
                except FileExistsError:
                    pass
            # /dev/ptmx follows the container's own devpts instance.
            if any(m.destination.rstrip("/") == "/dev/pts" for m in self.spec.mounts):
                try:
                    self.k.unlink("ptmx", dir_fd=dev)
                except FileNotFoundError:
                    pass
                self.k.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        finally:
            self.k.close(dev)

    # 2. switching root ----------------------------------------------------
    def pivot(self, no_pivot=False):
        if not self.own_mount_ns:
            self.k.chroot(self.rootfs)
            self.k.chdir("/")
        elif no_pivot:
            hide_host_proc_and_sys(self.rootfs, k=self.k)
            self.k.chdir(self.rootfs)
            self.k.mount(self.rootfs, "/", None, L.MS_MOVE)
            self.k.chroot(".")
            self.k.chdir("/")
        else:
            old = self.k.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            new = self.k.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.k.fchdir(new)
                self.k.pivot_root(".", ".")
                # The old root now sits on top of "."; detach it (without
                # letting the unmount propagate back to the host).
                self.k.fchdir(old)
                self.k.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
                self.k.umount2(".", L.MNT_DETACH)
            finally:
                self.k.close(old)
                self.k.close(new)
            self.k.chdir("/")
        if self.rootfd >= 0:
            self.k.close(self.rootfd)
            self.rootfd = -1
        # Before anything after pivot_root goes by the names /proc or /sys
        # (console, sysctls, masked and read-only paths).
        self.check_pinned()

    # 3. after pivot_root ----------------------------------------------------
    def finalize(self):
        lx = self.spec.linux
        try:
            for path in lx.readonly_paths:
                readonly_path(*self._base(path), k=self.k)
            for path in lx.masked_paths:
                mask_path(*self._base(path), k=self.k)
        finally:
            self.close_pinned()
        if self.spec.root.readonly and self.own_mount_ns:
            remount_readonly("/", k=self.k)
        if self.dev_readonly:
            remount_readonly("/dev", k=self.k)
        if lx.rootfs_propagation and self.own_mount_ns:
            self.k.mount(None, "/", None, PROPAGATION_OPTIONS[lx.rootfs_propagation])

    def _base(self, path):
        """(dirfd, relative path, resolve flags, shown path) to look `path`
        up from.  Under a proc/sysfs mount this container got (/proc/kcore,
        /proc/sys, /sys/firmware): from the handle of that very mount, never
        through the name /proc, which the image (or a racing process) could
        have pointed elsewhere."""
        norm = _norm(path)
        best = None
        for dest in self.pinned:
            if norm == dest or norm.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) > len(best):
                    best = dest
        if best is None:
            return L.AT_FDCWD, norm, L.RESOLVE_NO_MAGICLINKS, path
        rel = norm[len(best):].lstrip("/") or "."
        return self.pinned[best], rel, L.RESOLVE_BENEATH | L.RESOLVE_NO_MAGICLINKS, path


_PINNED_FS = {"proc": PROC_SUPER_MAGIC, "sysfs": 0x62656572}  # SYSFS_MAGIC


def open_bind_sources(mounts):
    """{mount index: O_PATH fd} of the bind mounts' sources (idmapped ones
    have their own clones).  A source that cannot be opened is left to
    mount_one, which reports it."""
    fds = {}
    for i, m in enumerate(mounts):
        if m.idmapped or not (parse_options(m.options)[0] & L.MS_BIND or m.type == "bind"):
            continue
        try:
            fds[i] = os.open(m.source, L.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
    return fds


def hide_host_proc_and_sys(rootfs, k=L):
    """--no-pivot leaves the host's mounts under the container's root in
    this mount namespace: a fully visible procfs or sysfs there would let
    the container mount a fresh, unmasked one (the kernel allows that only
    where one is fully visible).  Detach each, or cover it with a tmpfs
    where that is refused (runc's msMoveRoot)."""
    inside = rootfs.rstrip("/") + "/"
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().decode(errors="surrogateescape").splitlines()
    points = []
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, fstype = head.split(), tail.split(" ", 1)[0]
        root, point = fields[3], _unescape(fields[4])
        if root == "/" and fstype in ("proc", "sysfs") and not (point + "/").startswith(inside):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        try:
            k.mount(None, point, None, L.MS_SLAVE | L.MS_REC)  # no unmount event reaches the host
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno == errno.EINVAL:  # gone with a parent already detached
                continue
            raise
        try:
            k.umount2(point, L.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EINVAL):  # cover it instead
                raise
            k.mount("tmpfs", point, "tmpfs", 0, None)


def _norm(path):
    """/a/b form of a container path ("a//b/", "/a/./b" -> "/a/b")."""
    return os.path.normpath("/" + path.lstrip("/"))


def _same_inode(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _locked_flags(path, k=L):
    try:
        f = k.statvfs(path).f_flag
    except OSError:
        return 0
    flags = 0
    for st_bit, ms_bit in _ST_LOCKED:
        if f & st_bit:
            flags |= ms_bit
    return flags


def remount_readonly(path, k=L):
    try:
        k.mount(None, path, None, L.MS_REMOUNT | L.MS_BIND | L.MS_RDONLY)
    except PermissionError:
        k.mount(None, path, None, L.MS_REMOUNT | L.MS_BIND | L.MS_RDONLY | _locked_flags(path, k=k))


def readonly_path(dirfd, rel, resolve, shown, k=L):
    """A read-only copy of the mount tree at `rel` (under `dirfd`) attached
    over itself, every mount in it read-only: all through handles
    (open_tree, mount_setattr, move_mount), nothing looked up by path."""
    try:
        fd = k.openat2(dirfd, rel, L.O_PATH, resolve)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise MountError("linux.readonlyPaths: %s: %s" % (shown, e.strerror)) from None
    try:
        tree = k.open_tree(fd, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC | L.AT_RECURSIVE | L.AT_EMPTY_PATH)
        try:
            k.mount_setattr(tree, "", L.AT_EMPTY_PATH | L.AT_RECURSIVE, attr_set=L.MOUNT_ATTR_RDONLY)
            k.move_mount(tree, "", fd, "", L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            k.close(tree)
    except OSError as e:
        raise MountError("linux.readonlyPaths: %s: %s" % (shown, e.strerror)) from None
    finally:
        k.close(fd)


def _verified_dev_null(k=L):
    """An fd of a real /dev/null (char 1:3), never a file the container put
    there (CVE-2025-31133)."""
    fd = k.open("/dev/null", L.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
    st = k.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        k.close(fd)
        raise MountError("/dev/null in the container is not the null device (1:3); refusing to mask with it")
    return fd


def mask_path(dirfd, rel, resolve, shown, k=L):
    """Over a directory: an empty read-only tmpfs; over anything else: the
    verified /dev/null.  Runs after pivot_root, where /proc is whatever the
    container has: attached fd to fd, never through /proc/self/fd paths."""
    try:
        fd = k.openat2(dirfd, rel, L.O_PATH | os.O_NOFOLLOW, resolve)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise MountError("linux.maskedPaths: %s: %s" % (shown, e.strerror)) from None
    try:
        if stat.S_ISDIR(k.fstat(fd).st_mode):
            mount_empty_readonly_tmpfs(fd, k=k)
        else:
            null = _verified_dev_null(k=k)
            try:
                bind_fd_onto_fd(null, fd, k=k)
            finally:
                k.close(null)
    except OSError as e:
        raise MountError("linux.maskedPaths: %s: %s" % (shown, e.strerror)) from None
    finally:
        k.close(fd)


def mount_empty_readonly_tmpfs(target_fd, k=L):
    """A read-only tmpfs on the directory behind target_fd, made and
    attached by fd (fsopen/fsmount/move_mount): no path lookup."""
    fs = k.fsopen("tmpfs")
    try:
        k.fsconfig(fs, L.FSCONFIG_CMD_CREATE)
        mnt = k.fsmount(fs, L.FSMOUNT_CLOEXEC, L.MOUNT_ATTR_RDONLY)
    finally:
        k.close(fs)
    try:
        k.move_mount(mnt, "", target_fd, "", L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        k.close(mnt)


def bind_fd_onto_fd(source_fd, target_fd, k=L):
    """Bind-mount the file behind source_fd onto the one behind target_fd,
    fd to fd (open_tree + move_mount): no path is looked up, so nothing in
    the container (a /proc that is not procfs, with planted self/fd links:
    the class of CVE-2025-52565) can steer the mount."""
    tree = k.open_tree(source_fd, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC | L.AT_EMPTY_PATH)
    try:
        k.move_mount(tree, "", target_fd, "", L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        k.close(tree)

