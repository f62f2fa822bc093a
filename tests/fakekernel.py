"""A recording fake of pyrunc's kernel seam (the `linux` module's names):
every call is appended to `calls`, with fds shown as the paths they name,
and a small in-memory filesystem answers the lookups the rootfs steps make
(openat2 inside a root, mkdir, mknod, fstat, symlinks, mounts by fd).  No
root, no namespaces, nothing on the host touched: the mount plan, the
namespace join order and the spawn's syscalls are unit-tested on it.

    k = FakeKernel(dirs=["/b/rootfs/proc", ...])
    RootfsBuilder(spec, "/b/rootfs", kernel=k).prepare()
    k.mounts()   # [("proc", "/b/rootfs/proc", "proc", flags, data), ...]

`fork` is the real os.fork (a child is not privileged); `execve` records
the call, writes `calls` to `log_path` (JSON) if given and exits 0, as a
successful exec would (close-on-exec fds close).  `fail[name] = exc`
makes the next call of that name raise exc.
"""
import json
import os
import stat
import types

from pyrunc import linux

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
FS_MAGIC = {"proc": PROC_SUPER_MAGIC, "sysfs": SYSFS_MAGIC, "tmpfs": TMPFS_MAGIC}
FD_PREFIX = "/proc/self/fd/"


class FakeKernel:
    def __init__(self, dirs=(), files=(), log_path=None):
        self.calls = []
        self.nodes = {"/": ("dir",)}  # path -> ("dir",) | ("file",) | ("link", target) | ("chr"/"blk"/"fifo", rdev)
        self.mounted = {}  # path -> fs type mounted there
        self.fds = {}  # fd -> path
        self._next = 1000
        self.root = ""  # prefix after pivot_root/chroot
        self.cwd = "/"
        self.fail = {}
        self.log_path = log_path
        for d in dirs:
            self.add(d, ("dir",))
        for f in files:
            self.add(f, ("file",))

    # -- the fake filesystem ---------------------------------------------------
    def add(self, path, node):
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts)):
            self.nodes.setdefault("/" + "/".join(parts[:i]), ("dir",))
        self.nodes["/" + "/".join(parts)] = node

    def _record(self, name, *args):
        self.calls.append((name,) + args)
        exc = self.fail.pop(name, None)
        if exc is not None:
            raise exc

    def _new_fd(self, path):
        fd = self._next
        self._next += 1
        self.fds[fd] = path
        return fd

    def _abs(self, path, dir_fd=None):
        """A path (absolute: under the current root; relative: from dir_fd
        or the cwd) as a host path of the fake filesystem."""
        path = os.fsdecode(path)
        if path.startswith(FD_PREFIX):
            return self.fds[int(path[len(FD_PREFIX):])]
        if path.startswith("/"):
            base = self.root or "/"
            rel = path.lstrip("/")
        else:
            base = self.cwd if dir_fd in (None, linux.AT_FDCWD) else self.fds[dir_fd]
            rel = path
        return os.path.normpath(os.path.join(base, rel)) if rel not in ("", ".") else base

    def _lookup(self, path, follow=True, depth=0):
        node = self.nodes.get(path)
        if node is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if node[0] == "link" and follow:
            if depth > 40:
                raise OSError(40, "Too many levels of symbolic links", path)
            target = node[1]
            nxt = os.path.normpath(os.path.join(os.path.dirname(path), target)) if not target.startswith("/") \
                else os.path.normpath((self.root or "") + target)
            return self._lookup(nxt, follow, depth + 1)
        return path

    def shown(self, fd_or_path):
        if isinstance(fd_or_path, int):
            return self.fds.get(fd_or_path, fd_or_path)
        return self._abs(fd_or_path) if str(fd_or_path).startswith(FD_PREFIX) else fd_or_path

    # -- what the rootfs / namespace / process steps call ----------------------------
    def open(self, path, flags, mode=0o777, dir_fd=None):
        full = self._abs(path, dir_fd)
        self._record("open", full)
        if full not in self.nodes and flags & os.O_CREAT:
            self.nodes[full] = ("file",)
        return self._new_fd(self._lookup(full, follow=not flags & os.O_NOFOLLOW))

    def openat2(self, dirfd, path, flags, resolve, mode=0):
        if dirfd == linux.AT_FDCWD or os.fsdecode(path).startswith("/") and not resolve & linux.RESOLVE_IN_ROOT:
            full = self._abs(path)
        else:
            full = os.path.normpath(os.path.join(self.fds[dirfd], os.fsdecode(path).lstrip("/")))
        self._record("openat2", full)
        found = self._lookup(full, follow=not (flags & os.O_NOFOLLOW or resolve & linux.RESOLVE_NO_SYMLINKS))
        if flags & os.O_DIRECTORY and self.nodes[found][0] != "dir":
            raise NotADirectoryError(20, "Not a directory", full)
        return self._new_fd(found)

    def close(self, fd):
        self.fds.pop(fd, None)

    def fstat(self, fd):
        path = self.fds[fd]
        node = self.nodes[path]
        kind = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "link": stat.S_IFLNK, "chr": stat.S_IFCHR,
                "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO}[node[0]]
        rdev = node[1] if node[0] in ("chr", "blk") else 0
        return types.SimpleNamespace(st_mode=kind | 0o755, st_rdev=rdev, st_dev=1, st_ino=hash(path) & 0xFFFFFF)

    def fstatfs_type(self, fd):
        path = self.fds[fd]
        while True:
            if path in self.mounted:
                return FS_MAGIC.get(self.mounted[path], 0xEF53)
            if path == "/":
                return 0xEF53  # ext4
            path = os.path.dirname(path)

    def mkdir(self, name, mode=0o777, dir_fd=None):
        full = self._abs(name, dir_fd)
        self._record("mkdir", full)
        if full in self.nodes:
            raise FileExistsError(17, "File exists", full)
        self.nodes[full] = ("dir",)

    def mknod(self, name, mode, device=0, dir_fd=None):
        full = self._abs(name, dir_fd)
        kind = {stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo"}[stat.S_IFMT(mode)]
        self._record("mknod", full, kind, os.major(device), os.minor(device), mode & 0o7777)
        self.nodes[full] = (kind, device)

    def unlink(self, name, dir_fd=None):
        full = self._abs(name, dir_fd)
        if full not in self.nodes:
            raise FileNotFoundError(2, "No such file or directory", full)
        self._record("unlink", full)
        del self.nodes[full]

    def symlink(self, target, name, dir_fd=None):
        full = self._abs(name, dir_fd)
        if full in self.nodes:
            raise FileExistsError(17, "File exists", full)
        self._record("symlink", full, target)
        self.nodes[full] = ("link", target)

    def readlink(self, path, dir_fd=None):
        return self.nodes[self._abs(path, dir_fd)][1]

    def chown(self, path, uid, gid):
        self._record("chown", self._abs(path), uid, gid)

    def chmod(self, path, mode):
        self._record("chmod", self._abs(path), mode)

    def exists(self, path):
        return self._abs(path) in self.nodes

    def isdir(self, path):
        return self.nodes.get(self._abs(path), ("",))[0] == "dir"

    def realpath(self, path):
        return path

    def statvfs(self, path):
        return types.SimpleNamespace(f_flag=0)

    def mount(self, source, target, fstype, flags=0, data=None):
        full = self._abs(target)
        self._record("mount", source, full, fstype, flags, data)
        if fstype and not flags & (linux.MS_REMOUNT | linux.MS_BIND):
            self.mounted[full] = fstype

    def umount2(self, target, flags=0):
        self._record("umount2", self._abs(target), flags)

    def mount_setattr(self, dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0, userns_fd=0):
        self._record("mount_setattr", self.fds[dirfd], attr_set, attr_clr)

    def open_tree(self, dirfd, path, flags):
        self._record("open_tree", self.fds[dirfd])
        return self._new_fd(self.fds[dirfd])

    def move_mount(self, from_fd, from_path, to_fd, to_path, flags):
        self._record("move_mount", self.fds[from_fd], self.fds[to_fd])

    def fsopen(self, fsname, flags=0):
        self._record("fsopen", fsname)
        return self._new_fd("<fs %s>" % fsname)

    def fsconfig(self, fd, cmd, key=None, value=None, aux=0):
        self._record("fsconfig", cmd)

    def fsmount(self, fd, flags=0, attr_flags=0):
        self._record("fsmount", attr_flags)
        return self._new_fd(self.fds[fd])

    def pivot_root(self, new_root, put_old):
        self._record("pivot_root", self._abs(new_root))
        self.root = self._abs(new_root)

    def chroot(self, path):
        self._record("chroot", self._abs(path))
        self.root = self._abs(path)

    def chdir(self, path):
        self._record("chdir", self._abs(path))
        self.cwd = self._abs(path)

    def fchdir(self, fd):
        self._record("fchdir", self.fds[fd])
        self.cwd = self.fds[fd]

    # -- namespaces, credentials, process ------------------------------------------
    def unshare(self, flags):
        self._record("unshare", flags)

    def setns(self, fd, nstype=0):
        self._record("setns", nstype)

    def set_dumpable(self, flag):
        self._record("set_dumpable", bool(flag))

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        self._record("prctl", option, a2)
        return 0

    def sethostname(self, name):
        self._record("sethostname", name)

    def setdomainname(self, name):
        self._record("setdomainname", name)

    def setsid(self):
        self._record("setsid")

    def setgroups(self, gids):
        self._record("setgroups", list(gids))

    def setresuid(self, r, e, s):
        self._record("setresuid", r, e, s)

    def setresgid(self, r, e, s):
        self._record("setresgid", r, e, s)

    def umask(self, mask):
        self._record("umask", mask)
        return 0o022

    def write(self, fd, data):
        self._record("write", self.shown(fd), bytes(data))
        return len(data)

    def fork(self):
        self._record("fork")
        return os.fork()

    def execve(self, path, args, env):
        self._record("execve", path, list(args))
        if self.log_path:
            with open(self.log_path, "w") as f:
                json.dump(self.calls, f)
        os._exit(0)  # as a successful exec: close-on-exec fds close

    # -- reading the record -----------------------------------------------------------
    def named(self, *names):
        return [c for c in self.calls if c[0] in names]

    def mounts(self):
        return [c[1:] for c in self.calls if c[0] == "mount"]
