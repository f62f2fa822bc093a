"""Real containers with linux.resources, through the pyrunc CLI: limits read
from inside (through the container's cgroup mount and namespace) and from
the host hierarchy, enforcement, pause/resume, kill --all, update, ps,
events, and that delete leaves no cgroup behind."""
import importlib.util
import json
import os
import stat
import subprocess
import time
import uuid

import pytest

from pyrunc.cgroups import paths as cgpaths

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="integration test: needs root (real namespaces, cgroups)"),
    pytest.mark.skipif(cgpaths.host_is_v2(), reason="cgroup v1 hierarchies not available on this host (v2 host)"),
]
MB = 1 << 20


def verb_missing(module):
    return importlib.util.find_spec("pyrunc." + module) is None


def mountpoints():
    return sorted({m for _t, m, _r, _o in cgpaths.cgroup_mounts(cgpaths.read_text("/proc/self/mountinfo"))})


def hierarchy(ctrl):
    return cgpaths.v1_hierarchies(cgpaths.read_text("/proc/self/mountinfo"))[ctrl][0]


def leftovers(parent):
    return [m + parent for m in mountpoints() if os.path.exists(m + parent)]


def read(path):
    with open(path) as f:
        return f.read().strip()


@pytest.fixture
def parent(runtime):
    """Test-owned cgroup parent; after the test (containers deleted by the
    runtime fixture first) nothing may remain under it."""
    name = "/pyrunc-test-" + uuid.uuid4().hex[:10]
    yield name
    runtime.cleanup()
    left = leftovers(name)
    for d in left:
        for root, _dirs, _files in sorted(os.walk(d), key=lambda t: -len(t[0])):
            os.rmdir(root)
    assert left == [], "cgroups left behind: %s" % left


def configure(bundle, parent, cid, resources, *args):
    def f(cfg):
        cfg["process"]["args"] = list(args)
        cfg["process"]["terminal"] = False
        cfg["linux"]["cgroupsPath"] = "%s/%s" % (parent, cid)
        cfg["linux"]["resources"] = dict(cfg["linux"].get("resources") or {}, **resources)
    bundle.update(f)


def run_detached(runtime, bundle, cid):
    # the container inherits these: no pipe the test would wait on
    runtime("run", "-d", "-b", bundle.path, cid, capture_output=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_status(runtime, cid, status, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runtime.state(cid)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError("%s never became %s" % (cid, status))


def test_limits_inside_and_on_host(bundle, runtime, parent):
    cid = runtime.new_id()
    res = {"memory": {"limit": 48 * MB, "reservation": 16 * MB}, "pids": {"limit": 32},
           "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0"}}
    configure(bundle, parent, cid, res, "sh", "-c",
              "for f in memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes pids/pids.max "
              "cpu/cpu.shares cpu/cpu.cfs_quota_us cpuset/cpuset.cpus; do cat /sys/fs/cgroup/$f; done; "
              "cat /proc/self/cgroup; sleep 30")
    run_detached(runtime, bundle, cid)
    pid = runtime.state(cid)["pid"]
    # on the host: the init sits in the container's cgroup in every
    # hierarchy (v1 ones and, on a hybrid host, the unified one: 0::)
    host = read("/proc/%d/cgroup" % pid)
    assert len(host.splitlines()) > 1
    for line in host.splitlines():
        assert line.endswith(":%s/%s" % (parent, cid)), line
    assert read(hierarchy("memory") + "%s/%s/memory.limit_in_bytes" % (parent, cid)) == str(48 * MB)
    assert read(hierarchy("pids") + "%s/%s/pids.max" % (parent, cid)) == "32"
    assert read(hierarchy("cpu") + "%s/%s/cpu.cfs_quota_us" % (parent, cid)) == "20000"
    # the runtime process itself is not in the container's cgroup
    assert str(os.getpid()) not in read(hierarchy("memory") + "%s/%s/cgroup.procs" % (parent, cid)).split()
    runtime("kill", cid, "KILL")
    wait_status(runtime, cid, "stopped")
    runtime("delete", cid)
    assert leftovers(parent) == []


def test_limits_read_from_inside(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {"memory": {"limit": 40 * MB}, "pids": {"limit": 17}, "cpu": {"shares": 300}},
              "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                          "/sys/fs/cgroup/cpu/cpu.shares; grep memory /proc/self/cgroup")
    # `spec` gives a cgroup namespace only on a cgroup v2 host (as runc)
    bundle.update(lambda c: c["linux"]["namespaces"].append({"type": "cgroup"})
                  if {"type": "cgroup"} not in c["linux"]["namespaces"] else None)
    out = runtime("run", "-b", bundle.path, cid, stdin=subprocess.DEVNULL).stdout.split()
    assert out[:3] == [str(40 * MB), "17", "300"]
    assert out[3].endswith(":memory:/")  # its own cgroup namespace
    assert leftovers(parent) == []


def test_oom_kill_in_container(bundle, runtime, parent):
    """A child over the memory limit is OOM-killed; the init survives, and a
    streaming `events` reports the OOM (runc's {"type": "oom"})."""
    cid = runtime.new_id()
    configure(bundle, parent, cid, {"memory": {"limit": 24 * MB, "swap": 24 * MB}},
              "sh", "-c", "while [ ! -e /dev/shm/go ]; do sleep 0.05; done; "
              "sh -c 'x=$(head -c 67108864 /dev/zero | tr \"\\\\0\" a)'; sleep 100")
    runtime("run", "-d", "-b", bundle.path, cid, stdin=subprocess.DEVNULL)
    if verb_missing("events"):
        pytest.skip("pyrunc has no events verb yet")
    events = subprocess.Popen(runtime.cmd("events", "--interval", "200ms", cid),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # The hog starts once `events` is surely watching (it has printed):
        # on a loaded host a fixed delay let the OOM happen before it looked.
        lines = [json.loads(events.stdout.readline())]
        runtime("exec", cid, "touch", "/dev/shm/go")
        deadline = time.time() + 30
        while time.time() < deadline:
            line = events.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
            if any(e["type"] == "oom" for e in lines):
                break
        assert any(e["type"] == "oom" and e["id"] == cid for e in lines), lines
        stats = [e for e in lines if e["type"] == "stats"]
        assert stats and stats[0]["data"]["memory"]["usage"]["limit"] == 24 * MB
    finally:
        events.kill()
        events.wait()
    oom = read(hierarchy("memory") + "%s/%s/memory.oom_control" % (parent, cid))
    assert int(dict(line.split() for line in oom.splitlines())["oom_kill"]) >= 1
    assert runtime.state(cid)["status"] == "running"  # only the hog died
    ev = json.loads(runtime("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    runtime("delete", "--force", cid)


def test_pids_limit_stops_fork_bomb(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {"pids": {"limit": 8}},
              "sh", "-c", "for i in $(seq 30); do sleep 2 >/dev/null 2>&1 & done; echo spawned all")
    p = runtime("run", "-b", bundle.path, cid, stdin=subprocess.DEVNULL, check=False)
    assert "spawned all" not in p.stdout and "fork" in p.stderr


def test_device_not_allowed_cannot_be_opened(bundle, runtime, parent):
    # a node for c 240:0 (a local-use major no driver claims): the devices
    # cgroup refuses the open (EPERM) before the kernel looks for a driver
    # (ENXIO) -- so the error tells which of the two stopped it
    node = os.path.join(bundle.rootfs, "testdev")
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(240, 0))
    script = "cat /testdev"
    cid = runtime.new_id()
    configure(bundle, parent, cid, {}, "sh", "-c", script)
    p = runtime("run", "-b", bundle.path, cid, stdin=subprocess.DEVNULL, check=False)
    assert "Operation not permitted" in p.stderr, p.stderr
    cid2 = runtime.new_id()
    configure(bundle, parent, cid2, {"devices": [{"allow": False, "access": "rwm"},
                                                 {"allow": True, "type": "c", "major": 240, "minor": 0,
                                                  "access": "r"}]}, "sh", "-c", script)
    p = runtime("run", "-b", bundle.path, cid2, stdin=subprocess.DEVNULL, check=False)
    assert "No such device or address" in p.stderr, p.stderr



def test_devices_default_deny_without_a_deny_all_rule(bundle, runtime, parent):
    """Device access is deny-by-default even when linux.resources.devices
    has no {"allow": false} rule of its own (runc's emulator starts from
    deny-all): a node the allow-list does not name cannot be opened (EPERM
    from the devices cgroup, not ENXIO from the missing driver).  Seen to
    pass with DeviceState's default_allow=False made True."""
    os.mknod(os.path.join(bundle.rootfs, "testdev"), 0o666 | stat.S_IFCHR, os.makedev(240, 0))
    cid = runtime.new_id()
    configure(bundle, parent, cid, {}, "sh", "-c", "cat /testdev")
    bundle.update(lambda c: c["linux"]["resources"].pop("devices", None))
    p = runtime("run", "-b", bundle.path, cid, stdin=subprocess.DEVNULL, check=False)
    assert "Operation not permitted" in p.stderr, p.stderr

def counter_size(outdir):
    path = os.path.join(outdir, "count")
    return os.path.getsize(path) if os.path.exists(path) else 0


def bind_out(bundle, outdir):
    os.makedirs(os.path.join(bundle.rootfs, "out"), exist_ok=True)
    bundle.update(lambda cfg: cfg["mounts"].append(
        {"destination": "/out", "type": "bind", "source": outdir, "options": ["rbind", "rw"]}))


def test_pause_resume_and_delete_force_paused(bundle, runtime, parent, tmp_path):
    cid = runtime.new_id()
    out = str(tmp_path / "out")
    os.mkdir(out)
    configure(bundle, parent, cid, {}, "sh", "-c", "while :; do echo x >> /out/count; done")
    bind_out(bundle, out)
    run_detached(runtime, bundle, cid)
    for _ in range(100):
        if counter_size(out):
            break
        time.sleep(0.02)
    runtime("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    assert read(hierarchy("freezer") + "%s/%s/freezer.state" % (parent, cid)) == "FROZEN"
    a = counter_size(out)
    time.sleep(0.4)
    assert counter_size(out) == a
    runtime("resume", cid)
    assert runtime.state(cid)["status"] == "running"
    time.sleep(0.3)
    assert counter_size(out) > a
    runtime("pause", cid)
    runtime("delete", "--force", cid)
    assert leftovers(parent) == []


def test_kill_all_leaves_none(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {}, "sh", "-c", "sleep 100 & sleep 100 & (sleep 100 &); wait")
    run_detached(runtime, bundle, cid)
    procs = hierarchy("devices") + "%s/%s/cgroup.procs" % (parent, cid)
    for _ in range(100):
        if len(read(procs).split()) >= 4:
            break
        time.sleep(0.02)
    assert len(read(procs).split()) == 4
    runtime("kill", "--all", cid, "KILL")
    for _ in range(200):
        if not read(procs):
            break
        time.sleep(0.02)
    assert read(procs) == ""
    wait_status(runtime, cid, "stopped")
    runtime("delete", cid)


@pytest.mark.skipif(verb_missing("update"), reason="pyrunc update verb not implemented yet (pyrunc/update.py missing)")
def test_update_changes_limit_inside(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {"memory": {"limit": 64 * MB}, "pids": {"limit": 20}}, "sleep", "60")
    run_detached(runtime, bundle, cid)
    runtime("update", "--memory", "32m", "--pids-limit", "12", cid)
    out = runtime("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max")
    assert out.stdout.split() == [str(32 * MB), "12"]
    runtime("update", "--resources", "-", cid, input=json.dumps({"cpu": {"shares": 128}}))
    assert read(hierarchy("cpu") + "%s/%s/cpu.shares" % (parent, cid)) == "128"
    assert read(hierarchy("memory") + "%s/%s/memory.limit_in_bytes" % (parent, cid)) == str(32 * MB)
    runtime("delete", "--force", cid)


@pytest.mark.skipif(verb_missing("ps"), reason="pyrunc ps verb not implemented yet (pyrunc/ps.py missing)")
def test_ps_lists_container_processes(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {}, "sh", "-c", "sleep 100 & sleep 100")
    run_detached(runtime, bundle, cid)
    procs = hierarchy("devices") + "%s/%s/cgroup.procs" % (parent, cid)
    for _ in range(100):
        if len(read(procs).split()) >= 2:
            break
        time.sleep(0.02)
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert sorted(pids) == sorted(int(p) for p in read(procs).split())
    table = runtime("ps", cid).stdout
    assert "PID" in table.splitlines()[0] and "sleep" in table
    runtime("delete", "--force", cid)


@pytest.mark.skipif(verb_missing("events"), reason="pyrunc events verb not implemented yet (pyrunc/events.py missing)")
def test_events_stats_shape(bundle, runtime, parent):
    cid = runtime.new_id()
    configure(bundle, parent, cid, {"memory": {"limit": 64 * MB}, "pids": {"limit": 20}}, "sleep", "60")
    run_detached(runtime, bundle, cid)
    ev = json.loads(runtime("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert data["pids"] == {"current": 1, "limit": 20}
    assert data["memory"]["usage"]["limit"] == 64 * MB
    assert set(data) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    runtime("delete", "--force", cid)
