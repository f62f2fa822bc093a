"""`pyrunc --systemd-cgroup` against a real systemd: the node container
(tests/engines/systemd_node.py, systemd as pid 1, run by pyrunc) and
containers that pyrunc runs inside it.  Every check reads the node's own
/sys/fs/cgroup, /proc and `systemctl`, not pyrunc's word.

This host has cgroup v1 (a hybrid unified mount): the node's systemd runs
in that mode, so the v1 property mapping is exercised here; the v2
mapping is covered by tests/unit/test_systemd_props.py.
"""
import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import PYRUNC, TEST_CGROUP_PARENT, is_root, make_rootfs

pytestmark = pytest.mark.integration

ROOT = "/run/pyrunc-sd"  # pyrunc's state root inside the node
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CG = "/sys/fs/cgroup"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    if not is_root():
        pytest.skip("the node container needs root")
    from engines.systemd_node import Node, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip("systemd node needs: apt-get install %s" % " ".join(missing))
    n = Node(tmp_path_factory.mktemp("sdnode"), PYRUNC, "%s/node-%s" % (TEST_CGROUP_PARENT, uuid.uuid4().hex[:8]),
             binds=[TESTS])
    try:
        n.start()
        yield n
    finally:
        if n.booted:
            # containers first: an init that ignores SIGTERM would hold up
            # systemd's halt for its stop timeout
            n.sh("for c in $(%s --root %s list -q); do %s --root %s delete --force $c; done"
                 % (PYRUNC, ROOT, PYRUNC, ROOT), timeout=120)
        n.stop()


def in_node(node, script, check=True, timeout=60):
    r = node.sh(script, timeout=timeout, check=check)
    return r.stdout.strip()


def pyrunc(node, args, check=True, stdio=""):
    """pyrunc --systemd-cgroup inside the node (container stdio to files:
    a pipe would stay open for the container's life)."""
    out = node.sh("%s --root %s --systemd-cgroup %s %s" % (PYRUNC, ROOT, args, stdio), timeout=90)
    if check and out.returncode != 0:
        raise AssertionError("pyrunc %s -> %d: %s%s" % (args, out.returncode, out.stdout, out.stderr))
    return out


def make_bundle(node, name, args, cgroups_path, resources=None, extra=None):
    """A busybox bundle in the node's /shared (made on the host side)."""
    host = os.path.join(node.shared, name)
    os.makedirs(os.path.join(host, "rootfs"))
    make_rootfs(os.path.join(host, "rootfs"))
    subprocess.run([PYRUNC, "spec", "--bundle", host], check=True)
    path = os.path.join(host, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    cfg["linux"]["cgroupsPath"] = cgroups_path
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]
    if resources is not None:
        cfg["linux"]["resources"] = resources
    if extra:
        extra(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return "/shared/" + name


def start(node, cid, bundle):
    log = "/shared/%s.log" % cid
    pyrunc(node, "create --bundle %s %s" % (bundle, cid),
           stdio="</dev/null >%s 2>&1 || { cat %s >&2; exit 1; }" % (log, log))
    pyrunc(node, "start %s" % cid)


def show(node, unit, *props):
    out = in_node(node, "systemctl show %s -p %s" % (unit, ",".join(props)))
    found = {}
    for line in out.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            found[key] = found[key] + "\n" + value if key in found else value  # DeviceAllow: one line each
    return found


def read(node, path):
    return in_node(node, "cat %s" % path)


def unit_gone(node, unit):
    """The unit is unknown to systemd (not just inactive) and no cgroup
    directory of it is left in any hierarchy."""
    state = show(node, unit, "LoadState", "ActiveState")
    dirs = in_node(node, "find %s -maxdepth 4 -type d -name '%s' 2>/dev/null; true" % (CG, unit))
    return state == {"LoadState": "not-found", "ActiveState": "inactive"} and dirs == "", (state, dirs)


RESOURCES = {
    "memory": {"limit": 64 << 20},
    "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"},
    "pids": {"limit": 42},
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
}


def test_scope_limits_update_pause_delete(node):
    cid = "sd-" + uuid.uuid4().hex[:8]
    unit = "pyrunc-%s.scope" % cid
    bundle = make_bundle(node, cid, ["sleep", "300"], "system.slice:pyrunc:%s" % cid, RESOURCES)
    start(node, cid, bundle)
    scope = "system.slice/" + unit
    pid = json.loads(pyrunc(node, "state %s" % cid).stdout)["pid"]

    # the init is in the scope in every hierarchy, seen from the node's /proc
    cgroups = in_node(node, "cat /proc/%d/cgroup" % pid)
    for ctrl in ("memory", "pids", "devices", "cpu", "freezer", "cpuset", "name=systemd"):
        line = [ln for ln in cgroups.splitlines() if ctrl in ln.split(":")[1].split(",")]
        assert line and line[0].endswith("/" + scope), (ctrl, cgroups)

    # systemd's view: a delegated transient scope with runc's properties
    props = show(node, unit, "ActiveState", "Delegate", "Transient", "Slice", "MemoryLimit",
                 "CPUShares", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "TasksMax", "DevicePolicy",
                 "DeviceAllow", "AllowedCPUs", "MemoryAccounting", "CPUAccounting", "TasksAccounting")
    assert props["ActiveState"] == "active" and props["Transient"] == "yes", props
    assert props["Delegate"] == "yes" and props["Slice"] == "system.slice", props
    assert props["MemoryLimit"] == str(64 << 20) and props["CPUShares"] == "512", props
    assert props["CPUQuotaPerSecUSec"] == "250ms" and props["TasksMax"] == "42", props
    assert props["DevicePolicy"] == "strict" and "/dev/char/1:3 rwm" in props["DeviceAllow"], props
    assert props["CPUQuotaPeriodUSec"] == "100ms" and props["AllowedCPUs"] == "0", props
    assert props["MemoryAccounting"] == props["CPUAccounting"] == props["TasksAccounting"] == "yes", props

    # the kernel's view: the files (systemd's and those written directly)
    assert read(node, "%s/memory/%s/memory.limit_in_bytes" % (CG, scope)) == str(64 << 20)
    assert read(node, "%s/cpu/%s/cpu.shares" % (CG, scope)) == "512"
    assert read(node, "%s/cpu/%s/cpu.cfs_quota_us" % (CG, scope)) == "25000"
    assert read(node, "%s/pids/%s/pids.max" % (CG, scope)) == "42"
    assert read(node, "%s/cpuset/%s/cpuset.cpus" % (CG, scope)) == "0"
    devices = read(node, "%s/devices/%s/devices.list" % (CG, scope)).splitlines()
    assert "c 1:3 rwm" in devices and "a *:* rwm" not in devices, devices

    # update: the unit property and the file
    pyrunc(node, "update --memory %d --pids-limit 77 --cpu-share 256 %s" % (96 << 20, cid))
    props = show(node, unit, "MemoryLimit", "TasksMax", "CPUShares")
    assert props == {"MemoryLimit": str(96 << 20), "TasksMax": "77", "CPUShares": "256"}, props
    assert read(node, "%s/memory/%s/memory.limit_in_bytes" % (CG, scope)) == str(96 << 20)
    assert read(node, "%s/pids/%s/pids.max" % (CG, scope)) == "77"
    # systemd rewrote the device rules meanwhile (frozen around it): the
    # container runs on and its allowed devices still work
    assert read(node, "%s/freezer/%s/freezer.state" % (CG, scope)) == "THAWED"
    assert json.loads(pyrunc(node, "state %s" % cid).stdout)["status"] == "running"
    assert pyrunc(node, "exec %s sh -c 'echo x >/dev/null && echo fine'" % cid,
                  stdio="</dev/null").stdout.strip() == "fine"

    # pause / resume through the freezer directory pyrunc made
    pyrunc(node, "pause %s" % cid)
    assert read(node, "%s/freezer/%s/freezer.state" % (CG, scope)) == "FROZEN"
    assert json.loads(pyrunc(node, "state %s" % cid).stdout)["status"] == "paused"
    pyrunc(node, "resume %s" % cid)
    assert read(node, "%s/freezer/%s/freezer.state" % (CG, scope)) == "THAWED"

    # ps and events --stats read the scope
    pyrunc(node, "exec -d %s sleep 301" % cid, stdio="</dev/null >/dev/null 2>&1")
    pids = json.loads(pyrunc(node, "ps --format json %s" % cid).stdout)
    assert pid in pids and len(pids) == 2, pids
    stats = json.loads(pyrunc(node, "events --stats %s" % cid).stdout)
    assert stats["data"]["pids"]["current"] == 2, stats["data"]["pids"]
    assert stats["data"]["memory"]["usage"]["limit"] == 96 << 20, stats["data"]["memory"]["usage"]

    # kill --all reaches the exec'd process too
    pyrunc(node, "kill --all %s 9" % cid)
    in_node(node, "for i in $(seq 100); do [ -s %s/pids/%s/cgroup.procs ] || exit 0; sleep 0.05; done; exit 1"
            % (CG, scope))
    pyrunc(node, "delete %s" % cid)
    gone, why = unit_gone(node, unit)
    assert gone, why


def test_existing_unit_is_joined_never_stopped(node):
    """A cgroupsPath naming a unit that already runs (a host's scope with
    its processes): create joins it, as runc does, but delete and
    delete --force leave that unit and its processes alone (runc 1.1.5
    stops it, killing them)."""
    tag = uuid.uuid4().hex[:8]
    unit = "host-%s.scope" % tag
    in_node(node, "setsid -f systemd-run --quiet --scope --unit=%s sleep 1013 </dev/null >/dev/null 2>&1; "
            "for i in $(seq 100); do systemctl is-active -q %s && break; sleep 0.05; done" % (unit, unit))
    procs = "%s/systemd/system.slice/%s/cgroup.procs" % (CG, unit)
    host_pid = int(in_node(node, "for i in $(seq 100); do [ -s %s ] && break; sleep 0.05; done; cat %s"
                           % (procs, procs)).split()[0])
    assert in_node(node, "systemctl is-active %s" % unit, check=False) == "active"
    try:
        for verb in ("delete --force", "delete"):
            cid = "sd-" + uuid.uuid4().hex[:8]
            bundle = make_bundle(node, cid, ["sleep", "300"] if "force" in verb else ["true"],
                                 "system.slice:host:%s" % tag)
            start(node, cid, bundle)
            if verb == "delete":
                in_node(node, "for i in $(seq 100); do %s --root %s state %s | grep -q stopped && break; "
                        "sleep 0.05; done" % (PYRUNC, ROOT, cid))
            pyrunc(node, "%s %s" % (verb, cid))
            assert in_node(node, "systemctl is-active %s" % unit, check=False) == "active", verb
            assert in_node(node, "kill -0 %d && echo alive" % host_pid, check=False) == "alive", verb
            assert in_node(node, "ls %s" % ROOT, check=False) == ""
    finally:
        in_node(node, "systemctl stop %s" % unit, check=False)


def test_node_makes_no_hierarchy_on_the_host(node):
    """The node's systemd mounts no v1 controller the host lacks (those would
    be new global hierarchies, left behind with the node's cgroups in them)."""
    from engines.systemd_node import unmounted_controllers

    with open("/proc/self/cgroup") as f:
        hierarchies = {c for line in f for c in line.split(":")[1].split(",") if c}
    assert not hierarchies & set(unmounted_controllers()), hierarchies


def test_default_cgroups_path_is_runc_scope_in_system_slice(node):
    cid = "sd-" + uuid.uuid4().hex[:8]
    bundle = make_bundle(node, cid, ["sleep", "300"], "")
    start(node, cid, bundle)
    unit = "runc-%s.scope" % cid
    pid = json.loads(pyrunc(node, "state %s" % cid).stdout)["pid"]
    assert "1:name=systemd:/system.slice/%s" % unit in in_node(node, "cat /proc/%d/cgroup" % pid).replace(
        "9:name", "1:name")
    assert show(node, unit, "ActiveState")["ActiveState"] == "active"
    pyrunc(node, "delete --force %s" % cid)
    gone, why = unit_gone(node, unit)
    assert gone, why


def test_own_slice_expands(node):
    cid = "sd-" + uuid.uuid4().hex[:8]
    bundle = make_bundle(node, cid, ["sleep", "300"], "pyrunc-test.slice:cri:%s" % cid,
                         {"memory": {"limit": 32 << 20}})
    start(node, cid, bundle)
    scope = "pyrunc.slice/pyrunc-test.slice/cri-%s.scope" % cid
    assert read(node, "%s/memory/%s/memory.limit_in_bytes" % (CG, scope)) == str(32 << 20)
    pyrunc(node, "delete --force %s" % cid)
    gone, why = unit_gone(node, "cri-%s.scope" % cid)
    assert gone, why


def test_annotation_properties_reach_the_unit(node):
    """org.systemd.property.* annotations become unit properties (runc's
    behaviour): a ...Sec name is sent as ...USec in microseconds."""
    cid = "sd-" + uuid.uuid4().hex[:8]
    unit = "pyrunc-%s.scope" % cid

    def annotate(cfg):
        cfg["annotations"] = {"org.systemd.property.TimeoutStopSec": "uint64 7",
                              "org.systemd.property.CollectMode": "'inactive-or-failed'"}

    start(node, cid, make_bundle(node, cid, ["sleep", "300"], "system.slice:pyrunc:%s" % cid, extra=annotate))
    props = show(node, unit, "TimeoutStopUSec", "CollectMode")
    assert props == {"TimeoutStopUSec": "7s", "CollectMode": "inactive-or-failed"}, props
    pyrunc(node, "delete --force %s" % cid)
    gone, why = unit_gone(node, unit)
    assert gone, why
    # a malformed one: one line naming the annotation, nothing made
    bad = make_bundle(node, cid + "b", ["true"], "system.slice:pyrunc:%sb" % cid,
                      extra=lambda c: c.update(annotations={"org.systemd.property.Bad-Name": "1"}))
    r = pyrunc(node, "create --bundle %s %sb" % (bad, cid), check=False, stdio="</dev/null")
    assert r.returncode != 0 and "annotations[org.systemd.property.Bad-Name]" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and in_node(node, "ls %s" % ROOT, check=False) == ""


def test_bad_cgroups_path_refused_nothing_left(node):
    cid = "sd-" + uuid.uuid4().hex[:8]
    bundle = make_bundle(node, cid, ["true"], "/not/systemd/style")
    r = pyrunc(node, "create --bundle %s %s" % (bundle, cid), check=False, stdio="</dev/null")
    assert r.returncode != 0 and "slice:prefix:name" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert in_node(node, "ls %s" % ROOT, check=False) == ""
    r = pyrunc(node, "create --bundle %s %s" % (
        make_bundle(node, cid + "b", ["true"], "bad-.slice:x:%s" % cid), cid), check=False, stdio="</dev/null")
    assert r.returncode != 0 and "invalid slice name" in r.stderr, r.stderr


def test_runtime_killed_half_way_then_delete_force(node):
    """SIGKILL to `pyrunc create` while the scope exists (a createRuntime
    hook holds it there): delete --force removes the unit and every dir."""
    cid = "sd-" + uuid.uuid4().hex[:8]
    unit = "pyrunc-%s.scope" % cid

    def hook(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "touch /shared/%s.hook; sleep 60" % cid]}]}

    bundle = make_bundle(node, cid, ["sleep", "300"], "system.slice:pyrunc:%s" % cid,
                         {"memory": {"limit": 48 << 20}}, extra=hook)
    active = in_node(node, "(%s --root %s --systemd-cgroup create --bundle %s %s </dev/null >/dev/null 2>&1 & "
                     "echo $! >/shared/%s.pid); for i in $(seq 200); do [ -e /shared/%s.hook ] && break; "
                     "sleep 0.05; done; systemctl is-active %s; kill -9 $(cat /shared/%s.pid)"
                     % (PYRUNC, ROOT, bundle, cid, cid, cid, unit, cid), check=False)
    assert active == "active"
    # what systemd does not manage stays after the runtime's death
    freezer = "%s/freezer/system.slice/%s" % (CG, unit)
    assert in_node(node, "test -d %s && echo left" % freezer, check=False) == "left"
    pyrunc(node, "delete --force %s" % cid)
    gone, why = unit_gone(node, unit)
    assert gone, why
    assert in_node(node, "ls %s" % ROOT, check=False) == ""


def test_features_reports_the_systemd_driver():
    out = subprocess.run([PYRUNC, "features"], capture_output=True, text=True, check=True).stdout
    cgroup = json.loads(out)["linux"]["cgroup"]
    assert cgroup["systemd"] is True and cgroup["systemdUser"] is False, cgroup


def test_without_systemd_refused_in_one_line(tmp_path):
    """This host's init is not systemd: --systemd-cgroup says so, no state left."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is this host's init: the refusal can't be seen here")
    if not is_root():
        pytest.skip("needs root")
    b = tmp_path / "b"
    os.makedirs(b / "rootfs")
    make_rootfs(str(b / "rootfs"))
    subprocess.run([PYRUNC, "spec", "--bundle", str(b)], check=True)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (b / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run([PYRUNC, "--root", str(tmp_path / "st"), "--systemd-cgroup", "create", "--bundle",
                        str(b), "x"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "systemd is not running" in r.stderr, r.stderr
    assert not os.listdir(tmp_path / "st") if os.path.exists(tmp_path / "st") else True


def test_cri_flow_with_systemd_cgroup_in_node(node):
    """The kubelet's CRI flow (engines/cri_flow.py) with SystemdCgroup = true:
    containerd inside the node, handlers runc and pyrunc, pods under a
    slice, containers in cri-containerd-<id>.scope units (checked there
    through the node's /sys/fs/cgroup and systemctl)."""
    import shutil

    for tool in ("containerd", "ctr", "runc"):
        if shutil.which(tool) is None:
            pytest.skip("%s not installed (apt-get install containerd runc)" % tool)
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("CRI client needs grpcio-tools: pip install '.[test]'")
    r = node.sh("cd %s && %s -m engines.cri_flow --systemd-cgroup --no-sandbox --base /tmp/cri-sd "
                "runc=%s pyrunc=%s" % (TESTS, sys.executable, shutil.which("runc"), PYRUNC), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all steps passed" in r.stdout
    assert in_node(node, "systemctl list-units --all --no-legend 'cri-containerd-*'") == ""


@pytest.fixture(scope="module")
def v2_node(tmp_path_factory):
    """The node with only the host's cgroup2 hierarchy: systemd in unified
    mode, pyrunc's systemd driver on its v2 path.  The hybrid host binds
    every controller to v1, so no limit can be set there: placement,
    properties, device policy, freezing, kill and removal are checked."""
    if not is_root():
        pytest.skip("the node container needs root")
    from engines.systemd_node import UNIFIED, Node, missing_tools

    if missing_tools():
        pytest.skip("systemd node needs: apt-get install %s" % " ".join(missing_tools()))
    if not os.path.exists(UNIFIED + "/cgroup.procs"):
        pytest.skip("no hybrid cgroup2 hierarchy at %s on this host" % UNIFIED)
    n = Node(tmp_path_factory.mktemp("sdnode2"), PYRUNC, "%s/node2-%s" % (TEST_CGROUP_PARENT, uuid.uuid4().hex[:8]),
             unified=True)
    try:
        n.start()
        yield n
    finally:
        if n.booted:
            n.sh("for c in $(%s --root %s list -q); do %s --root %s delete --force $c; done"
                 % (PYRUNC, ROOT, PYRUNC, ROOT), timeout=120)
        n.stop()


def test_v2_scope_freeze_kill_delete(v2_node):
    node = v2_node
    assert in_node(node, "stat -f -c %T /sys/fs/cgroup") == "cgroup2fs"
    cid = "sd2-" + uuid.uuid4().hex[:8]
    unit = "pyrunc-%s.scope" % cid
    bundle = make_bundle(node, cid, ["sleep", "300"], "system.slice:pyrunc:%s" % cid)
    start(node, cid, bundle)
    scope = "%s/system.slice/%s" % (CG, unit)
    pid = json.loads(pyrunc(node, "state %s" % cid).stdout)["pid"]
    # (the v1 lines are the hybrid host's, which this node does not manage)
    assert "0::/system.slice/" + unit in in_node(node, "cat /proc/%d/cgroup" % pid).splitlines()
    props = show(node, unit, "ActiveState", "Delegate", "DevicePolicy", "IOAccounting", "TasksAccounting")
    assert props == {"ActiveState": "active", "Delegate": "yes", "DevicePolicy": "strict",
                     "IOAccounting": "yes", "TasksAccounting": "yes"}, props

    pyrunc(node, "pause %s" % cid)
    assert "frozen 1" in read(node, scope + "/cgroup.events")
    pyrunc(node, "resume %s" % cid)
    assert "frozen 0" in read(node, scope + "/cgroup.events")

    pyrunc(node, "exec -d %s sleep 301" % cid, stdio="</dev/null >/dev/null 2>&1")
    assert len(json.loads(pyrunc(node, "ps --format json %s" % cid).stdout)) == 2
    pyrunc(node, "kill --all %s 9" % cid)
    in_node(node, "for i in $(seq 100); do [ -s %s/cgroup.procs ] || exit 0; sleep 0.05; done; exit 1" % scope)
    pyrunc(node, "delete %s" % cid)
    gone, why = unit_gone(node, unit)
    assert gone, why
