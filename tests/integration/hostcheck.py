"""What a container can leave on the host, read from the kernel: cgroup
directories in every hierarchy (the hybrid unified one included), mounts,
processes by cgroup membership, the state directory."""
import glob
import os


def cgroup_dirs(cgroups_path):
    """Every directory of `cgroups_path` (absolute, as the tests give it) in
    every mounted hierarchy: /sys/fs/cgroup/<ctrl>/..., and
    /sys/fs/cgroup/unified/... on a hybrid host."""
    rel = cgroups_path.strip("/")
    found = set(glob.glob("/sys/fs/cgroup/*/" + rel))
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # pure v2
        found |= set(glob.glob("/sys/fs/cgroup/" + rel))
    return sorted(found)


def member_pids(cgroups_path):
    """Live processes whose /proc/<pid>/cgroup places them at or below
    `cgroups_path` in any hierarchy (a zombie, until its parent reaps it,
    still names its last cgroup but holds nothing)."""
    rel = "/" + cgroups_path.strip("/")
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % pid) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            path = line.split(":", 2)[-1]
            if path == rel or path.startswith(rel + "/"):
                if is_alive(int(pid)):
                    out.append(int(pid))
                break
    return out


def mounts_mentioning(text):
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if text in line]


def leftovers(root, cid, cgroups_path, bundle_path=None):
    """Everything of container `cid` still on the host, as readable strings."""
    found = []
    if os.path.exists(os.path.join(root, cid)):
        found.append("state dir %s" % os.path.join(root, cid))
    found += ["cgroup %s" % d for d in cgroup_dirs(cgroups_path)]
    found += ["process %d" % p for p in member_pids(cgroups_path)]
    if bundle_path:
        found += ["mount %s" % m for m in mounts_mentioning(bundle_path)]
    return found


def is_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
