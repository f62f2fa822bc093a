"""What `delete` takes back from the host, found without trusting one
record alone: state.json may be damaged, missing or lying (a pid that now
names another process), and create may have been SIGKILLed at any point.

Where the container's cgroups are:
  - state.json's cgroup record (its own cgroups, the directories create made),
  - the write-ahead journal (every directory create was about to make,
    written before the first mkdir: also those made an instant before a kill),
  - the paths config.json implies (runc's placement rules), when state.json
    cannot be used.
Its processes are the members of those cgroups (and of cgroups below
them), never a pid taken on trust.  A cgroup that held a process older
than the container (a config may name a populated host cgroup such as
/system.slice: runc warns and goes on) is `shared`: there only the
container's own processes are killed (see owner()), never the others.  Everything is bounded: processes that
do not die in time and directories that stay are reported in one line.
"""
import errno
import time

from . import lazyos as os  # os without its import cost (see lazyos)
from .cgroups import fs
from .cgroups.paths import cgroup_mounts, inner_path, v1_paths, v2_path, host_is_v2, read_text

KILL_TIMEOUT = 5.0


class Leftovers:
    """The container's cgroup directories: `leaves` (its own cgroups,
    emptied and removed with everything below them when `ours`), `ours`
    (made by its create: removed; parents only when empty)."""

    __slots__ = ("leaves", "ours", "shared", "rdt", "mounts_under")

    def __init__(self):
        self.leaves = []
        self.ours = set()
        self.shared = set()  # leaves holding processes older than the container
        self.rdt = []
        self.mounts_under = []  # rootfs of a container without a mount namespace

    def add_leaf(self, d):
        if d not in self.leaves:
            self.leaves.append(d)


def gather(sd, record, config):
    """Leftovers of the container in StateDir `sd`; `record` is its
    state.json record or None when that is damaged; `config` the raw
    config.json saved at create, or None."""
    out = Leftovers()
    cg = (record or {}).get("cgroup")
    if cg:
        from .cgroups.fs import leaf_dirs

        for d in sorted(leaf_dirs(cg)):
            out.add_leaf(d)
        out.ours.update(cg.get("created") or ())
    journal = sd.read_journal()
    out.ours.update(journal.get("cgroup") or ())
    for d in journal.get("cgroup_leaves") or ():
        out.add_leaf(d)
    if record is None and isinstance(config, dict):
        for d in implied_leaves(config, sd.id):
            out.add_leaf(d)
            out.ours.add(d)  # nothing says otherwise: removed once empty
    allowed = _under_cgroup_mounts()
    out.leaves = [d for d in out.leaves if allowed(d)]
    out.ours = {d for d in out.ours if allowed(d)}
    out.shared = shared_leaves(out.leaves, container_birth(sd, record))
    out.ours -= out.shared  # it existed, populated, before the container
    rdt = (record or {}).get("intel_rdt") or {}
    out.rdt = list(rdt.get("owned") or ())
    out.rdt += [d for d in journal.get("intel_rdt") or () if d not in out.rdt]
    out.rdt = [d for d in out.rdt if _under_resctrl(d)]
    out.mounts_under = [d for d in journal.get("mounts_under") or () if d.rstrip("/")]
    rootfs = (record or {}).get("rootfs")
    if rootfs:  # create journals only points strictly below the rootfs
        below = rootfs.rstrip("/") + "/"
        out.mounts_under = [d for d in out.mounts_under if d.startswith(below) and "/../" not in d + "/"]
    return out


def unmount_under(roots):
    """Detach every mount at or below each of `roots`, deepest first: a
    container without a mount namespace of its own mounted there (its
    config's destinations in its rootfs), in the runtime's namespace.
    -> [(path, why)] of those that stay."""
    if not roots:
        return []
    from . import linux
    from .cgroups.paths import unescape

    roots = [r.rstrip("/") for r in roots if r.rstrip("/")]
    prefixes = tuple(r + "/" for r in roots)
    failed = {}
    for _ in range(8):  # mounts stacked on one point come off one per pass
        try:
            text = read_text("/proc/self/mountinfo")
        except OSError as e:
            return [(roots[0], e.strerror)]
        points = {unescape(line.split()[4]) for line in text.splitlines() if len(line.split()) > 4}
        points = [p for p in points if (p in roots or p.startswith(prefixes)) and p not in failed]
        if not points:
            break
        for m in sorted(points, key=lambda p: (p.count("/"), p), reverse=True):
            try:
                linux.umount2(m, linux.MNT_DETACH)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):
                    failed[m] = e.strerror
    return sorted(failed.items())


def implied_leaves(config, cid):
    """The container's cgroup directories by runc's placement rules from a
    raw config (runc's cgroupfs driver; nothing is made or validated)."""
    linux = config.get("linux")
    cgroups_path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    if not isinstance(cgroups_path, (str, type(None))):
        return []
    try:
        inner = inner_path(cgroups_path, cid)
        mountinfo = read_text("/proc/self/mountinfo")
        own = read_text("/proc/self/cgroup")
    except (ValueError, OSError):
        return []
    if host_is_v2():
        return [v2_path(inner, mountinfo, own)]
    return sorted(set(v1_paths(inner, mountinfo, own).values()))


def _under_cgroup_mounts():
    """A predicate: the path is a directory strictly below a cgroup mount
    (a lying record must not make delete rmdir or signal elsewhere)."""
    try:
        mounts = [m[1].rstrip("/") + "/" for m in cgroup_mounts(read_text("/proc/self/mountinfo"))]
    except OSError:
        mounts = []

    def allowed(d):
        if not isinstance(d, str) or "/../" in d + "/" or "/./" in d + "/":
            return False
        return any(d.startswith(m) and len(d) > len(m) for m in mounts)

    return allowed


def container_birth(sd, record):
    """The container's start in clock ticks since boot (as /proc/<pid>/stat
    gives start times): its init's, else config.json's write at create
    (less a few ticks of slack); None when neither is known."""
    start = (record or {}).get("init_start")
    if start:
        return start
    try:
        age = time.time() - os.stat(sd.file("config.json")).st_mtime
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return int((time.clock_gettime(time.CLOCK_BOOTTIME) - age) * hz) - 2


def shared_leaves(leaves, birth):
    """The leaves holding a process that started before `birth` (all of
    them when `birth` is unknown and they hold any): cgroups the container
    only joined, whose other members are not its own."""
    from .procfs import start_time

    out = set()
    for d in leaves:
        for pid in members([d]):
            st = start_time(pid)
            if st is not None and (birth is None or st < birth):
                out.add(d)
                break
    return out


def owner(init_pid, init_start):
    """-> owns(pid): whether a member of a shared cgroup is the container's:
    in its init's pid namespace (while the init lives, if it has one of its
    own), or in its init's session and no older than it (the init calls
    setsid; the kernel reuses no pid while a session of that number lives).
    Nothing is when the init is unknown."""
    from .procfs import is_alive, ns_inode, stat_fields

    if not init_pid or not init_start:
        return lambda pid: False
    ns = ns_inode(init_pid, "pid") if is_alive(init_pid, init_start) else None
    if ns == ns_inode("self", "pid"):
        ns = None

    def owns(pid):
        if ns is not None and ns_inode(pid, "pid") == ns:
            return True
        fields = stat_fields(pid)
        return fields is not None and int(fields[3]) == init_pid and int(fields[19]) >= init_start

    return owns


def _under_resctrl(d):
    """A resctrl group: a directory strictly below the resctrl mount (a
    lying record must not make delete rmdir an ordinary directory)."""
    if not isinstance(d, str) or "/../" in d + "/" or "/./" in d + "/":
        return False
    from .intelrdt import find_root

    try:
        root = find_root()
    except (OSError, ValueError):
        return False
    return root is not None and d.startswith(root.rstrip("/") + "/")


def members(leaves):
    """Live pids in the leaves and every cgroup below them (a zombie is
    listed until its parent reaps it, but holds nothing and cannot be
    killed again)."""
    from .procfs import is_alive

    pids = set()
    for d in leaves:
        if os.path.isdir(d):
            try:
                pids.update(fs.procs(d))
            except (OSError, ValueError):
                pass
    pids.discard(os.getpid())
    return sorted(p for p in pids if is_alive(p, None))


def kill_members(leaves, timeout=KILL_TIMEOUT, shared=(), owns=None):
    """SIGKILL every member until none is left or `timeout` passes; ->
    the pids still there.  In `shared` leaves only those `owns` names
    (see owner()).  v1 freezers of the others are frozen around each
    round, so that nothing forks a child between listing and killing; a
    v2 leaf with cgroup.kill is killed by the kernel, subtree included."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    own = [d for d in leaves if d not in shared]
    joined = [d for d in leaves if d in shared]
    while True:
        pids = sorted(set(members(own)) | {p for p in members(joined) if owns is not None and owns(p)})
        if not pids or time.monotonic() >= deadline:
            return pids
        _kill_round(own, pids)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def signal_owned(leaves, sig, owns):
    """`kill --all` in a shared cgroup: `sig` to the container's own
    members only."""
    for pid in members(leaves):
        if owns(pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _kill_round(leaves, pids):
    """Kill `pids`; `leaves` (never a shared one) are the container's alone:
    the kernel kills their members (cgroup.kill), or they are frozen."""
    frozen = []
    for d in leaves:
        if _write_quietly(d, "cgroup.kill", "1"):
            continue
        if os.path.exists(d + "/freezer.state") and _write_quietly(d, "freezer.state", "FROZEN"):
            frozen.append(d)
    try:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    finally:
        for d in frozen:
            _write_quietly(d, "freezer.state", "THAWED")


def thaw(leaves):
    """Thaw the leaves (v1 freezer.state, v2 cgroup.freeze): a paused
    container's processes cannot die of a SIGKILL until they run."""
    for d in leaves:
        if os.path.exists(d + "/freezer.state"):
            _write_quietly(d, "freezer.state", "THAWED")
        elif os.path.exists(d + "/cgroup.freeze"):
            _write_quietly(d, "cgroup.freeze", "0")


def _write_quietly(d, name, value):
    try:
        fs.write(d, name, value)
        return True
    except OSError:
        return False


def remove_dirs(left):
    """rmdir the container's cgroups, deepest first: its own (`leaves`
    that are `ours`) with their sub-cgroups, parents it made only when
    empty (shared with siblings).  -> [(dir, reason)] of those that stay."""
    stays = []
    leaves = set(left.leaves)
    for d in sorted(left.ours, key=lambda p: (p.count("/"), p), reverse=True):
        try:
            if d in leaves:
                fs.rmdir_tree(d, attempts=6)
            else:
                fs.rmdir_if_empty(d)
        except OSError as e:
            stays.append((e.filename or d, os.strerror(e.errno) if e.errno else str(e)))
    return stays


def remove_rdt(paths):
    """resctrl groups create made (rmdir takes the group with its files)."""
    stays = []
    for d in paths:
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOENT:
                stays.append((d, e.strerror))
    return stays


def describe(pids, stays):
    """One line: what delete leaves behind and why."""
    parts = []
    if pids:
        shown = " ".join(str(p) for p in pids[:8]) + (" ..." if len(pids) > 8 else "")
        parts.append("processes %s did not die within %gs" % (shown, KILL_TIMEOUT))
    for d, why in stays[:4]:
        parts.append("%s (%s)" % (d, why))
    if len(stays) > 4:
        parts.append("%d more directories" % (len(stays) - 4))
    return "; ".join(parts)
