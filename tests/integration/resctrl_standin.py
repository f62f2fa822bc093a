"""A stand-in for the kernel's resctrl filesystem, for hosts without Intel
RDT (resctrl is then not even registered, so the real one cannot be
mounted).  Run as a script by tests/integration/test_intel_rdt.py, inside
the private mount namespace the test makes (`unshare --mount`):

    resctrl_standin.py < {"preset": {...}, "steps": ["shell command", ...],
                          "info": ["L3", "MB"]  (optional: resources the "hardware" has)}

It mounts a small FUSE filesystem at /sys/fs/resctrl (the kernel's
conventional mount point, on a tmpfs laid over /sys/fs in this namespace
only, the cgroup mounts moved back under it), runs each step with sh,
and prints JSON: per step its exit status, output and the filesystem's
tree afterwards, plus every write made to a `schemata` file, in order.

What it copies from resctrl (Documentation/arch/x86/resctrl.rst), so
that pyrunc meets the same rules as on real hardware: a group is made
only by mkdir at the top (a CTRL_MON group, which gets `tasks`,
`schemata` and `mon_groups/`) or in a `mon_groups` (a MON group, which
gets `tasks`); files cannot be created or removed; rmdir takes a group
with everything in it; `tasks` takes one pid per write (a MON group only
pids of its parent group); `schemata` takes "NAME:id=value;..." lines for
known resources and domains and reads back normalized and padded.
"""
import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading

RESOURCES = {"L3": {"0": "7ff"}, "L2": {"0": "ff"}, "MB": {"0": "100"}}
HEX_RESOURCES = ("L3", "L2")
ENOENT, EPERM, EEXIST, EINVAL, ENOSYS, ENOTDIR, EISDIR = 2, 1, 17, 22, 38, 20, 21


class Node:
    def __init__(self, name, parent, is_dir, kind=""):
        self.name, self.parent, self.is_dir, self.kind = name, parent, is_dir, kind
        self.children = {}
        self.pids = []  # tasks
        self.schemata = {r: dict(d) for r, d in RESOURCES.items()}

    def path(self):
        return "" if self.parent is None else (self.parent.path() + "/" + self.name).lstrip("/")


class Resctrl:
    """The tree and its rules; inode numbers are ids into self.nodes."""

    def __init__(self, info_resources=tuple(RESOURCES)):
        self.nodes = {}
        self.next_ino = 1
        self.writes = []
        self.lock = threading.Lock()  # the server thread against tree()
        self.root = self._add(None, "", True, "ctrl")
        info = self._add(self.root, "info", True)
        self._add(info, "last_cmd_status", False, "status")
        for res in info_resources:  # resctrl: one info dir per resource the hardware has
            self._add(info, res, True)
        self._populate(self.root, "ctrl")

    def _add(self, parent, name, is_dir, kind=""):
        node = Node(name, parent, is_dir, kind)
        node.ino = self.next_ino
        self.nodes[node.ino] = node
        self.next_ino += 1
        if parent is not None:
            parent.children[name] = node
        return node

    def _populate(self, group, kind):
        self._add(group, "tasks", False, "tasks")
        if kind == "ctrl":
            self._add(group, "schemata", False, "schemata")
            self._add(group, "mon_groups", True, "mon_groups")

    def mkdir(self, parent, name):
        if name in parent.children:
            return EEXIST
        if parent is self.root:
            kind = "ctrl"
        elif parent.kind == "mon_groups":
            kind = "mon"
        else:
            return EPERM
        self._populate(self._add(parent, name, True, kind), kind)
        return 0

    def rmdir(self, parent, name):
        node = parent.children.get(name)
        if node is None:
            return ENOENT
        if node.kind not in ("ctrl", "mon"):
            return EPERM
        self._drop(node)
        del parent.children[name]
        return 0

    def _drop(self, node):
        for child in node.children.values():
            self._drop(child)
        self.nodes.pop(node.ino, None)

    def read(self, node):
        group = node.parent
        if node.kind == "tasks":
            return "".join("%d\n" % p for p in group.pids)
        if node.kind == "schemata":
            return "".join("%4s:%s\n" % (r, ";".join("%s=%s" % kv for kv in sorted(d.items())))
                           for r, d in group.schemata.items())
        return "ok\n" if node.kind == "status" else ""

    def write(self, node, data):
        group = node.parent
        if node.kind == "tasks":
            return self._add_task(group, data)
        if node.kind == "schemata":
            self.writes.append([node.path(), data])
            return self._set_schemata(group, data)
        return EPERM

    def _add_task(self, group, data):
        try:
            pid = int(data.strip())
        except ValueError:
            return EINVAL
        if group.kind == "mon" and pid not in group.parent.parent.pids:
            return EINVAL  # a MON group takes tasks of its CTRL_MON group only
        if group.kind == "ctrl":
            for other in self.nodes.values():
                if other.kind == "ctrl" and pid in other.pids:
                    other.pids.remove(pid)
        group.pids.append(pid)
        return 0

    def _set_schemata(self, group, data):
        for line in data.splitlines():
            name, _, domains = line.strip().partition(":")
            table = group.schemata.get(name.strip())
            if table is None:
                return EINVAL
            for item in domains.split(";"):
                dom, _, value = item.partition("=")
                if dom.strip() not in table:
                    return EINVAL
                try:
                    n = int(value, 16 if name.strip() in HEX_RESOURCES else 10)
                except ValueError:
                    return EINVAL
                table[dom.strip()] = ("%x" if name.strip() in HEX_RESOURCES else "%d") % n
        return 0

    def tree(self):
        out = {}
        for node in self.nodes.values():
            if node.parent is None:
                continue
            out[node.path() + ("/" if node.is_dir else "")] = "" if node.is_dir else self.read(node)
        return out


# -- the FUSE protocol (include/uapi/linux/fuse.h), the few requests used --
IN_HEADER = struct.Struct("=IIQQIIIHH")
OUT_HEADER = struct.Struct("=IiQ")
ATTR = struct.Struct("=QQQQQQIIIIIIIIII")
FOPEN_DIRECT_IO = 1
FATTR_SIZE = 1 << 3
(LOOKUP, FORGET, GETATTR, SETATTR, MKDIR, UNLINK, RMDIR, OPEN, READ, WRITE, STATFS, RELEASE,
 FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, DESTROY, BATCH_FORGET) = (
    1, 2, 3, 4, 9, 10, 11, 14, 15, 16, 17, 18, 25, 26, 27, 28, 29, 38, 42)


class Server:
    def __init__(self, fs, fd):
        self.fs, self.fd = fs, fd

    def attr(self, node):
        size = 0 if node.is_dir else len(self.fs.read(node))
        mode = 0o40755 if node.is_dir else 0o100644
        return ATTR.pack(node.ino, size, 0, 0, 0, 0, 0, 0, 0, mode, 2 if node.is_dir else 1,
                         0, 0, 0, 4096, 0)

    def entry(self, node):
        return struct.pack("=QQQQII", node.ino, 0, 0, 0, 0, 0) + self.attr(node)

    def serve(self):
        while True:
            try:
                req = os.read(self.fd, 1 << 18)
            except OSError:
                return  # unmounted
            _, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(req)
            if opcode in (FORGET, BATCH_FORGET):
                continue
            with self.fs.lock:
                try:
                    err, body = self.handle(opcode, nodeid, req[IN_HEADER.size:])
                except Exception as e:  # noqa: B902  (a bug here must not hang the test)
                    print("resctrl stand-in: %r" % e, file=sys.stderr)
                    err, body = 5, b""  # EIO
            try:
                os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -err, unique) + body)
            except OSError:
                pass  # the request was interrupted
            if opcode == DESTROY:
                return

    def handle(self, op, nodeid, arg):
        fs = self.fs
        node = fs.nodes.get(nodeid)
        if op == INIT:
            major, minor, readahead, _ = struct.unpack_from("=IIII", arg)
            return 0, struct.pack("=IIIIHHIIHHII", 7, 31, readahead, 0, 0, 0, 1 << 17, 1, 0, 0, 0, 0) + bytes(24)
        if op == DESTROY:
            return 0, b""
        if node is None:
            return ENOENT, b""
        name = arg.split(b"\0", 1)[0].decode(errors="replace")
        if op == LOOKUP:
            child = node.children.get(name)
            return (0, self.entry(child)) if child is not None else (ENOENT, b"")
        if op == GETATTR:
            return 0, struct.pack("=QII", 0, 0, 0) + self.attr(node)
        if op == SETATTR:
            valid = struct.unpack_from("=I", arg)[0]
            size = struct.unpack_from("=Q", arg, 16)[0]
            if valid & FATTR_SIZE and size != 0:
                return EINVAL, b""  # open(O_TRUNC) is fine: the kernel's files have no size
            return 0, struct.pack("=QII", 0, 0, 0) + self.attr(node)
        if op == MKDIR:
            name = arg[8:].split(b"\0", 1)[0].decode()
            err = fs.mkdir(node, name)
            return (err, b"") if err else (0, self.entry(node.children[name]))
        if op == RMDIR:
            return fs.rmdir(node, name), b""
        if op == UNLINK:
            return EPERM, b""
        if op in (OPEN, OPENDIR):
            if node.is_dir != (op == OPENDIR):
                return (EISDIR if node.is_dir else ENOTDIR), b""
            return 0, struct.pack("=QII", 0, FOPEN_DIRECT_IO if op == OPEN else 0, 0)
        if op == READ:
            _, offset, size = struct.unpack_from("=QQI", arg)
            return 0, fs.read(node).encode()[offset:offset + size]
        if op == WRITE:
            _, _, size = struct.unpack_from("=QQI", arg)
            data = arg[40:40 + size].decode()
            err = fs.write(node, data)
            return (err, b"") if err else (0, struct.pack("=II", size, 0))
        if op == READDIR:
            _, offset, size = struct.unpack_from("=QQI", arg)
            return 0, self.dirents(node, offset, size)
        if op in (RELEASE, RELEASEDIR, FLUSH):
            return 0, b""
        if op == STATFS:
            return 0, struct.pack("=QQQQQIIII", 0, 0, 0, 0, 0, 4096, 255, 4096, 0) + bytes(24)
        return ENOSYS, b""

    def dirents(self, node, offset, size):
        entries = [(".", node), ("..", node.parent or node)] + list(node.children.items())
        out = b""
        for i, (name, child) in enumerate(entries[offset:], offset + 1):
            raw = name.encode()
            ent = struct.pack("=QQII", child.ino, i, len(raw), 4 if child.is_dir else 8) + raw
            ent += bytes(-len(ent) % 8)
            if len(out) + len(ent) > size:
                break
            out += ent
        return out


def mount_standin(fs):
    """tmpfs over /sys/fs (this namespace only), the cgroup mounts moved
    back under it, and the FUSE filesystem at /sys/fs/resctrl."""
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(src, target, fstype, flags, data):
        if libc.mount(src.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "mount %s: %s" % (target, os.strerror(err)))

    MS_BIND, MS_REC, MS_MOVE = 4096, 16384, 8192
    saved = "/run/pyrunc-test-cgroup-%d" % os.getpid()
    os.makedirs(saved)
    mount("/sys/fs/cgroup", saved, "", MS_BIND | MS_REC, "")
    mount("tmpfs", "/sys/fs", "tmpfs", 0, "mode=755")
    os.mkdir("/sys/fs/cgroup")
    os.mkdir("/sys/fs/resctrl")
    mount(saved, "/sys/fs/cgroup", "", MS_MOVE, "")
    os.rmdir(saved)
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    mount("resctrl", "/sys/fs/resctrl", "fuse", 0, "fd=%d,rootmode=40755,user_id=0,group_id=0" % fd)
    server = threading.Thread(target=Server(fs, fd).serve, daemon=True)
    server.start()
    return server


def apply_preset(fs, preset):
    """{"group": {"schemata": "L3:0=f0", "mon_groups": ["m"]}}: groups that
    exist before the container (made as an administrator would)."""
    for name, conf in preset.items():
        fs.mkdir(fs.root, name)
        group = fs.root.children[name]
        if conf.get("schemata"):
            fs._set_schemata(group, conf["schemata"])
        for mon in conf.get("mon_groups", ()):
            fs.mkdir(group.children["mon_groups"], mon)


def run_step(step):
    """Output through files: a created container keeps the caller's stdio
    open (runc's pass-through), so a pipe would not reach EOF."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(["sh", "-c", step], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            timeout=60).returncode
        out.seek(0)
        err.seek(0)
        return {"rc": rc, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def main():
    doc = json.load(sys.stdin)
    fs = Resctrl(doc.get("info", tuple(RESOURCES)))
    apply_preset(fs, doc.get("preset", {}))
    mount_standin(fs)
    results = []
    for step in doc["steps"]:
        results.append(run_step(step))
        with fs.lock:
            results[-1]["tree"] = fs.tree()
    json.dump({"steps": results, "writes": fs.writes}, sys.stdout)


if __name__ == "__main__":
    main()
