"""The cgroup library on this host's real v1 hierarchies (and its hybrid
unified mount), with plain busybox processes: every resource field read
back from /sys/fs/cgroup, enforcement (OOM, pids, devices), freezer,
kill_all, stats, cgroup mounts, and that destroy leaves nothing.

Every cgroup lives under a test-owned parent /pyrunc-test-<random> taken
from each hierarchy's root; nothing else is touched."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from pyrunc.cgroups import manager_for, default_device_rules
from pyrunc.cgroups import paths as cgpaths
from pyrunc.cgroups.fs import CgroupError
from pyrunc.cgroups.resources import Resources

BUSYBOX = os.environ.get("PYRUNC_TEST_BUSYBOX") or "/bin/busybox"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="integration test: needs root (real cgroups)"),
    pytest.mark.skipif(cgpaths.host_is_v2(), reason="cgroup v1 hierarchies not available on this host (v2 host)"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="no busybox at %s" % BUSYBOX),
]


def mountinfo():
    return cgpaths.read_text("/proc/self/mountinfo")


def all_mountpoints():
    return sorted({m for fstype, m, _root, _o in cgpaths.cgroup_mounts(mountinfo())})


def hierarchy(ctrl):
    return cgpaths.v1_hierarchies(mountinfo())[ctrl][0]


def leftovers(parent):
    return [m + parent for m in all_mountpoints() if os.path.exists(m + parent)]


def remove_tree(d):
    for root, dirs, _files in sorted(os.walk(d), key=lambda t: -len(t[0])):
        os.rmdir(root)


class Procs:
    """Processes a test started; cleanup ends exactly these, by pid."""

    def __init__(self):
        self.started = []
        self.managers = []

    def start(self, mgr, script):
        """busybox sh running `script` inside mgr's cgroup: it waits on
        stdin until add_pid has placed it."""
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
def parent():
    """A test-owned cgroup parent path; removed from every hierarchy after."""
    name = "/pyrunc-test-" + uuid.uuid4().hex[:10]
    yield name
    for d in leftovers(name):
        for root, _dirs, _files in os.walk(d):
            for pid in open(os.path.join(root, "cgroup.procs")).read().split():
                raise AssertionError("process %s left in %s" % (pid, root))
        remove_tree(d)


def make(parent, res=None, sub="c"):
    r = Resources.from_dict(res) if isinstance(res, dict) else res
    return manager_for(parent + "/" + sub, "ignored-id", r)


def read(path):
    with open(path) as f:
        return f.read().strip()


# -- every field, read back ----------------------------------------------------

MB = 1 << 20
FIELDS = [
    # (field, resources, controller, file, expected)
    ("memory.limit", {"memory": {"limit": 64 * MB}}, "memory", "memory.limit_in_bytes", str(64 * MB)),
    ("memory.reservation", {"memory": {"reservation": 32 * MB}}, "memory", "memory.soft_limit_in_bytes", str(32 * MB)),
    ("memory.swap", {"memory": {"limit": 64 * MB, "swap": 96 * MB}}, "memory", "memory.memsw.limit_in_bytes", str(96 * MB)),
    ("memory.kernelTCP", {"memory": {"kernelTCP": 16 * MB}}, "memory", "memory.kmem.tcp.limit_in_bytes", str(16 * MB)),
    ("memory.swappiness", {"memory": {"swappiness": 17}}, "memory", "memory.swappiness", "17"),
    ("memory.disableOOMKiller", {"memory": {"disableOOMKiller": True}}, "memory", "memory.oom_control",
     "oom_kill_disable 1"),
    ("memory.useHierarchy", {"memory": {"useHierarchy": True}}, "memory", "memory.use_hierarchy", "1"),
    ("cpu.shares", {"cpu": {"shares": 512}}, "cpu", "cpu.shares", "512"),
    ("cpu.quota", {"cpu": {"quota": 25000}}, "cpu", "cpu.cfs_quota_us", "25000"),
    ("cpu.period", {"cpu": {"quota": 25000, "period": 50000}}, "cpu", "cpu.cfs_period_us", "50000"),
    ("cpu.burst", {"cpu": {"quota": 25000, "burst": 5000}}, "cpu", "cpu.cfs_burst_us", "5000"),
    ("cpu.idle", {"cpu": {"idle": 1}}, "cpu", "cpu.idle", "1"),
    ("cpu.realtimeRuntime", {"cpu": {"realtimeRuntime": 1000}}, "cpu", "cpu.rt_runtime_us", "1000"),
    ("cpu.realtimePeriod", {"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 200000}}, "cpu",
     "cpu.rt_period_us", "200000"),
    ("cpu.cpus", {"cpu": {"cpus": "0"}}, "cpuset", "cpuset.cpus", "0"),
    ("cpu.mems", {"cpu": {"mems": "0"}}, "cpuset", "cpuset.mems", "0"),
    ("pids.limit", {"pids": {"limit": 7}}, "pids", "pids.max", "7"),
    ("pids.limit-unlimited", {"pids": {"limit": -1}}, "pids", "pids.max", "max"),
    ("blockIO.weight", {"blockIO": {"weight": 500}}, "blkio", "blkio.bfq.weight", "500"),
    ("blockIO.throttleReadBpsDevice", {"blockIO": {"throttleReadBpsDevice": [{"major": 0, "minor": 0, "rate": 0}]}},
     "blkio", "blkio.throttle.read_bps_device", None),
    ("unified.cgroup.max.depth", {"unified": {"cgroup.max.depth": "3"}}, "", "cgroup.max.depth", "3"),
]


def block_device():
    """(major, minor) of a whole disk on this machine, for throttle rules."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        major, minor = read("/sys/block/%s/dev" % name).split(":")
        return int(major), int(minor)
    pytest.skip("no block device in /sys/block to throttle")


def kernel_files(ctrl, parent):
    """The files a new cgroup of controller `ctrl` has on this host (a
    probe cgroup made and removed): which fields this kernel can take."""
    probe = (hierarchy(ctrl) if ctrl else cgpaths.unified_mount(mountinfo())[0]) + parent + "-probe"
    os.makedirs(probe)
    try:
        return set(os.listdir(probe))
    finally:
        os.rmdir(probe)


# Fields whose file depends on the host (kernel version, config, scheduler):
# the file(s) any one of which the runtime writes.
HOST_FILES = {
    "blockIO.weight": ("blkio.weight", "blkio.bfq.weight"),  # CFQ-era kernels, or BFQ
    "memory.swap": ("memory.memsw.limit_in_bytes",),  # swap accounting on
    "memory.kernelTCP": ("memory.kmem.tcp.limit_in_bytes",),
    "cpu.burst": ("cpu.cfs_burst_us",),  # >= 5.14
    "cpu.idle": ("cpu.idle",),  # >= 5.15
    "cpu.realtimeRuntime": ("cpu.rt_runtime_us",),  # CONFIG_RT_GROUP_SCHED
    "cpu.realtimePeriod": ("cpu.rt_period_us",),
}


@pytest.mark.parametrize("field,res,ctrl,file,expected", FIELDS, ids=[f[0] for f in FIELDS])
def test_field_is_written(parent, field, res, ctrl, file, expected):
    if ctrl and ctrl not in cgpaths.v1_hierarchies(mountinfo()):
        pytest.skip("no %s hierarchy mounted on this host" % ctrl)
    wanted = HOST_FILES.get(field)
    if wanted and not kernel_files(ctrl, parent) & set(wanted):
        # The host lacks the feature: the runtime must say so in one line
        # naming the field, and leave nothing behind.
        with pytest.raises(CgroupError) as e:
            make(parent, res).create()
        msg = str(e.value)
        assert msg.startswith("linux.resources.%s: " % field) and "\n" not in msg, msg
        assert leftovers(parent) == []
        return
    if field.startswith("cpu.realtime"):
        # a child can only get realtime runtime its parent has: give ours some
        os.makedirs(hierarchy("cpu") + parent)
        with open(hierarchy("cpu") + parent + "/cpu.rt_runtime_us", "w") as f:
            f.write("10000")
    if field.startswith("unified.") and "" not in make(parent).paths:
        pytest.skip("no cgroup2 mount on this host (not hybrid)")
    if field.startswith("blockIO.throttle"):
        major, minor = block_device()
        res = {"blockIO": {}}
        for i, key in enumerate(("throttleReadBpsDevice", "throttleWriteBpsDevice",
                                 "throttleReadIOPSDevice", "throttleWriteIOPSDevice")):
            res["blockIO"][key] = [{"major": major, "minor": minor, "rate": 1000 * (i + 1)}]
    mgr = make(parent, res)
    mgr.create()
    try:
        d = mgr.paths[ctrl]
        assert d == (hierarchy(ctrl) if ctrl else cgpaths.unified_mount(mountinfo())[0]) + parent + "/c"
        if field == "blockIO.weight" and os.path.exists(d + "/blkio.weight"):
            assert read(d + "/blkio.weight") == expected  # CFQ-era kernels
        elif field.startswith("blockIO.throttle"):
            for i, name in enumerate(("read_bps", "write_bps", "read_iops", "write_iops")):
                assert read(d + "/blkio.throttle.%s_device" % name) == "%d:%d %d" % (major, minor, 1000 * (i + 1))
        elif file == "memory.oom_control":
            assert expected in read(d + "/" + file).splitlines()
        else:
            assert read(d + "/" + file) == expected
    finally:
        mgr.destroy()
    assert leftovers(parent) == ([hierarchy("cpu") + parent] if field.startswith("cpu.realtime") else [])


UNSUPPORTED_HERE = [
    # fields this kernel/host has no v1 file or controller for: a one-line
    # error naming the field, and nothing left behind
    ("blockIO.leafWeight", {"blockIO": {"leafWeight": 500}}, "blkio.leaf_weight"),
    # BFQ takes per-device weights only for disks it schedules
    ("blockIO.weightDevice[0]", {"blockIO": {"weightDevice": [{"major": None, "minor": None, "weight": 500}]}},
     "blkio.bfq.weight_device"),
    ("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 1}}}, "rdma.max"),
    ("unified.memory.high", {"unified": {"memory.high": "1000000"}}, None),
]


@pytest.mark.parametrize("field,res,file", UNSUPPORTED_HERE, ids=[u[0] for u in UNSUPPORTED_HERE])
def test_unsupported_field_is_a_clear_error(parent, field, res, file):
    if field == "blockIO.weightDevice[0]":
        major, minor = block_device()
        res = {"blockIO": {"weightDevice": [{"major": major, "minor": minor, "weight": 500}]}}
        sched = read("/sys/dev/block/%d:%d/queue/scheduler" % (major, minor))
        if "[bfq]" in sched:
            pytest.skip("the disk is scheduled by BFQ: per-device weights are supported here")
    mgr = make(parent, res)
    ctrl = "blkio" if file and file.startswith("blkio") else "rdma" if field.startswith("rdma") else None
    if field == "blockIO.leafWeight" and os.path.exists(hierarchy("blkio") + parent + "/c/" + file):
        pytest.skip("this kernel has %s: the field is supported here" % file)
    if ctrl == "rdma" and "rdma" in mgr.paths:
        pytest.skip("this host has an rdma hierarchy")
    with pytest.raises(CgroupError) as e:
        mgr.create()
    msg = str(e.value)
    assert msg.startswith("linux.resources." + field + ": ") and "\n" not in msg
    assert leftovers(parent) == []  # a failed create removes what it made


def test_private_hierarchies_net_cls_net_prio_hugetlb(tmp_path):
    """net_cls, net_prio and hugetlb are not mounted on this host: mount
    them in a private mount namespace of a child process, run the manager
    there, and unmount (the kernel drops a hierarchy with no children)."""
    script = textwrap.dedent("""
        import json, os, sys, time
        from pyrunc import linux
        from pyrunc.cgroups import manager_for
        from pyrunc.cgroups.resources import Resources
        base, parent = sys.argv[1], sys.argv[2]
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        mounted, out = [], {}
        try:
            for name, opts in (("net_cls,net_prio", "net_cls,net_prio"), ("hugetlb", "hugetlb")):
                d = os.path.join(base, name)
                os.mkdir(d)
                try:
                    linux.mount("cgroup", d, "cgroup", 0, opts)
                except OSError as e:
                    print(json.dumps({"skip": "cannot mount a %s hierarchy here: %s" % (opts, e.strerror)}))
                    sys.exit(0)
                mounted.append(d)
            res = Resources.from_dict({
                "network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 5}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}]})
            mgr = manager_for(parent + "/c", "x", res)
            mgr.create()
            try:
                for ctrl, f in (("net_cls", "net_cls.classid"), ("net_prio", "net_prio.ifpriomap"),
                                ("hugetlb", "hugetlb.2MB.limit_in_bytes")):
                    out[f] = open(os.path.join(mgr.paths[ctrl], f)).read()
                out["paths"] = mgr.paths
            finally:
                mgr.destroy()
            out["left"] = [d for d in mounted if os.path.exists(d + parent)]
        finally:
            for d in mounted:
                linux.umount2(d)
            # The kernel drops a v1 hierarchy (asynchronously) at umount only
            # if its removed children are already released; if it stays,
            # one more mount+umount lets it go: the host gets its layout
            # back (hugetlb returns to cgroup2).
            def busy():
                ids = {l.split()[0]: l.split()[1] for l in open("/proc/cgroups") if not l.startswith("#")}
                return [(d, o) for d, o in zip(mounted, ("net_cls,net_prio", "hugetlb"))
                        if ids.get(o.split(",")[0]) != "0"]
            for remount in (True, True, False):
                for _ in range(60):
                    if not busy():
                        break
                    time.sleep(0.05)
                if not busy() or not remount:
                    break
                for d, opts in busy():
                    linux.mount("cgroup", d, "cgroup", 0, opts)
                    linux.umount2(d)
            out["hierarchies_left"] = [o for d, o in busy()]
        print(json.dumps(out))
    """)
    parent = "/pyrunc-test-" + uuid.uuid4().hex[:10]
    p = subprocess.run([sys.executable, "-P", "-c", script, str(tmp_path), parent], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    if "skip" in out:
        pytest.skip(out["skip"])
    assert out["net_cls.classid"].strip() == str(0x100001)
    assert "lo 5" in out["net_prio.ifpriomap"].splitlines()
    assert out["hugetlb.2MB.limit_in_bytes"].strip() == str(4 << 21)
    assert out["paths"]["net_cls"] == out["paths"]["net_prio"] == str(tmp_path) + "/net_cls,net_prio" + parent + "/c"
    assert out["left"] == []
    assert out["hierarchies_left"] == []


def test_devices_v1_rules(parent, procs):
    mgr = make(parent, {"devices": [{"allow": False, "access": "rwm"}] + default_device_rules()})
    mgr.create()
    d = mgr.paths["devices"]
    assert "c 1:3 rwm" in read(d + "/devices.list").splitlines()
    assert "a *:* rwm" not in read(d + "/devices.list")
    # a process in the cgroup: /dev/zero allowed, /dev/kmsg (1:11) not
    p = procs.start(mgr, "head -c 3 /dev/zero | wc -c; cat /dev/kmsg")
    out, err = p.communicate(timeout=10)
    assert out.decode().split()[0] == "3"
    assert b"Operation not permitted" in err
    # update: /dev/null taken away without a reset to deny-all in between
    rules = [{"allow": False, "access": "rwm"}] + [r for r in default_device_rules() if r.get("major") != 1 or r.get("minor") != 3]
    mgr.set(Resources.from_dict({"devices": rules}))
    assert "c 1:3 rwm" not in read(d + "/devices.list").splitlines()
    assert "c 1:5 rwm" in read(d + "/devices.list").splitlines()
    mgr.destroy()


# -- enforcement -----------------------------------------------------------------

def test_memory_limit_oom_kill_is_counted(parent, procs):
    mgr = make(parent, {"memory": {"limit": 24 * MB, "swap": 24 * MB}})
    mgr.create()
    assert mgr.oom_events() == 0
    # 64 MiB through a shell variable: far over the limit
    p = procs.start(mgr, "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}")
    out, _ = p.communicate(timeout=60)
    assert b"survived" not in out
    assert mgr.oom_events() >= 1
    mgr.destroy()


def test_pids_limit_stops_forks(parent, procs):
    mgr = make(parent, {"pids": {"limit": 4}})
    mgr.create()
    p = procs.start(mgr, "for i in 1 2 3 4 5 6 7 8; do sleep 30 >/dev/null 2>&1 & done; echo spawned all; wait")
    out, err = p.communicate(timeout=30)
    assert b"spawned all" not in out and b"fork" in err  # busybox sh gives up at the first refused fork
    assert 1 <= len(mgr.pids()) <= 3  # the sleeps that did start (the shell made 4)
    assert int(read(mgr.paths["pids"] + "/pids.events").split()[1]) > 0  # "max N": forks refused
    mgr.kill_all(signal.SIGKILL)
    mgr.wait_empty()
    mgr.destroy()


def counter(mgr, procs, path):
    # appends: the file only grows, even if frozen mid-write
    return procs.start(mgr, "while :; do echo x >> %s; done" % path)


def value(path):
    for _ in range(100):
        if os.path.exists(path) and os.path.getsize(path):
            return os.path.getsize(path)
        time.sleep(0.01)
    raise AssertionError("counter never wrote %s" % path)


def test_freeze_thaw(parent, procs, tmp_path):
    mgr = make(parent)
    mgr.create()
    out = str(tmp_path / "count")
    counter(mgr, procs, out)
    time.sleep(0.3)
    mgr.freeze()
    assert mgr.is_frozen()
    assert read(mgr.paths["freezer"] + "/freezer.state") == "FROZEN"
    a = value(out)
    time.sleep(0.5)
    assert value(out) == a  # stopped
    mgr.thaw()
    assert not mgr.is_frozen()
    time.sleep(0.3)
    assert value(out) > a  # running again
    mgr.kill_all(signal.SIGKILL)


def test_pids_and_kill_all(parent, procs):
    mgr = make(parent)
    mgr.create()
    p = procs.start(mgr, "sleep 60 & sleep 60 & (sleep 60 &) ; wait")
    for _ in range(200):
        if len(mgr.pids()) >= 4:
            break
        time.sleep(0.01)
    pids = mgr.pids()
    assert p.pid in pids and len(pids) == 4  # shell, two sleeps, the orphaned one
    mgr.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    mgr.wait_empty()
    assert mgr.pids() == []
    assert not mgr.is_frozen()
    mgr.destroy()
    assert leftovers(parent) == []


def test_destroy_leaves_nothing_and_retries_while_tasks_exit(parent, procs):
    mgr = make(parent, {"memory": {"limit": 64 * MB}, "pids": {"limit": 10}})
    mgr.create()
    made = list(mgr.created)
    assert hierarchy("memory") + parent in made and hierarchy("memory") + parent + "/c" in made
    p = procs.start(mgr, "sleep 60")
    time.sleep(0.1)
    mgr.kill_all(signal.SIGKILL)
    mgr.destroy()  # the killed task may still be exiting: rmdir retries
    p.wait(timeout=10)
    assert leftovers(parent) == []


def test_existing_cgroup_is_joined_not_removed(parent):
    existing = hierarchy("memory") + parent + "/c"
    os.makedirs(existing)
    with open(existing + "/memory.limit_in_bytes", "w") as f:
        f.write(str(100 * MB))
    mgr = make(parent, {"pids": {"limit": 5}})
    mgr.create()
    assert existing not in mgr.created and hierarchy("memory") + parent not in mgr.created
    assert read(existing + "/memory.limit_in_bytes") == str(100 * MB)  # untouched
    mgr.destroy()
    assert leftovers(parent) == [hierarchy("memory") + parent]


@pytest.mark.parametrize("premade", ["", "/c"])
def test_cpuset_levels_a_concurrent_create_left_empty_are_filled(parent, procs, premade):
    """Concurrent creates under a new parent: one has made the parent (or
    the shared cgroup itself) and not yet copied cpus/mems into it when the
    other gets there. Empty levels are filled top-down whoever made them;
    otherwise every join fails with ENOSPC (seen with 20 parallel creates)."""
    cpuset = hierarchy("cpuset")
    os.makedirs(cpuset + parent + premade)
    assert read(cpuset + parent + "/cpuset.cpus") == ""
    mgr = make(parent, {"pids": {"limit": 5}})
    mgr.create()
    for d in (cpuset + parent, cpuset + parent + "/c"):
        assert read(d + "/cpuset.cpus") == read(cpuset + "/cpuset.cpus") != ""
        assert read(d + "/cpuset.mems") == read(cpuset + "/cpuset.mems") != ""
    p = procs.start(mgr, "grep cpuset /proc/self/cgroup")
    out = p.communicate(timeout=10)[0].decode()
    assert out.strip().endswith(":cpuset:%s/c" % parent), out


def test_relative_path_is_under_own_cgroup_and_runtime_stays_out(parent):
    """A relative cgroupsPath hangs off the caller's own cgroup; we check
    the computed paths (creating there would touch the host's cgroups)."""
    mgr = manager_for("rel/c", "id", None)
    own = cgpaths.own_cgroups(read("/proc/self/cgroup"))
    assert mgr.paths["memory"] == os.path.normpath(hierarchy("memory") + own["memory"] + "/rel/c")
    default = manager_for(None, "ctr-id", None)
    assert default.paths["pids"] == os.path.normpath(hierarchy("pids") + own["pids"] + "/ctr-id")


def test_update_changes_limits(parent, procs):
    mgr = make(parent, {"memory": {"limit": 64 * MB}, "cpu": {"shares": 256}})
    mgr.create()
    mgr.set(Resources.from_dict({"memory": {"limit": 32 * MB, "swap": 48 * MB}}))
    assert read(mgr.paths["memory"] + "/memory.limit_in_bytes") == str(32 * MB)
    assert read(mgr.paths["memory"] + "/memory.memsw.limit_in_bytes") == str(48 * MB)
    assert read(mgr.paths["cpu"] + "/cpu.shares") == "256"
    assert mgr.resources.to_dict() == {"memory": {"limit": 32 * MB, "swap": 48 * MB}, "cpu": {"shares": 256}}
    # growing again: swap must be raised before memory (kernel keeps memory <= memsw)
    mgr.set(Resources.from_dict({"memory": {"limit": 128 * MB, "swap": 256 * MB}}))
    assert read(mgr.paths["memory"] + "/memory.limit_in_bytes") == str(128 * MB)
    # checkBeforeUpdate refuses a limit under current usage
    p = procs.start(mgr, "x=$(yes a | head -c 8388608); echo ok; sleep 60")
    assert p.stdout.readline() == b"ok\n"
    # Whatever the usage is right now (under load it need not be the 8 MiB
    # the shell holds), a limit of half of it must be refused.
    usage = int(read(mgr.paths["memory"] + "/memory.usage_in_bytes"))
    assert usage > 8192
    below = max(4096, (usage // 2) & ~4095)
    with pytest.raises(CgroupError, match="checkBeforeUpdate"):
        mgr.set(Resources.from_dict({"memory": {"limit": below, "checkBeforeUpdate": True}}))
    assert read(mgr.paths["memory"] + "/memory.limit_in_bytes") == str(128 * MB)  # unchanged
    mgr.kill_all(signal.SIGKILL)
    mgr.destroy()


def test_stats_shape(parent, procs):
    mgr = make(parent, {"memory": {"limit": 64 * MB}, "pids": {"limit": 10}})
    mgr.create()
    p = procs.start(mgr, "x=$(head -c 1048576 /dev/zero | tr '\\0' a); echo ok; sleep 60")
    assert p.stdout.readline() == b"ok\n"
    s = json.loads(json.dumps(mgr.stats()))
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb", "cpuset"}
    assert s["pids"] == {"current": 1, "limit": 10}
    assert s["memory"]["usage"]["limit"] == 64 * MB
    assert s["memory"]["usage"]["usage"] > 0
    assert "rss" in s["memory"]["raw"]
    assert s["cpu"]["usage"]["total"] > 0
    mgr.kill_all(signal.SIGKILL)
    mgr.destroy()


def test_state_round_trip_controls_the_same_cgroup(parent, procs):
    from pyrunc.cgroups import load_manager
    mgr = make(parent, {"pids": {"limit": 9}})
    mgr.create()
    p = procs.start(mgr, "sleep 60")
    again = load_manager(json.loads(json.dumps(mgr.to_dict())))
    assert again.pids() == [p.pid]
    again.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    again.destroy()
    assert leftovers(parent) == []


# -- the cgroup mount a container sees ------------------------------------------

MOUNT_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pyrunc import linux
    from pyrunc.cgroups import load_manager
    from pyrunc.cgroups.mount import mount_cgroup
    mgr_dict, target, cgroupns, via_fd = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
    mgr = load_manager(mgr_dict)
    if cgroupns:
        mgr.add_pid(os.getpid())
        linux.unshare(linux.CLONE_NEWCGROUP)
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    fd = os.open(target, os.O_PATH | os.O_DIRECTORY)
    mount_cgroup("/proc/self/fd/%d" % fd if via_fd else target, mgr_dict, cgroupns, readonly=True)
    out = {"entries": sorted(os.listdir(target)), "links": {}}
    for name in out["entries"]:
        if os.path.islink(os.path.join(target, name)):
            out["links"][name] = os.readlink(os.path.join(target, name))
    out["memory_limit"] = open(target + "/memory/memory.limit_in_bytes").read().strip()
    out["proc_cgroup"] = open("/proc/self/cgroup").read()
    try:
        open(target + "/memory/memory.limit_in_bytes", "w").write("1")
        out["ro"] = False
    except OSError:
        out["ro"] = True
    try:
        os.mkdir(target + "/newdir")
        out["tmpfs_ro"] = False
    except OSError:
        out["tmpfs_ro"] = True
    print(json.dumps(out))
""")


@pytest.mark.parametrize("cgroupns", [False, True], ids=["bind", "cgroupns"])
@pytest.mark.parametrize("via_fd", [False, True], ids=["path", "procfd"])
def test_mount_cgroup_v1(parent, tmp_path, cgroupns, via_fd):
    mgr = make(parent, {"memory": {"limit": 48 * MB}})
    mgr.create()
    target = tmp_path / "cgroup"
    target.mkdir()
    try:
        p = subprocess.run([sys.executable, "-P", "-c", MOUNT_SCRIPT, json.dumps(mgr.to_dict()), str(target),
                            "1" if cgroupns else "0", "1" if via_fd else "0"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
    finally:
        mgr.destroy()
    names = {os.path.basename(m) for fstype, m, _r, _o in cgpaths.cgroup_mounts(mountinfo()) if fstype == "cgroup"}
    assert names <= set(out["entries"])
    for name in names:
        for link in name.split(",") if "," in name else ():
            assert out["links"][link] == name
    assert out["memory_limit"] == str(48 * MB)  # the container's own cgroup, not the root
    assert out["ro"] and out["tmpfs_ro"]
    assert os.listdir(str(target)) == []  # nothing leaked under the mount point
    if cgroupns:
        assert "memory:/\n" in out["proc_cgroup"]


def test_events_watch_reports_oom_and_stats(parent, procs):
    import threading
    from pyrunc.cgroups.events import watch
    mgr = make(parent, {"memory": {"limit": 24 * MB, "swap": 24 * MB}})
    mgr.create()
    events, stop = [], threading.Event()
    t = threading.Thread(target=watch, args=("cid", mgr, 0.2, events.append, lambda: not stop.is_set()))
    t.start()
    try:
        p = procs.start(mgr, "x=$(head -c 67108864 /dev/zero | tr '\\0' a)")
        p.wait(timeout=60)
        for _ in range(50):
            if any(e["type"] == "oom" for e in events):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=10)
    assert {"type": "oom", "id": "cid"} in events
    stats = [e for e in events if e["type"] == "stats"]
    assert stats and stats[0]["id"] == "cid" and stats[0]["data"]["memory"]["usage"]["limit"] == 24 * MB
    mgr.destroy()
