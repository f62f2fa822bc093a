"""`pyrunc spec`: the default config.json (runc's defaults, spec 1.3.0)."""
import os

from . import OCI_VERSION
from .errors import PyruncError

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def _default_namespaces():
    """runc's: a cgroup namespace only on a pure cgroup v2 host (runc spec
    of 1.1.5; scripts that add one on a v1 host must not get a duplicate)."""
    from .cgroups.paths import host_is_v2

    base = ("pid", "network", "ipc", "uts", "mount")
    return base + ("cgroup",) if host_is_v2() else base


def default_spec():
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": _NOSUID_NOEXEC_NODEV + ["mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": list(_NOSUID_NOEXEC_NODEV)},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": _NOSUID_NOEXEC_NODEV + ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": _NOSUID_NOEXEC_NODEV + ["relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in _default_namespaces()],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def make_rootless(spec):
    """Adjust the default for an unprivileged user, as `runc spec --rootless`:
    a user namespace mapping root to the caller, no network namespace or
    cgroup mount, /sys bound from the host read-only with every mount
    under it, devpts without gid=5."""
    lx = spec["linux"]
    lx.pop("resources", None)
    lx["namespaces"] = [n for n in lx["namespaces"] if n["type"] not in ("network", "cgroup")]
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    mounts = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            continue
        if m["destination"] == "/sys":
            # rro, not just ro: the host's cgroup hierarchies come along
            # under /sys/fs/cgroup, and one delegated to the user would be
            # writable by the container's root (CVE-2023-25809 class).
            m = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]}
        if m["destination"] == "/dev/pts":
            m = dict(m, options=[o for o in m["options"] if o != "gid=5"])
        mounts.append(m)
    spec["mounts"] = mounts
    return spec


def write_spec(bundle, rootless=False, network=None):
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyruncError("File config.json already exists. Remove it first.")
    spec = default_spec()
    if rootless:
        make_rootless(spec)
    if network:
        if network != "bridge":
            raise PyruncError("--network: unknown network %r (supported: bridge)" % network)
        from .network import add_bridge_hooks

        add_bridge_hooks(spec)
    with open(path, "w") as f:
        from .jsonio import dumps_indent

        f.write(dumps_indent(spec, "\t") + "\n")
