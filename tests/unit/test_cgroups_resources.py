"""Resources parsing/merging, v1->v2 conversions, and what each manager
writes where, against cgroup-like directories in a temp dir."""
import io
import json
import os

import pytest

from pyrunc.cgroups import convert, load_manager
from pyrunc.cgroups.fs import CgroupError
from pyrunc.cgroups.resources import Resources
from pyrunc.cgroups.v1 import V1Manager
from pyrunc.cgroups.v2 import V2Manager
from pyrunc.errors import ConfigError

FULL = {
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    "memory": {"limit": 1 << 26, "reservation": 1 << 25, "swap": 1 << 27, "kernel": -1, "kernelTCP": 1 << 24,
               "swappiness": 10, "disableOOMKiller": True, "useHierarchy": True, "checkBeforeUpdate": False},
    "cpu": {"shares": 512, "quota": 50000, "burst": 1000, "period": 100000, "realtimeRuntime": 1000,
            "realtimePeriod": 100000, "cpus": "0", "mems": "0", "idle": 0},
    "pids": {"limit": 32},
    "blockIO": {"weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
}


def test_round_trip():
    r = Resources.from_dict(FULL)
    assert r.to_dict() == FULL
    assert r.memory.kernel_tcp == 1 << 24 and r.cpu.realtime_runtime == 1000
    assert r.block_io.throttle_write_iops_device[0].rate == 200
    assert json.loads(json.dumps(r.to_dict())) == FULL


@pytest.mark.parametrize("doc,field", [
    ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
    ({"cpu": {"cpus": 1}}, "linux.resources.cpu.cpus"),
    ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"blockIO": {"weightDevice": [{"major": "8"}]}}, "linux.resources.blockIO.weightDevice[0].major"),
    ({"unified": {"memory.high": 5}}, "linux.resources.unified"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller"),
])
def test_type_errors_name_the_field(doc, field):
    with pytest.raises(ConfigError) as e:
        Resources.from_dict(doc)
    assert str(e.value).startswith("config.json: " + field + ":")


def test_merge_is_runc_update():
    base = Resources.from_dict({"memory": {"limit": 100, "swap": 200}, "cpu": {"shares": 10},
                                "devices": [{"allow": False, "access": "rwm"}]})
    new = base.merge(Resources.from_dict({"memory": {"limit": 150}, "pids": {"limit": 5}}))
    assert new.to_dict() == {"memory": {"limit": 150, "swap": 200}, "cpu": {"shares": 10},
                             "pids": {"limit": 5}, "devices": [{"allow": False, "access": "rwm"}]}


# -- conversions -----------------------------------------------------------

@pytest.mark.parametrize("shares,weight", [(0, 0), (1, 1), (2, 1), (3, 2), (1024, 100),
                                           (262143, 10000), (262144, 10000), (262145, 10000)])
def test_cpu_shares_to_weight(shares, weight):
    assert convert.cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap,memory,expected", [
    (0, 0, None), (-1, 0, -1), (300, -1, 300), (-1, -1, -1), (None, -1, -1),
    (300, 200, 100), (200, 200, 0), (-1, 200, -1),
])
def test_memory_swap_to_v2(swap, memory, expected):
    assert convert.memory_swap_to_v2(swap, memory) == expected


@pytest.mark.parametrize("swap,memory,msg", [
    (300, 0, "without memory limit"), (100, 200, "should be >= memory"), (300, -5, "invalid memory"),
])
def test_memory_swap_to_v2_errors(swap, memory, msg):
    with pytest.raises(ValueError, match=msg):
        convert.memory_swap_to_v2(swap, memory)


# -- managers against fake cgroup directories ---------------------------------

V1_FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.swappiness",
               "memory.oom_control", "memory.use_hierarchy", "memory.usage_in_bytes"],
    "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.cfs_burst_us", "cpu.rt_runtime_us",
            "cpu.rt_period_us", "cpu.idle"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "pids": ["pids.max"],
    "blkio": ["blkio.weight", "blkio.leaf_weight", "blkio.weight_device", "blkio.leaf_weight_device",
              "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
              "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"],
    "hugetlb": ["hugetlb.2MB.limit_in_bytes"],
    "net_cls": ["net_cls.classid"],
    "net_prio": ["net_prio.ifpriomap"],
    "rdma": ["rdma.max"],
    "devices": ["devices.allow", "devices.deny", "devices.list"],
}


def fake_tree(base, files):
    for ctrl, names in files.items():
        d = os.path.join(base, ctrl, "c")
        os.makedirs(d)
        for n in names:
            open(os.path.join(d, n), "w").close()
    return {ctrl: os.path.join(base, ctrl, "c") for ctrl in files}


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


def test_v1_writes(tmp_path):
    paths = fake_tree(str(tmp_path), V1_FILES)
    with open(os.path.join(paths["devices"], "devices.list"), "w") as f:
        f.write("a *:* rwm\n")
    doc = dict(FULL)
    doc.pop("devices")
    m = V1Manager(paths, Resources.from_dict(doc))
    m._apply(m.resources)
    mem, cpu, blk = paths["memory"], paths["cpu"], paths["blkio"]
    assert read(mem, "memory.limit_in_bytes") == str(1 << 26)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(1 << 27)
    assert read(mem, "memory.soft_limit_in_bytes") == str(1 << 25)
    assert read(mem, "memory.kmem.tcp.limit_in_bytes") == str(1 << 24)
    assert read(mem, "memory.swappiness") == "10"
    assert read(mem, "memory.oom_control") == "1"
    assert read(cpu, "cpu.shares") == "512"
    assert read(cpu, "cpu.cfs_quota_us") == "50000" and read(cpu, "cpu.cfs_period_us") == "100000"
    assert read(cpu, "cpu.cfs_burst_us") == "1000" and read(cpu, "cpu.idle") == "0"
    assert read(cpu, "cpu.rt_runtime_us") == "1000" and read(cpu, "cpu.rt_period_us") == "100000"
    assert read(paths["cpuset"], "cpuset.cpus") == "0"
    assert read(paths["pids"], "pids.max") == "32"
    assert read(blk, "blkio.weight") == "500" and read(blk, "blkio.leaf_weight") == "300"
    assert read(blk, "blkio.weight_device") == "8:0 600"
    assert read(blk, "blkio.leaf_weight_device") == "8:0 200"
    assert read(blk, "blkio.throttle.write_iops_device") == "8:0 200"
    assert read(paths["hugetlb"], "hugetlb.2MB.limit_in_bytes") == str(1 << 21)
    assert read(paths["net_cls"], "net_cls.classid") == "1048577"
    assert read(paths["net_prio"], "net_prio.ifpriomap") == "eth0 5"
    assert read(paths["rdma"], "rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"


def test_v1_devices_from_allow_all(tmp_path):
    paths = fake_tree(str(tmp_path), {"devices": V1_FILES["devices"]})
    with open(os.path.join(paths["devices"], "devices.list"), "w") as f:
        f.write("a *:* rwm\n")
    V1Manager(paths)._apply(Resources.from_dict({"devices": FULL["devices"]}))
    assert read(paths["devices"], "devices.deny") == "a"
    assert read(paths["devices"], "devices.allow") == "c 1:3 rwm"


def test_v1_missing_controller_names_field(tmp_path):
    paths = fake_tree(str(tmp_path), {"memory": V1_FILES["memory"]})
    m = V1Manager(paths)
    with pytest.raises(CgroupError, match=r"^linux.resources.network.classID: the net_cls cgroup controller is not mounted"):
        m._apply(Resources.from_dict({"network": {"classID": 1}}))
    with pytest.raises(CgroupError, match=r"^linux.resources.unified.memory.high: invalid configuration: cgroup v1 host"):
        m._apply(Resources.from_dict({"unified": {"memory.high": "1"}}))


def test_v1_write_error_is_one_line(tmp_path):
    paths = fake_tree(str(tmp_path), {"pids": []})  # pids.max missing
    with pytest.raises(CgroupError) as e:
        V1Manager(paths)._apply(Resources.from_dict({"pids": {"limit": 3}}))
    assert str(e.value) == "linux.resources.pids.limit: open %s/pids.max: No such file or directory" % paths["pids"]


def test_v1_swappiness_range(tmp_path):
    paths = fake_tree(str(tmp_path), {"memory": V1_FILES["memory"]})
    with pytest.raises(CgroupError, match="memory.swappiness: invalid value 101"):
        V1Manager(paths)._apply(Resources.from_dict({"memory": {"swappiness": 101}}))


V2_FILES = ["cgroup.controllers", "cgroup.subtree_control", "pids.max", "memory.max", "memory.swap.max",
            "memory.low", "memory.current", "io.weight", "io.max", "cpu.weight", "cpu.max", "cpu.max.burst",
            "cpu.idle", "cpuset.cpus", "cpuset.mems", "hugetlb.2MB.max", "rdma.max", "memory.high"]


def v2_manager(tmp_path, res):
    d = tmp_path / "c"
    d.mkdir()
    for n in V2_FILES:
        (d / n).write_text("")
    return V2Manager(str(d), Resources.from_dict(res), root=str(tmp_path)), str(d)


def test_v2_conversions(tmp_path):
    doc = {k: v for k, v in FULL.items() if k not in ("devices", "network")}
    doc["cpu"] = {k: v for k, v in doc["cpu"].items() if not k.startswith("realtime")}
    doc["unified"] = {"memory.high": "12345"}
    m, d = v2_manager(tmp_path, doc)
    m._apply(m.resources)
    assert read(d, "pids.max") == "32"
    assert read(d, "memory.max") == str(1 << 26)
    assert read(d, "memory.swap.max") == str((1 << 27) - (1 << 26))  # swap alone
    assert read(d, "memory.low") == str(1 << 25)
    assert read(d, "cpu.weight") == "59"  # shares 512
    assert read(d, "cpu.max") == "50000 100000"
    assert read(d, "cpu.max.burst") == "1000"
    assert read(d, "io.weight") == "4950"  # blkio 500 (no BFQ)
    assert read(d, "io.max") == "8:0 wiops=200"  # the last of the four lines written
    assert read(d, "hugetlb.2MB.max") == str(1 << 21)
    assert read(d, "memory.high") == "12345"


def test_v2_quota_without_period_and_unlimited(tmp_path):
    m, d = v2_manager(tmp_path, {"cpu": {"quota": -1}, "memory": {"limit": -1}})
    m._apply(m.resources)
    assert read(d, "cpu.max") == "max 100000"
    assert read(d, "memory.swap.max") == "max"


def test_v2_refuses_v1_only_fields(tmp_path):
    m, _ = v2_manager(tmp_path, {})
    with pytest.raises(CgroupError, match="^linux.resources.network: net_cls/net_prio do not exist on cgroup v2"):
        m._apply(Resources.from_dict({"network": {"classID": 3}}))
    with pytest.raises(CgroupError, match="^linux.resources.memory.swap: unable to set swap limit without memory limit"):
        m._apply(Resources.from_dict({"memory": {"swap": 100}}))
    with pytest.raises(CgroupError, match="^linux.resources.unified.foo.bar: controller foo is not available"):
        m._apply(Resources.from_dict({"unified": {"foo.bar": "1"}}))


def test_check_before_update(tmp_path):
    m, d = v2_manager(tmp_path, {})
    with open(os.path.join(d, "memory.current"), "w") as f:
        f.write("5000\n")
    with pytest.raises(CgroupError, match="rejecting memory limit 4000 <= usage 5000"):
        m._apply(Resources.from_dict({"memory": {"limit": 4000, "checkBeforeUpdate": True}}))
    m._apply(Resources.from_dict({"memory": {"limit": 4000}}))  # without the check it is written
    assert read(d, "memory.max") == "4000"


def test_state_round_trip(tmp_path):
    m = V1Manager({"memory": "/sys/fs/cgroup/memory/x"}, Resources.from_dict(FULL), created=["/a"])
    again = load_manager(json.loads(json.dumps(m.to_dict())))
    assert isinstance(again, V1Manager) and again.paths == m.paths and again.created == ["/a"]
    assert again.resources == m.resources
    m2, _ = v2_manager(tmp_path, {"pids": {"limit": 1}})
    again2 = load_manager(json.loads(json.dumps(m2.to_dict())))
    assert isinstance(again2, V2Manager) and again2.path == m2.path and again2.root == str(tmp_path)


def test_systemd_driver_error():
    from pyrunc.cgroups import manager_for, systemd_running
    from pyrunc.errors import NotSupported
    if systemd_running():
        pytest.skip("systemd is running on this host: the 'not running' message does not apply")
    with pytest.raises(NotSupported, match="^systemd cgroup driver requested but systemd is not running$"):
        manager_for("/x", "id", None, systemd=True)


# -- update ------------------------------------------------------------------

from pyrunc.cgroups.update import merge_update, update_resources  # noqa: E402
from pyrunc.cli_requests import parse_ram, resources_from_flags  # noqa: E402


@pytest.mark.parametrize("text,value", [("100", 100), ("512m", 512 << 20), ("1.5g", 3 << 29), ("64KiB", 64 << 10),
                                        ("2MB", 2 << 20), ("-1", -1), ("1T", 1 << 40)])
def test_parse_ram(text, value):
    assert parse_ram(text, "--memory") == value


@pytest.mark.parametrize("text", ["", "m", "-5", "1x", "1..5m", "abc"])
def test_parse_ram_errors(text):
    with pytest.raises(ConfigError, match="invalid value for --memory"):
        parse_ram(text, "--memory")


def test_update_from_flags():
    r = update_resources(resources_from_flags({"memory": "64m", "cpu_share": "512", "cpu_quota": "-1",
                                               "pids_limit": "20", "cpuset_cpus": "0", "blkio_weight": "0",
                                               "memory_swap": None}))
    assert r.to_dict() == {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512, "quota": -1, "cpus": "0"},
                           "pids": {"limit": 20}}
    with pytest.raises(ConfigError, match="invalid value for --cpu-share"):
        resources_from_flags({"cpu_share": "-3"})


def test_update_from_document_ignores_devices_and_flags():
    import types

    from pyrunc.cli_requests import update_document

    doc = update_document(types.SimpleNamespace(resources="-", pids_limit="3"), io.StringIO(
        '{"memory": {"limit": -1}, "devices": [{"allow": true, "access": "rwm"}]}'))
    r = update_resources(doc)
    assert r.to_dict() == {"memory": {"limit": -1, "swap": 0}}  # unlimited memory: swap follows


def test_merge_update_upserts_device_lists():
    cur = Resources.from_dict({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1},
                                                                     {"major": 8, "minor": 16, "rate": 2}]},
                               "memory": {"limit": 100}})
    upd = update_resources({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 16, "rate": 5},
                                                                  {"major": 9, "minor": 0, "rate": 6}]}})
    merged = merge_update(cur, upd)
    assert merged.to_dict()["blockIO"]["throttleReadBpsDevice"] == [
        {"major": 8, "minor": 0, "rate": 1}, {"major": 8, "minor": 16, "rate": 5}, {"major": 9, "minor": 0, "rate": 6}]
    assert merged.memory.limit == 100


def test_merge_update_replaces_unified():
    """runc's update sets linux.resources.unified to the update's own map
    (none when it has none): an earlier map is never written again over
    a later update's values."""
    cur = Resources.from_dict({"unified": {"hugetlb.2MB.max": "16777216"}, "pids": {"limit": 5}})
    merged = merge_update(cur, update_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}))
    assert not merged.unified and merged.pids.limit == 5
    # and the manager's own merge in set() does not bring it back
    assert not cur.merge(merged).unified
    merged = merge_update(cur, update_resources({"unified": {"cpu.weight": "50"}}))
    assert merged.unified == {"cpu.weight": "50"}


def test_with_default_devices():
    from pyrunc.cgroups import with_default_devices
    r = with_default_devices(Resources.from_dict({"devices": [{"allow": False, "access": "rwm"}],
                                                  "pids": {"limit": 3}}), [{"path": "/dev/null"}])
    assert r.pids.limit == 3 and len(r.devices) == 1 + 10
    assert r.to_dict()["devices"][1] == {"allow": True, "type": "c", "access": "m"}
    assert len(with_default_devices(None).devices) == 11
