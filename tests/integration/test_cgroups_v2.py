"""The v2 manager.

Two parts:
- on any cgroup2 mount, even one without controllers (this v1 host's hybrid
  /sys/fs/cgroup/unified): the eBPF device program (a denied device can't be
  opened from a process in the cgroup; an update replaces the program),
  cgroup.freeze, cgroup.kill, process listing and removal;
- on a v2 host (cgroup2 at /sys/fs/cgroup with controllers): every resource
  field read back, OOM, pids limit. These skip on a v1 host.
"""
import errno
import os
import signal
import subprocess
import time
import uuid

import pytest

from pyrunc.cgroups import default_device_rules, manager_for
from pyrunc.cgroups import paths as cgpaths
from pyrunc.cgroups.fs import CgroupError
from pyrunc.cgroups.resources import Resources
from pyrunc.cgroups.v2 import V2Manager

BUSYBOX = os.environ.get("PYRUNC_TEST_BUSYBOX") or "/bin/busybox"
V2_HOST = cgpaths.host_is_v2()
MB = 1 << 20

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="integration test: needs root (real cgroups)"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="no busybox at %s" % BUSYBOX),
]
needs_v2_host = pytest.mark.skipif(not V2_HOST, reason="cgroup v2 controllers not available on this host (v1 host)")


def unified_root():
    m = cgpaths.unified_mount(cgpaths.read_text("/proc/self/mountinfo"))
    if m is None:
        pytest.skip("no cgroup2 mount on this host")
    return m[0]


def read(path):
    with open(path) as f:
        return f.read().strip()


class Procs:
    def __init__(self):
        self.started = []
        self.managers = []

    def start(self, mgr, script):
        p = subprocess.Popen([BUSYBOX, "sh", "-c", "read go; " + script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.started.append(p)
        self.managers.append(mgr)
        mgr.add_pid(p.pid)
        p.stdin.write(b"go\n")
        p.stdin.flush()
        return p

    def cleanup(self):
        # the test's cgroups hold only what these started (and their children)
        for mgr in self.managers:
            if mgr.exists():
                mgr.kill_all(signal.SIGKILL)
                if mgr.is_frozen():  # a frozen task can't die
                    mgr.thaw()
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


@pytest.fixture
def v2dir():
    """A test-owned parent in the cgroup2 hierarchy; removed afterwards."""
    root = unified_root()
    parent = root + "/pyrunc-test-" + uuid.uuid4().hex[:10]
    yield root, parent
    for d, _dirs, _files in sorted(os.walk(parent), key=lambda t: -len(t[0])) if os.path.isdir(parent) else ():
        os.rmdir(d)


def v2_manager(v2dir, res=None):
    root, parent = v2dir
    r = Resources.from_dict(res) if res is not None else None
    if V2_HOST:
        return manager_for(parent[len(root):] + "/c", "x", r)
    return V2Manager(parent + "/c", r, root=root)


# -- on any cgroup2 mount ------------------------------------------------------

def test_ebpf_device_filter_denies_open(v2dir, procs):
    rules = [{"allow": False, "access": "rwm"}] + [
        r for r in default_device_rules() if (r.get("major"), r.get("minor")) != (1, 3)]
    mgr = v2_manager(v2dir, {"devices": rules})
    mgr.create()
    p = procs.start(mgr, "head -c 4 /dev/zero | wc -c; cat /dev/null && echo null-opened")
    out, err = p.communicate(timeout=10)
    assert out.decode().split()[0] == "4"  # /dev/zero (1:5) allowed
    assert b"null-opened" not in out and b"Operation not permitted" in err  # /dev/null (1:3) denied
    # a process outside the cgroup is unaffected
    assert subprocess.run([BUSYBOX, "cat", "/dev/null"]).returncode == 0
    # update: the new program replaces the old (allow /dev/null, deny /dev/zero)
    rules2 = [{"allow": False, "access": "rwm"}] + [
        r for r in default_device_rules() if (r.get("major"), r.get("minor")) != (1, 5)]
    mgr.set(Resources.from_dict({"devices": rules2}))
    p = procs.start(mgr, "cat /dev/null && echo null-opened; head -c 4 /dev/zero")
    out, err = p.communicate(timeout=10)
    assert b"null-opened" in out and b"Operation not permitted" in err
    from pyrunc.cgroups import ebpf
    fd = os.open(mgr.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(ebpf.attached_ids(fd)[1]) == 1  # the old program was detached
    finally:
        os.close(fd)
    mgr.destroy()
    assert not os.path.exists(v2dir[1])


def test_ebpf_read_only_rule(v2dir, procs):
    mgr = v2_manager(v2dir, {"devices": [{"allow": False, "access": "rwm"},
                                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]})
    mgr.create()
    p = procs.start(mgr, "cat /dev/null && echo read-ok; echo x > /dev/null || echo write-denied")
    out, _ = p.communicate(timeout=10)
    assert b"read-ok" in out and b"write-denied" in out
    mgr.destroy()


def counter(mgr, procs, path):
    return procs.start(mgr, "while :; do echo x >> %s; done" % path)


def size_soon(path):
    for _ in range(200):
        if os.path.exists(path) and os.path.getsize(path):
            return os.path.getsize(path)
        time.sleep(0.01)
    raise AssertionError("counter never wrote %s" % path)


def test_freeze_thaw_kill_destroy(v2dir, procs, tmp_path):
    mgr = v2_manager(v2dir)
    mgr.create()
    assert mgr.can_freeze()
    out = str(tmp_path / "count")
    p = counter(mgr, procs, out)
    size_soon(out)
    mgr.freeze()
    assert mgr.is_frozen()
    a = os.path.getsize(out)
    time.sleep(0.4)
    assert os.path.getsize(out) == a
    mgr.thaw()
    assert not mgr.is_frozen()
    time.sleep(0.3)
    assert os.path.getsize(out) > a
    procs.start(mgr, "sleep 60 >/dev/null 2>&1 & sleep 60")
    for _ in range(200):
        if len(mgr.pids()) >= 3:
            break
        time.sleep(0.01)
    assert p.pid in mgr.pids() and len(mgr.pids()) == 3  # counter, sh (exec'd into sleep), its child
    mgr.kill_all(signal.SIGKILL)  # cgroup.kill
    p.wait(timeout=10)
    mgr.wait_empty()
    assert mgr.pids() == []
    mgr.destroy()
    assert not os.path.exists(v2dir[1])


def test_kill_all_other_signal_freezes_first(v2dir, procs):
    mgr = v2_manager(v2dir)
    mgr.create()
    p = procs.start(mgr, "trap 'echo got-term; exit 0' TERM; while :; do sleep 0.05; done")
    time.sleep(0.2)
    mgr.kill_all(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert b"got-term" in out and not mgr.is_frozen()
    mgr.wait_empty()
    mgr.destroy()


def test_unified_core_key_and_unknown_controller(v2dir):
    root = v2dir[0]
    before = read(root + "/cgroup.subtree_control")
    mgr = v2_manager(v2dir, {"unified": {"cgroup.max.descendants": "5"}})
    mgr.create()
    if not V2_HOST:  # a hybrid host's shared unified root is left as it is
        assert read(root + "/cgroup.subtree_control") == before
    assert read(mgr.path + "/cgroup.max.descendants") == "5"
    with pytest.raises(CgroupError, match=r"^linux.resources.unified.nosuch.key: controller nosuch is not available"):
        mgr.set(Resources.from_dict({"unified": {"nosuch.key": "1"}}))
    mgr.destroy()


# -- on a v2 host: every field ---------------------------------------------------

V2_FIELDS = [
    ("memory.limit", {"memory": {"limit": 64 * MB}}, "memory.max", str(64 * MB)),
    ("memory.reservation", {"memory": {"reservation": 32 * MB}}, "memory.low", str(32 * MB)),
    ("memory.swap", {"memory": {"limit": 64 * MB, "swap": 96 * MB}}, "memory.swap.max", str(32 * MB)),
    ("cpu.shares", {"cpu": {"shares": 1024}}, "cpu.weight", "100"),
    ("cpu.quota+period", {"cpu": {"quota": 25000, "period": 50000}}, "cpu.max", "25000 50000"),
    ("cpu.burst", {"cpu": {"quota": 25000, "burst": 5000}}, "cpu.max.burst", "5000"),
    ("cpu.idle", {"cpu": {"idle": 1}}, "cpu.idle", "1"),
    ("cpu.cpus", {"cpu": {"cpus": "0"}}, "cpuset.cpus", "0"),
    ("cpu.mems", {"cpu": {"mems": "0"}}, "cpuset.mems", "0"),
    ("pids.limit", {"pids": {"limit": 7}}, "pids.max", "7"),
    ("unified.memory.high", {"unified": {"memory.high": str(48 * MB)}}, "memory.high", str(48 * MB)),
    ("blockIO.weight", {"blockIO": {"weight": 500}}, None, None),
    ("hugepageLimits", {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}]}, "hugetlb.2MB.max",
     str(4 << 21)),
]


# Fields whose file depends on the host (kernel version, config, I/O
# scheduler): any one of these files is what the runtime writes.
V2_HOST_FILES = {
    "blockIO.weight": ("io.weight", "io.bfq.weight"),
    "memory.swap": ("memory.swap.max",),
    "cpu.burst": ("cpu.max.burst",),  # >= 5.14
    "cpu.idle": ("cpu.idle",),  # >= 5.15
}


def v2_child_files(v2dir):
    """(files, controllers) of a fresh child cgroup on this host."""
    probe = v2_manager(v2dir)
    probe.create()
    try:
        return set(os.listdir(probe.path)), probe.controllers()
    finally:
        probe.destroy()


@needs_v2_host
@pytest.mark.parametrize("field,res,file,expected", V2_FIELDS, ids=[f[0] for f in V2_FIELDS])
def test_v2_field_is_written(v2dir, field, res, file, expected):
    ctrl = (file or "io").split(".")[0]
    files, controllers = v2_child_files(v2dir)
    if ctrl not in controllers and ctrl != "cgroup":
        pytest.skip("the %s controller is not enabled for a child of this host's cgroup" % ctrl)
    mgr = v2_manager(v2dir, res)
    if field in V2_HOST_FILES and not files & set(V2_HOST_FILES[field]):
        # the host lacks the feature: one line naming the field, nothing left
        with pytest.raises(CgroupError) as e:
            mgr.create()
        assert str(e.value).startswith("linux.resources.%s" % field.split("+")[0]) and "\n" not in str(e.value)
        assert not os.path.exists(mgr.path)
        return
    mgr.create()
    try:
        if ctrl not in mgr.controllers() and ctrl not in ("cgroup",):
            pytest.skip("the %s controller is not enabled for a child of this host's cgroup" % ctrl)
        if field == "blockIO.weight":
            if os.path.exists(mgr.path + "/io.bfq.weight"):
                assert read(mgr.path + "/io.bfq.weight").split()[-1] == "500"
            else:
                assert read(mgr.path + "/io.weight") == "default 4950"
        else:
            assert read(mgr.path + "/" + file) == expected
    finally:
        mgr.destroy()


@needs_v2_host
def test_v2_memory_oom_counted(v2dir, procs):
    mgr = v2_manager(v2dir, {"memory": {"limit": 24 * MB, "swap": 24 * MB}})
    mgr.create()
    p = procs.start(mgr, "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived")
    out, _ = p.communicate(timeout=60)
    assert b"survived" not in out
    assert mgr.oom_events() >= 1
    assert mgr.stats()["memory"]["usage"]["limit"] == 24 * MB
    mgr.destroy()


@needs_v2_host
def test_v2_pids_limit(v2dir, procs):
    mgr = v2_manager(v2dir, {"pids": {"limit": 4}})
    mgr.create()
    p = procs.start(mgr, "for i in 1 2 3 4 5 6 7 8; do sleep 30 >/dev/null 2>&1 & done; echo spawned all; wait")
    out, err = p.communicate(timeout=30)
    assert b"spawned all" not in out and b"fork" in err
    assert mgr.stats()["pids"]["limit"] == 4
    mgr.kill_all(signal.SIGKILL)
    mgr.wait_empty()
    mgr.destroy()


@needs_v2_host
def test_v2_realtime_is_refused(v2dir):
    mgr = v2_manager(v2dir, {"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(CgroupError, match="^linux.resources.cpu.realtimeRuntime: "):
        mgr.create()
    assert not os.path.exists(mgr.path)
