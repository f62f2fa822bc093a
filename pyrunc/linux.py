"""Python face of the C shim: syscalls the os module lacks, raising OSError.

Constants live here too so that no caller needs the shim's internals.
"""
import errno
import os

from ._native_core import ffi, lib

# clone/unshare/setns flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_POSIXACL = 0x10000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = 0o10000000

# open_tree / move_mount / mount_setattr
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_IDMAP = 0x100000


# The kernel seam: the spawn, namespace, rootfs and process steps make every
# syscall through one object, this module by default; tests/fakekernel.py is
# a recording fake with the same names.  Besides the shim's calls below,
# these are the os module's.
open = os.open
close = os.close
fstat = os.fstat
mkdir = os.mkdir
mknod = os.mknod
chown = os.chown
chmod = os.chmod
symlink = os.symlink
unlink = os.unlink
readlink = os.readlink
chdir = os.chdir
fchdir = os.fchdir
statvfs = os.statvfs
exists = os.path.exists
isdir = os.path.isdir
realpath = os.path.realpath
fork = os.fork
setsid = os.setsid
setgroups = os.setgroups
setresuid = os.setresuid
setresgid = os.setresgid
umask = os.umask
execve = os.execve
write = os.write


def _check(rc, what=None):
    if rc < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), what) if what else OSError(err, os.strerror(err))
    return rc


def _b(path):
    return path if path is None or isinstance(path, bytes) else os.fsencode(path)


def unshare(flags):
    _check(lib.unshare(flags))


def setns(fd, nstype=0):
    _check(lib.setns(fd, nstype))


def mount(source, target, fstype, flags=0, data=None):
    src = _b(source) if source is not None else ffi.NULL
    fst = _b(fstype) if fstype is not None else ffi.NULL
    dat = _b(data) if data else ffi.NULL
    _check(lib.mount(src, _b(target), fst, flags, dat), target)


def umount2(target, flags=0):
    _check(lib.umount2(_b(target), flags), target)


def pivot_root(new_root, put_old):
    _check(lib.pyrunc_pivot_root(_b(new_root), _b(put_old)), new_root)


def chroot(path):
    _check(lib.chroot(_b(path)), path)


def sethostname(name):
    b = name.encode()
    _check(lib.sethostname(b, len(b)))


def setdomainname(name):
    b = name.encode()
    _check(lib.setdomainname(b, len(b)))


def prctl(option, a2=0, a3=0, a4=0, a5=0):
    return _check(lib.pyrunc_prctl(option, a2, a3, a4, a5))


def set_dumpable(flag):
    prctl(PR_SET_DUMPABLE, 1 if flag else 0)


OPENAT2_ATTEMPTS = 128


def openat2(dirfd, path, flags, resolve, mode=0):
    """openat2(2).  With RESOLVE_IN_ROOT/BENEATH the kernel answers EAGAIN
    when any rename or mount happened on the system during the lookup (it
    cannot vouch for the result): that is retried, not an error, or a busy
    host would fail container creates at random."""
    bpath = _b(path)
    for _ in range(OPENAT2_ATTEMPTS - 1):
        rc = lib.pyrunc_openat2(dirfd, bpath, flags | os.O_CLOEXEC, mode, resolve)
        if rc >= 0 or ffi.errno != errno.EAGAIN:
            return _check(rc, path)
    return _check(lib.pyrunc_openat2(dirfd, bpath, flags | os.O_CLOEXEC, mode, resolve), path)


def capget(pid=0):
    """-> (effective, permitted, inheritable) as 64-bit masks."""
    out = ffi.new("uint32_t[6]")
    _check(lib.pyrunc_capget(pid, out))
    return tuple(out[2 * i] | (out[2 * i + 1] << 32) for i in range(3))


def capset(effective, permitted, inheritable):
    data = ffi.new("uint32_t[6]")
    for i, mask in enumerate((effective, permitted, inheritable)):
        data[2 * i] = mask & 0xFFFFFFFF
        data[2 * i + 1] = mask >> 32
    _check(lib.pyrunc_capset(data))


def open_tree(dirfd, path, flags):
    return _check(lib.pyrunc_open_tree(dirfd, _b(path), flags), path)


def move_mount(from_fd, from_path, to_fd, to_path, flags):
    _check(lib.pyrunc_move_mount(from_fd, _b(from_path), to_fd, _b(to_path), flags), to_path)


def mount_setattr(dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0, userns_fd=0):
    _check(lib.pyrunc_mount_setattr(dirfd, _b(path), flags, attr_set, attr_clr, propagation, userns_fd), path)


def fsopen(fsname, flags=FSOPEN_CLOEXEC):
    return _check(lib.pyrunc_fsopen(_b(fsname), flags), fsname)


def fsconfig(fd, cmd, key=None, value=None, aux=0):
    _check(lib.pyrunc_fsconfig(fd, cmd, _b(key) if key is not None else ffi.NULL,
                               _b(value) if value is not None else ffi.NULL, aux))


def fsmount(fd, flags=FSMOUNT_CLOEXEC, attr_flags=0):
    return _check(lib.pyrunc_fsmount(fd, flags, attr_flags))


def fork_into_cgroup(cgroup_fd):
    """os.fork() whose child is born in the cgroup v2 directory open at
    cgroup_fd (clone3 with CLONE_INTO_CGROUP, Linux 5.7): it is never moved
    there, so nobody writes cgroup.procs, whose global lock makes the first
    writer after a quiet spell wait for an RCU grace period (8-20 ms of wall
    time here).  OSError when the kernel refuses (ENOSYS/E2BIG before 5.7,
    EBADF for a directory that is not cgroup2, EACCES, ...)."""
    from ._native_clone import fork_into_cgroup as clone

    return clone(cgroup_fd)


def join_session_keyring(name):
    return _check(lib.pyrunc_keyctl_join(_b(name) if name else ffi.NULL))


def fstatfs_type(fd):
    """f_type of the filesystem holding fd (e.g. PROC_SUPER_MAGIC)."""
    return _check(lib.pyrunc_fstatfs_type(fd))


def personality(persona):
    return _check(lib.pyrunc_personality(persona))


def ioprio_set(which, who, ioprio):
    _check(lib.pyrunc_ioprio_set(which, who, ioprio))


def sched_setattr(pid, policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0):
    _check(lib.pyrunc_sched_setattr(pid, policy, flags, nice, priority, runtime, deadline, period))


def set_mempolicy(mode, node_words):
    """set_mempolicy(2) for the calling thread; node_words: the nodemask as
    64-bit words (an empty list: no nodemask)."""
    if not node_words:
        _check(lib.pyrunc_set_mempolicy(mode, ffi.NULL, 0))
        return
    mask = ffi.new("unsigned long[]", node_words)
    # The kernel reads maxnode - 1 bits (a historical off-by-one).
    _check(lib.pyrunc_set_mempolicy(mode, mask, len(node_words) * 64 + 1))
