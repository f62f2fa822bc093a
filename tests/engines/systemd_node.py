"""A "node": systemd booted as pid 1 in a container that pyrunc runs.

This kind of machine has no systemd as its init, but systemd boots in a
container given: the host's root (bind-mounted read-only) as its rootfs,
tmpfs on /run, /tmp and /var, its own pid, mount, ipc, uts, network and
cgroup namespaces with the cgroup mount read-write, and every capability
the host's bounding set has.  Inside it, `pyrunc --systemd-cgroup` talks
D-Bus to that systemd, and the node's /sys/fs/cgroup and `systemctl` show
what it made.

    node = Node(tmpdir, pyrunc)
    node.start()                  # until `systemctl is-system-running --wait`
    node.sh("systemctl show -p ActiveState x.scope")   # CompletedProcess
    node.stop()                   # SIGRTMIN+3 (halt), then delete --force

The pyrunc under test is the host's installed launcher: the venv is
visible in the node through the read-only root bind.
"""
import json
import os
import shutil
import subprocess
import time

# Linux capability names by bit number (the bounding set is a bit mask).
CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
SIGRTMIN_3 = 37  # systemd's "halt" request
SYSTEMD = "/lib/systemd/systemd"
UNIFIED = "/sys/fs/cgroup/unified"  # the hybrid host's cgroup2 hierarchy


def missing_tools():
    """What the node needs from the host (apt-get install systemd dbus)."""
    need = {SYSTEMD: "systemd", "/usr/bin/dbus-daemon": "dbus", "/usr/bin/systemctl": "systemd"}
    return sorted({pkg for path, pkg in need.items() if not os.path.exists(path)})


def host_caps():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
    return ["CAP_" + name for bit, name in enumerate(CAP_NAMES) if mask & (1 << bit)]


def make_rootfs(rootfs, binds):
    """The node's own (read-only) root: the host's merged-/usr symlinks
    and mount points; what it runs comes from the host by bind mounts."""
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if os.path.islink(path):
            os.symlink(os.readlink(path), os.path.join(rootfs, name))
    for d in ("proc", "sys", "dev", "run", "tmp", "var", "root") + tuple(b.lstrip("/") for b in binds):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)


def unmounted_controllers():
    """Enabled v1 controllers no hierarchy of the host mounts.  systemd
    would mount each in the node; a hierarchy made that way does not exist
    on the host, the node's cgroup namespace is rooted at its global root,
    and everything made there (and the hierarchy itself, while it has
    children) would outlive the node for every process on the machine
    (containerd then fails to load a task's cgroups)."""
    with open("/proc/cgroups") as f:
        enabled = [line.split()[0] for line in f if not line.startswith("#") and line.split()[3] == "1"]
    mounted = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            right = line.split(" - ", 1)[1].split()
            if right[0] == "cgroup":
                mounted.update(right[2].split(","))
    return [c for c in enabled if c not in mounted]


def controller_placeholders(controllers):
    """Where systemd would mount them (net_cls and net_prio together, as it
    does): an empty read-only tmpfs there reads as "already mounted"."""
    names = set(controllers)
    if {"net_cls", "net_prio"} <= names:
        names -= {"net_cls", "net_prio"}
        names.add("net_cls,net_prio")
    return sorted(names)


def cgroup_mounts(cgroups_path, unified):
    """The node's /sys/fs/cgroup: v1 (the host's layout; placeholders keep
    systemd from mounting the controllers the host lacks), or with
    `unified` only the host's cgroup2 hierarchy, the node's own cgroup there
    bound read-write: systemd then runs in unified (v2) mode."""
    if unified:
        return [{"destination": "/sys/fs/cgroup", "type": "bind", "source": UNIFIED + cgroups_path,
                 "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]}]
    return [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]}] + [
        {"destination": "/sys/fs/cgroup/" + name, "type": "tmpfs", "source": "none",
         "options": ["ro", "nosuid", "nodev", "noexec", "size=4k"]}
        for name in controller_placeholders(unmounted_controllers())]


def node_config(binds, shared, cgroups_path, unified=False):
    caps = host_caps()
    tmpfs = lambda dest, mode="755": {"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                      "options": ["nosuid", "nodev", "mode=" + mode]}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": [SYSTEMD],
            "env": ["container=pyrunc", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc-node",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ] + cgroup_mounts(cgroups_path, unified) + [
            tmpfs("/run"), tmpfs("/tmp", "1777"), tmpfs("/var"),
        ] + [{"destination": b, "type": "bind", "source": b, "options": ["rbind", "ro"]}
             for b in binds] + [
            {"destination": "/shared", "type": "bind", "source": shared, "options": ["rbind", "rw"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network", "cgroup")],
            "resources": {"devices": [{"allow": True, "access": "rwm"}]},
            "cgroupsPath": cgroups_path,
        },
    }


class Node:
    def __init__(self, workdir, pyrunc, cgroups_path, cid="pyrunc-node", binds=(), unified=False):
        self.cgroups_path = cgroups_path
        self.unified = unified
        self.extra_binds = list(binds)
        self.booted = False
        self.dir = os.path.join(str(workdir), "node")
        self.pyrunc = pyrunc
        self.cid = cid
        self.root = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "console.log")
        self.shared = os.path.join(self.dir, "shared")  # /shared in the node, read-write

    def binds(self):
        """Host paths the node sees read-only: /usr and /etc for systemd and
        its tools, the directory of the pyrunc under test (its venv), and
        what the caller adds (the tests, to run a flow inside)."""
        venv = os.path.dirname(os.path.dirname(os.path.abspath(self.pyrunc)))
        out = ["/usr", "/etc"]
        for path in [venv] + self.extra_binds:
            if not any(path == b or path.startswith(b + "/") for b in out):
                out.append(path)
        return out

    def runtime(self, *args, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run([self.pyrunc, "--root", self.root] + list(args), **kw)

    def start(self, timeout=90):
        os.makedirs(self.dir, exist_ok=True)
        bundle = os.path.join(self.dir, "bundle")
        os.makedirs(bundle, exist_ok=True)
        binds = self.binds()
        os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
        make_rootfs(os.path.join(bundle, "rootfs"), binds + ["/shared"])
        os.makedirs(self.shared, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(node_config(binds, self.shared, self.cgroups_path, self.unified), f)
        with open(self.log, "wb") as out:
            r = subprocess.run([self.pyrunc, "--root", self.root, "create", "--bundle", bundle,
                                self.cid], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                               timeout=60)
        if r.returncode != 0:
            raise RuntimeError("node create failed: %s" % self.console())
        r = self.runtime("start", self.cid)
        if r.returncode != 0:
            raise RuntimeError("node start failed: %s" % r.stderr)
        self.boot_state = self.wait_booted(timeout)
        self.booted = True
        if self.boot_state not in ("running", "degraded"):
            raise RuntimeError("node systemd: %r; %s" % (self.boot_state, self.console()))

    def wait_booted(self, timeout):
        """systemd's state once it has finished starting up (its bus
        socket appears a little after pid 1 starts)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.sh("systemctl is-system-running --wait", timeout=timeout)
            state = r.stdout.strip()
            if state not in ("", "offline", "starting", "initializing") or time.monotonic() > deadline:
                return state
            time.sleep(0.2)

    def console(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def pid(self):
        return json.loads(self.runtime("state", self.cid).stdout)["pid"]

    def sh(self, script, timeout=60, check=False):
        """A shell command in the node (a `pyrunc exec` into it)."""
        r = self.runtime("exec", self.cid, "/bin/sh", "-c", script, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("in node: %s -> %d\n%s%s" % (script, r.returncode, r.stdout, r.stderr))
        return r

    def stop(self):
        """Halt systemd (it stops every unit, so every scope), then remove
        the node container and its state."""
        if not os.path.isdir(os.path.join(self.root, self.cid)):
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        self.runtime("kill", self.cid, str(SIGRTMIN_3))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = self.runtime("state", self.cid)
            if r.returncode != 0 or json.loads(r.stdout)["status"] == "stopped":
                break
            time.sleep(0.2)
        self.runtime("delete", "--force", self.cid)
        shutil.rmtree(self.dir, ignore_errors=True)
