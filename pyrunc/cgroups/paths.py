"""Where a container's cgroup lives: host layout discovery and runc's
placement rules for `linux.cgroupsPath`.

    absolute "/a/b"  -> <hierarchy mount>/a/b            (every hierarchy)
    relative "a/b"   -> <mount>/<runtime's own cgroup>/a/b
    absent           -> like the relative path "<container id>"

Pure functions over the text of /proc/self/mountinfo and /proc/self/cgroup,
so that unit tests can feed them any layout.
"""
from .. import lazyos as os  # os without its import cost (see pyrunc.lazyos)

V2_ROOT = "/sys/fs/cgroup"

# v1 controllers runc's cgroupfs driver places a container in, in the order
# it applies them (cpuset first: a child needs cpus/mems before it can hold
# tasks), plus the named systemd hierarchy and misc.
V1_CONTROLLERS = (
    "cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
    "net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd", "misc",
)
UNIFIED = ""  # key of the v2 (unified) hierarchy in a v1/hybrid path map


def unescape(field):
    """mountinfo octal escapes (\\040 for a space, ...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(mountinfo_text):
    """[(fstype, mountpoint, root, super_options)] of cgroup/cgroup2 mounts."""
    out = []
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        rfields = right.split()
        if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        lfields = left.split()
        out.append((rfields[0], unescape(lfields[4]), unescape(lfields[3]),
                    rfields[2].split(",")))
    return out


def v1_hierarchies(mountinfo_text):
    """{controller: (mountpoint, root)} for mounted v1 controllers; the first
    mount of a hierarchy wins (it may be bind-mounted again elsewhere)."""
    out = {}
    for fstype, mountpoint, root, opts in cgroup_mounts(mountinfo_text):
        if fstype != "cgroup":
            continue
        for opt in opts:
            if opt in V1_CONTROLLERS or opt.startswith("name="):
                out.setdefault(opt, (mountpoint, root))
    return out


def unified_mount(mountinfo_text):
    """(mountpoint, root) of the cgroup2 hierarchy, or None."""
    found = None
    for fstype, mountpoint, root, _opts in cgroup_mounts(mountinfo_text):
        if fstype == "cgroup2":
            if mountpoint == V2_ROOT:
                return (mountpoint, root)
            if found is None:
                found = (mountpoint, root)
    return found


def own_cgroups(proc_cgroup_text):
    """/proc/self/cgroup as {controller: path}; the v2 line is key ""."""
    out = {}
    for line in proc_cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            out[UNIFIED] = parts[2]
        else:
            for ctrl in parts[1].split(","):
                out[ctrl] = parts[2]
    return out


def clean(path):
    """runc's CleanPath: lexically clean; a relative path can't climb out."""
    if not path:
        return ""
    if path.startswith("/"):
        return os.path.normpath("/" + path.lstrip("/"))
    return os.path.relpath(os.path.normpath("/" + path), "/")


def inner_path(cgroups_path, container_id):
    """The cleaned placement: absolute stays absolute; absent -> the id."""
    inner = clean(cgroups_path or "")
    if not inner:
        inner = clean(container_id)
    if inner in ("", ".", "/"):
        raise ValueError("linux.cgroupsPath: %r names no cgroup" % (cgroups_path,))
    return inner


def join_under(mountpoint, mount_root, own_path, inner):
    """Host directory for `inner` in one hierarchy mounted at `mountpoint`
    (whose root is `mount_root`); relative paths hang off `own_path`."""
    if inner.startswith("/"):
        return os.path.normpath(mountpoint + inner)
    rel = os.path.relpath(own_path or "/", mount_root or "/")
    if rel == "." or rel.startswith(".."):
        # our cgroup is outside what this mount shows (a cgroupns): its root
        rel = ""
    return os.path.normpath(os.path.join(mountpoint, rel, inner))


def v1_paths(inner, mountinfo_text, proc_cgroup_text):
    """{controller: host dir} for every mounted v1 hierarchy runc would use,
    plus "" for the unified mount on a hybrid host."""
    hier = v1_hierarchies(mountinfo_text)
    own = own_cgroups(proc_cgroup_text)
    paths = {}
    for ctrl in V1_CONTROLLERS:
        if ctrl in hier:
            mountpoint, root = hier[ctrl]
            paths[ctrl] = join_under(mountpoint, root, own.get(ctrl), inner)
    unified = unified_mount(mountinfo_text)
    if unified is not None and UNIFIED in own:
        paths[UNIFIED] = join_under(unified[0], unified[1], own[UNIFIED], inner)
    return paths


def v2_path(inner, mountinfo_text, proc_cgroup_text):
    mount = unified_mount(mountinfo_text) or (V2_ROOT, "/")
    own = own_cgroups(proc_cgroup_text).get(UNIFIED, "/")
    return join_under(mount[0], mount[1], own, inner)


def host_is_v2(root=V2_ROOT):
    """A pure v2 host has cgroup2 itself at /sys/fs/cgroup."""
    return os.path.exists(root + "/cgroup.controllers")


def read_text(path):
    with open(path) as f:
        return f.read()
