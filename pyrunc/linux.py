"""Python face of the C shim: syscalls the os module lacks, raising OSError.

Constants live here too so that no caller needs the shim's internals; the
clone, mount and prctl ones are declared to cffi and take their values from
the C headers when the shim is built (_native/build_core.py).
"""
import errno
import os

from ._native_core import ffi, lib

# clone/unshare/setns flags
CLONE_NEWTIME = lib.CLONE_NEWTIME
CLONE_NEWNS = lib.CLONE_NEWNS
CLONE_NEWCGROUP = lib.CLONE_NEWCGROUP
CLONE_NEWUTS = lib.CLONE_NEWUTS
CLONE_NEWIPC = lib.CLONE_NEWIPC
CLONE_NEWUSER = lib.CLONE_NEWUSER
CLONE_NEWPID = lib.CLONE_NEWPID
CLONE_NEWNET = lib.CLONE_NEWNET

# mount(2) flags
MS_RDONLY = lib.MS_RDONLY
MS_NOSUID = lib.MS_NOSUID
MS_NODEV = lib.MS_NODEV
MS_NOEXEC = lib.MS_NOEXEC
MS_SYNCHRONOUS = lib.MS_SYNCHRONOUS
MS_REMOUNT = lib.MS_REMOUNT
MS_MANDLOCK = lib.MS_MANDLOCK
MS_DIRSYNC = lib.MS_DIRSYNC
MS_NOSYMFOLLOW = lib.MS_NOSYMFOLLOW
MS_NOATIME = lib.MS_NOATIME
MS_NODIRATIME = lib.MS_NODIRATIME
MS_BIND = lib.MS_BIND
MS_MOVE = lib.MS_MOVE
MS_REC = lib.MS_REC
MS_SILENT = lib.MS_SILENT
MS_POSIXACL = lib.MS_POSIXACL
MS_UNBINDABLE = lib.MS_UNBINDABLE
MS_PRIVATE = lib.MS_PRIVATE
MS_SLAVE = lib.MS_SLAVE
MS_SHARED = lib.MS_SHARED
MS_RELATIME = lib.MS_RELATIME
MS_I_VERSION = lib.MS_I_VERSION
MS_STRICTATIME = lib.MS_STRICTATIME
MS_LAZYTIME = lib.MS_LAZYTIME

MNT_DETACH = lib.MNT_DETACH
UMOUNT_NOFOLLOW = lib.UMOUNT_NOFOLLOW

# prctl(2)
PR_SET_PDEATHSIG = lib.PR_SET_PDEATHSIG
PR_SET_DUMPABLE = lib.PR_SET_DUMPABLE
PR_SET_KEEPCAPS = lib.PR_SET_KEEPCAPS
PR_CAPBSET_READ = lib.PR_CAPBSET_READ
PR_CAPBSET_DROP = lib.PR_CAPBSET_DROP
PR_SET_NO_NEW_PRIVS = lib.PR_SET_NO_NEW_PRIVS
PR_SET_CHILD_SUBREAPER = lib.PR_SET_CHILD_SUBREAPER
PR_CAP_AMBIENT = lib.PR_CAP_AMBIENT
PR_CAP_AMBIENT_RAISE = lib.PR_CAP_AMBIENT_RAISE
PR_CAP_AMBIENT_CLEAR_ALL = lib.PR_CAP_AMBIENT_CLEAR_ALL

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
