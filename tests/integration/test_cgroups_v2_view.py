"""pyrunc's cgroup v2 *container* path, end to end, on a v1 (hybrid) host.

This host mounts v1 controllers under /sys/fs/cgroup/<ctrl> and the one v2
hierarchy at /sys/fs/cgroup/unified, so pyrunc picks its V1Manager here and
the container-level v2 tests skip. A holder process gives pyrunc a pure-v2
*view* instead: a private mount namespace whose /sys/fs/cgroup is a fresh
cgroup2 mount (the same single v2 hierarchy as /sys/fs/cgroup/unified: the
test checks the device numbers), and every verb runs as
`nsenter --mount=/proc/<holder>/ns/mnt pyrunc ...`. pyrunc then sees a v2
host and takes the V2Manager path with real containers.

What it proves, from the host's /proc, the cgroup files and inside the
containers (never from pyrunc's own output alone): placement (0::/<path>),
the container's cgroup namespace and cgroup2 mount, pause/resume through
cgroup.freeze, kill --all, ps, the eBPF device filter, hugetlb limits
(create and update), events --stats, delete and delete --force removing the
cgroup, and a limit whose controller is missing failing cleanly.

What it can't: hugetlb is the only controller this host's v2 hierarchy
offers, so memory, cpu, cpuset, pids and io limits stay unproven (they only
show that a missing controller is an error); OOM and pids enforcement too.

Cgroups are made under /sys/fs/cgroup/unified/pyrunc-v2view-<pid>-<hex>;
each test checks that its parent is gone afterwards, and the module gives
back the root's cgroup.subtree_control (pyrunc enables hugetlb there, as
runc does on a v2 host) as it found it.
"""
import json
import os
import shutil
import stat
import subprocess
import time
import uuid

import pytest

from conftest import Runtime
from pyrunc.cgroups import paths as cgpaths

MB = 1 << 20
PREFIX = "pyrunc-v2view-%d-" % os.getpid()
HOLDER_SCRIPT = ("umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup "
                 "&& echo ready && exec sleep 3600")


def host_unified_mount():
    return cgpaths.unified_mount(cgpaths.read_text("/proc/self/mountinfo"))


def skip_reason():
    if os.geteuid() != 0:
        return "integration test: needs root (mount namespace, cgroups)"
    if cgpaths.host_is_v2():
        return "pure cgroup v2 host: the real v2 container tests run instead"
    if host_unified_mount() is None:
        return "no cgroup2 mount on this host to make a v2 view of"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return "util-linux %s not found" % tool
    return None


pytestmark = [pytest.mark.integration, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]


def read(path):
    with open(path) as f:
        return f.read().strip()


def wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def mount_line(mountinfo, mountpoint):
    """(major:minor, root, fstype) of the mount at mountpoint (last wins)."""
    found = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if fields[4] == mountpoint:
            found = (fields[2], fields[3], right.split()[0])
    return found


# -- the v2 view ----------------------------------------------------------------

class View:
    """A holder process whose mount namespace has cgroup2 at /sys/fs/cgroup."""

    def __init__(self):
        self.unified = host_unified_mount()[0]
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", HOLDER_SCRIPT],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line != b"ready\n":
            self.stop()
            pytest.fail("v2 view holder failed: %s" % self.proc.stderr.read().decode().strip())

    def prefix(self):
        return ["nsenter", "--mount=/proc/%d/ns/mnt" % self.proc.pid]

    def host_path(self, cgroup):
        """Host directory of a cgroup path as seen in the view (/x -> unified/x)."""
        return self.unified + cgroup

    def stop(self):
        self.proc.kill()  # by pid: the holder is ours
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


class ViewRuntime(Runtime):
    """Every pyrunc verb through nsenter into the view."""

    def __init__(self, root, view):
        super().__init__(root)
        self.view = view

    def cmd(self, *args):
        return self.view.prefix() + super().cmd(*args)


def own_subtree_control(unified):
    return set(read(unified + "/cgroup.subtree_control").split())


@pytest.fixture(scope="module")
def view():
    v = View()
    before = own_subtree_control(v.unified)
    yield v
    v.stop()
    # pyrunc enabled controllers in the root's subtree_control (runc does on
    # a v2 host); give them back once no cgroup of ours is left
    for ctrl in own_subtree_control(v.unified) - before:
        with open(v.unified + "/cgroup.subtree_control", "w") as f:
            f.write("-" + ctrl)
    left = [n for n in os.listdir(v.unified) if n.startswith(PREFIX)]
    assert left == [], "cgroups left under %s: %s" % (v.unified, left)


@pytest.fixture
def vrt(tmp_path, view):
    rt = ViewRuntime(tmp_path / "state", view)
    yield rt
    rt.cleanup()


@pytest.fixture
def parent(vrt, view):
    """A test-owned parent cgroup (path as the view sees it); after the test
    (containers deleted first) nothing may be left under it."""
    name = "/" + PREFIX + uuid.uuid4().hex[:8]
    yield name
    vrt.cleanup()
    host = view.host_path(name)
    left = [root for root, _d, _f in os.walk(host)] if os.path.isdir(host) else []
    for d in sorted(left, key=len, reverse=True):
        os.rmdir(d)
    assert left == [], "cgroups left behind: %s" % left


def configure(bundle, cgroup, resources, *args):
    def f(cfg):
        cfg["process"]["args"] = list(args)
        cfg["process"]["terminal"] = False
        cfg["linux"]["cgroupsPath"] = cgroup
        cfg["linux"]["resources"] = dict(cfg["linux"].get("resources") or {}, **resources)
        # what `spec` gives on a real cgroup v2 host (this bundle was made on the v1 host)
        if {"type": "cgroup"} not in cfg["linux"]["namespaces"]:
            cfg["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.update(f)


def bind_out(bundle, outdir):
    os.makedirs(os.path.join(bundle.rootfs, "out"), exist_ok=True)
    bundle.update(lambda cfg: cfg["mounts"].append(
        {"destination": "/out", "type": "bind", "source": outdir, "options": ["rbind", "rw"]}))


def run_detached(vrt, bundle, cid):
    # the container inherits these: no pipe the test would wait on
    vrt("run", "-d", "-b", bundle.path, cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return vrt.state(cid)["pid"]


def procs(cgdir):
    return sorted(int(p) for p in read(cgdir + "/cgroup.procs").split())


def unified_line(pid):
    """The 0:: line of a process's /proc/<pid>/cgroup, read on the host."""
    return [ln for ln in read("/proc/%d/cgroup" % pid).splitlines() if ln.startswith("0::")]


def pid_alive(pid):
    try:
        return read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- tests ------------------------------------------------------------------------

def test_view_is_the_hosts_single_v2_hierarchy(view):
    """The view's /sys/fs/cgroup is cgroup2, its root, on the same superblock
    as the host's unified mount: what pyrunc writes there is the real thing."""
    host = mount_line(read("/proc/self/mountinfo"), view.unified)
    inside = mount_line(read("/proc/%d/mountinfo" % view.proc.pid), "/sys/fs/cgroup")
    assert inside == (host[0], "/", "cgroup2"), (inside, host)
    root = "/proc/%d/root/sys/fs/cgroup" % view.proc.pid
    assert os.path.exists(root + "/cgroup.controllers")  # what makes pyrunc pick v2
    assert os.stat(root).st_ino == os.stat(view.unified).st_ino
    assert read(root + "/cgroup.controllers") == read(view.unified + "/cgroup.controllers")


def test_create_start_places_init_in_own_cgroup(bundle, vrt, view, parent, tmp_path):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    out = str(tmp_path / "out")
    os.mkdir(out)
    bind_out(bundle, out)
    configure(bundle, cgroup, {}, "sh", "-c",
              "cat /proc/self/cgroup > /out/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo > /out/mount; "
              "cat /sys/fs/cgroup/cgroup.procs > /out/procs; ls -d /sys/fs/cgroup/*/ > /out/subdirs; "
              "echo $$ > /out/pid; touch /out/done; sleep 100")
    vrt("create", "-b", bundle.path, cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = vrt.state(cid)["pid"]
    host_dir = view.host_path(cgroup)
    # already placed before start, and only the init is there
    assert unified_line(pid) == ["0::" + cgroup]
    assert procs(host_dir) == [pid]
    vrt("start", cid)
    wait_for(lambda: os.path.exists(out + "/done"), "the init's report")
    assert unified_line(pid) == ["0::" + cgroup]
    # inside: its own cgroup namespace and a cgroup2 mount of its own cgroup
    # (the kernel lists this host's v1 hierarchies too: only the v2 line counts)
    assert [ln for ln in read(out + "/cgroup").splitlines() if ln.startswith("0::")] == ["0::/"]
    fields = read(out + "/mount").split()
    assert fields[fields.index("-") + 1] == "cgroup2", fields
    # its own cgroup, not the hierarchy: a leaf holding the init (pid 1 in
    # its pid namespace) and the cat that read it
    assert read(out + "/pid") == "1"
    assert "1" in read(out + "/procs").split() and len(read(out + "/procs").split()) == 2
    assert read(out + "/subdirs") == ""
    vrt("delete", "--force", cid)
    assert not os.path.exists(host_dir)


def test_pause_resume_freezes_the_cgroup(bundle, vrt, view, parent):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    configure(bundle, cgroup, {}, "sleep", "100")
    run_detached(vrt, bundle, cid)
    events = view.host_path(cgroup) + "/cgroup.events"
    vrt("pause", cid)
    assert "frozen 1" in read(events).splitlines()
    assert vrt.state(cid)["status"] == "paused"
    vrt("resume", cid)
    assert "frozen 0" in read(events).splitlines()
    assert vrt.state(cid)["status"] == "running"
    vrt("delete", "--force", cid)


def test_ps_and_kill_all_reach_an_exec_process(bundle, vrt, view, parent, tmp_path):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    host_dir = view.host_path(cgroup)
    configure(bundle, cgroup, {}, "sleep", "100")
    init = run_detached(vrt, bundle, cid)
    pid_file = str(tmp_path / "exec.pid")
    vrt("exec", "-d", "--pid-file", pid_file, cid, "sleep", "200",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    execd = int(read(pid_file))
    assert procs(host_dir) == sorted([init, execd])
    assert sorted(json.loads(vrt("ps", "--format", "json", cid).stdout)) == procs(host_dir)
    vrt("kill", "--all", cid, "KILL")
    wait_for(lambda: not procs(host_dir), "an empty cgroup")
    wait_for(lambda: not pid_alive(execd), "the exec'd process to die")
    wait_for(lambda: vrt.state(cid)["status"] == "stopped", "stopped")
    vrt("delete", cid)
    assert not os.path.exists(host_dir)


def test_devices_denied_by_ebpf(bundle, vrt, parent):
    # c 240:0 (a local-use major no driver claims): the device filter refuses
    # the open (EPERM) before the kernel looks for a driver (ENXIO), so the
    # error says which of the two stopped it. The init's v1 devices cgroup is
    # the root here (allows all): only the eBPF program can deny.
    os.mknod(os.path.join(bundle.rootfs, "testdev"), 0o666 | stat.S_IFCHR, os.makedev(240, 0))
    script = "cat /dev/null && echo null-ok; cat /testdev"
    cid = vrt.new_id()
    configure(bundle, parent + "/" + cid, {}, "sh", "-c", script)
    p = vrt("run", "-b", bundle.path, cid, check=False)
    assert "null-ok" in p.stdout and "Operation not permitted" in p.stderr, (p.stdout, p.stderr)
    cid2 = vrt.new_id()
    configure(bundle, parent + "/" + cid2, {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 240, "minor": 0, "access": "r"}]}, "sh", "-c", script)
    p = vrt("run", "-b", bundle.path, cid2, check=False)
    assert "No such device or address" in p.stderr, p.stderr


def hugetlb_files(cgdir):
    return sorted(n for n in os.listdir(cgdir) if n.startswith("hugetlb.2MB.") and n.endswith(".max"))


def test_hugetlb_limits_inside_on_host_and_updated(bundle, vrt, view, parent):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    host_dir = view.host_path(cgroup)
    configure(bundle, cgroup, {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MB}]}, "sleep", "100")
    run_detached(vrt, bundle, cid)
    # hugetlb.2MB.max and, on kernels with it, hugetlb.2MB.rsvd.max (runc writes both)
    names = hugetlb_files(host_dir)
    assert "hugetlb.2MB.max" in names
    for name in names:
        assert read(host_dir + "/" + name) == str(8 * MB)
    inside = vrt("exec", cid, "cat", *["/sys/fs/cgroup/" + n for n in names]).stdout.split()
    assert inside == [str(8 * MB)] * len(names)
    # update through the unified map (runc's way)...
    vrt("update", "--resources", "-", cid, input=json.dumps({"unified": {"hugetlb.2MB.max": str(16 * MB)}}))
    assert vrt("exec", cid, "cat", "/sys/fs/cgroup/hugetlb.2MB.max").stdout.strip() == str(16 * MB)
    # ...and through hugepageLimits (pyrunc applies them; runc's update
    # ignores them). The earlier update's unified map is not applied again
    # over it: runc's update replaces linux.resources.unified with the new
    # document's (none here)
    vrt("update", "--resources", "-", cid, input=json.dumps({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MB}]}))
    assert read(host_dir + "/hugetlb.2MB.max") == str(4 * MB)
    vrt("delete", "--force", cid)
    assert not os.path.exists(host_dir)


@pytest.mark.parametrize("resources,field,missing", [
    ({"memory": {"limit": 64 * MB}}, "linux.resources.memory.limit", "memory"),
    ({"pids": {"limit": 10}}, "linux.resources.pids.limit", "pids"),
    ({"cpu": {"shares": 512}}, "linux.resources.cpu.shares", "cpu"),
])
def test_limit_without_controller_fails_cleanly(bundle, vrt, view, parent, resources, field, missing):
    """runc (opencontainers/cgroups fs2) writes the v2 file and fails when it
    is absent; pyrunc too, with one line naming the field, and leaves neither
    cgroup nor state dir."""
    if missing in read(view.unified + "/cgroup.controllers").split():
        pytest.skip("%s controller is available here" % missing)
    cid = vrt.new_id()
    configure(bundle, parent + "/" + cid, resources, "true")
    p = vrt("create", "-b", bundle.path, cid, check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], p.stderr
    assert not os.path.exists(view.host_path(parent))
    assert not os.path.exists(os.path.join(vrt.root, cid))


def test_events_stats_from_v2_files(bundle, vrt, view, parent):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    host_dir = view.host_path(cgroup)
    configure(bundle, cgroup, {"hugepageLimits": [{"pageSize": "2MB", "limit": 6 * MB}]},
              "sh", "-c", "sleep 100 & wait")
    run_detached(vrt, bundle, cid)
    wait_for(lambda: len(procs(host_dir)) == 2, "sh and sleep")
    before = int(dict(ln.split() for ln in read(host_dir + "/cpu.stat").splitlines())["usage_usec"])
    ev = json.loads(vrt("events", "--stats", cid).stdout)
    after = int(dict(ln.split() for ln in read(host_dir + "/cpu.stat").splitlines())["usage_usec"])
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert before * 1000 <= data["cpu"]["usage"]["total"] <= after * 1000 and before > 0
    assert data["pids"]["current"] == 2  # no pids controller: counted from cgroup.procs
    rsvd = ".rsvd" if os.path.exists(host_dir + "/hugetlb.2MB.rsvd.max") else ""
    assert data["hugetlb"]["2MB"]["max"] == int(read(host_dir + "/hugetlb.2MB%s.max" % rsvd)) == 6 * MB
    vrt("delete", "--force", cid)


def test_delete_force_running_removes_cgroup(bundle, vrt, view, parent):
    cid = vrt.new_id()
    cgroup = parent + "/" + cid
    configure(bundle, cgroup, {}, "sleep", "100")
    pid = run_detached(vrt, bundle, cid)
    assert os.path.isdir(view.host_path(cgroup))
    vrt("delete", "--force", cid)
    assert not pid_alive(pid)
    assert not os.path.exists(view.host_path(cgroup))
    assert not os.path.exists(view.host_path(parent))  # pyrunc made it, pyrunc removed it
    assert not os.path.exists(os.path.join(vrt.root, cid))
