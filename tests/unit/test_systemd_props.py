"""The systemd driver's pure parts: cgroupsPath parsing, slice expansion,
runc's resource -> unit property mapping (v1 and v2), and the D-Bus wire
format (round trips, and calls to a real dbus-daemon when installed)."""
import os
import shutil
import subprocess
import time

import pytest

from pyrunc.cgroups import dbus
from pyrunc.cgroups import systemd as sd
from pyrunc.cgroups.resources import Resources
from pyrunc.errors import ConfigError


def test_cgroups_path_parsing_and_defaults():
    assert sd.parse_cgroups_path("system.slice:docker:1234", "x") == ("system.slice", "docker", "1234")
    assert sd.parse_cgroups_path("", "cid") == ("", "runc", "cid")
    for bad in ("/a/b", "a:b", "a:b:c:d"):
        with pytest.raises(ConfigError, match="slice:prefix:name"):
            sd.parse_cgroups_path(bad, "x")
    assert sd.unit_name("cri-containerd", "abc") == "cri-containerd-abc.scope"
    assert sd.unit_name("x", "pod.slice") == "pod.slice"


def test_expand_slice():
    assert sd.expand_slice("system.slice") == "/system.slice"
    assert sd.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert sd.expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", ".slice", "a/b.slice", "noslice"):
        with pytest.raises(ConfigError, match="invalid slice name"):
            sd.expand_slice(bad)


def props(doc, version, sd_version=252):
    return dict(sd.resource_props(Resources.from_dict(doc), version, sd_version, lambda m: None))


def test_v1_properties_as_runc():
    p = props({"memory": {"limit": 1 << 20}, "cpu": {"shares": 512, "quota": 33333, "period": 100000,
                                                     "cpus": "0-2,4", "mems": "0"},
               "pids": {"limit": -1}, "blockIO": {"weight": 300}}, 1)
    assert p["MemoryLimit"] == ("t", 1 << 20)
    assert p["CPUShares"] == ("t", 512)
    assert p["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert p["CPUQuotaPerSecUSec"] == ("t", 340000)  # 333330 rounded up to 10 ms
    assert p["TasksMax"] == ("t", (1 << 64) - 1)  # -1: infinity
    assert p["BlockIOWeight"] == ("t", 300)
    assert p["AllowedCPUs"] == ("ay", [0b10111])
    assert p["AllowedMemoryNodes"] == ("ay", [1])
    assert "MemoryMax" not in p and "CPUWeight" not in p


def test_v2_properties_as_runc():
    p = props({"memory": {"limit": 100, "reservation": 50, "swap": 300}, "cpu": {"shares": 1024},
               "pids": {"limit": 5}, "unified": {"memory.high": "max", "cpu.max": "max 50000",
                                                "io.weight": "200"}}, 2)
    assert p["MemoryMax"] == ("t", 100) and p["MemoryLow"] == ("t", 50)
    assert p["MemorySwapMax"] == ("t", 200)  # memory+swap 300 - memory 100
    assert p["CPUWeight"] == ("t", 100)  # shares 1024 -> the v2 default
    assert p["TasksMax"] == ("t", 5)
    assert p["MemoryHigh"] == ("t", (1 << 64) - 1)
    assert p["CPUQuotaPerSecUSec"] == ("t", (1 << 64) - 1) and p["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert "MemoryLimit" not in p and "io.weight" not in str(p)


def test_old_systemd_gets_no_period_or_cpuset():
    p = props({"cpu": {"quota": 50000, "period": 200000, "cpus": "1"}}, 1, sd_version=241)
    assert "CPUQuotaPeriodUSec" not in p and "AllowedCPUs" not in p
    assert p["CPUQuotaPerSecUSec"] == ("t", 250000)


def test_device_properties():
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "type": "c", "major": 136, "access": "rwm"},
             {"allow": True, "type": "b", "access": "m"}]
    devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n"
    got = sd.device_props(Resources.from_dict({"devices": rules}).devices, lambda m: None, devices)
    assert got[0] == ("DevicePolicy", ("s", "strict"))
    allow = got[-1][1][1]
    assert ("char-pts", "rwm") in allow and ("block-*", "m") in allow
    if os.path.exists("/sys/dev/char/1:3"):
        assert ("/dev/char/1:3", "rwm") in allow
    everything = sd.device_props(Resources.from_dict({"devices": [{"allow": True, "access": "rwm"}]}).devices,
                                 lambda m: None)
    assert everything == [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    warned = []
    deny_list = [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3,
                                                    "access": "rwm"}]
    got = sd.device_props(Resources.from_dict({"devices": deny_list}).devices, warned.append)
    assert got[0] == ("DevicePolicy", ("s", "strict")) and got[-1] == ("DeviceAllow", ("a(ss)", []))
    assert warned


def test_bad_ranges_name_the_field():
    with pytest.raises(ConfigError, match="linux.resources.cpu.cpus"):
        props({"cpu": {"cpus": "3-1"}}, 1)


def test_wire_format_round_trip():
    sig = "ssa(sv)a(sa(sv))"
    args = ["x.scope", "replace", [("Delegate", ("b", True)), ("PIDs", ("au", [1, 2])),
                                   ("AllowedCPUs", ("ay", b"\x05")), ("TasksMax", ("t", 7)),
                                   ("DeviceAllow", ("a(ss)", [("/dev/null", "rw")]))], []]
    raw = dbus.encode_message(dbus.CALL, 9, {1: "/o", 3: "M"}, sig, args)
    assert dbus.message_length(raw[:16]) == len(raw)
    mtype, serial, fields, got = dbus.decode_message(raw)
    assert (mtype, serial, fields[1], fields[3], fields[8]) == (dbus.CALL, 9, "/o", "M", sig)
    assert got[0:2] == ["x.scope", "replace"] and got[3] == []
    assert dict(got[2]) == {"Delegate": ("b", True), "PIDs": ("au", [1, 2]), "AllowedCPUs": ("ay", b"\x05"),
                            "TasksMax": ("t", 7), "DeviceAllow": ("a(ss)", [("/dev/null", "rw")])}
    assert dbus.split_signature("a{sv}(ii)s") == ["a{sv}", "(ii)", "s"]
    with pytest.raises(ValueError):
        dbus.split_signature("(ii")


@pytest.fixture
def private_bus(tmp_path):
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon not installed (apt-get install dbus)")
    sock = str(tmp_path / "bus")
    conf = tmp_path / "bus.conf"
    conf.write_text("<busconfig><type>custom</type><listen>unix:path=%s</listen><auth>EXTERNAL</auth>"
                    "<policy context='default'><allow send_destination='*' eavesdrop='true'/>"
                    "<allow own='*'/><allow user='*'/><allow receive_sender='*'/></policy></busconfig>" % sock)
    p = subprocess.Popen([daemon, "--config-file", str(conf), "--nofork", "--nopidfile"])
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        yield sock
    finally:
        p.kill()
        p.wait()


def test_calls_a_real_bus(private_bus):
    with dbus.Bus(private_bus, timeout=5) as bus:
        names = bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "ListNames")[0]
        assert "org.freedesktop.DBus" in names
        with pytest.raises(dbus.DBusError) as e:
            bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                     "GetNameOwner", "s", ["no.such.name"])
        assert e.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        # a signal we asked for arrives (NameOwnerChanged when a name is taken)
        bus.add_match("type='signal',member='NameOwnerChanged'")
        assert bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "RequestName", "su", ["org.pyrunc.Test", 0]) == [1]
        member, _path, args = bus.next_signal(5)
        while member != "NameOwnerChanged" or args[0] != "org.pyrunc.Test":
            member, _path, args = bus.next_signal(5)
        assert args[2]


def test_annotation_properties_as_runc():
    got = sd.annotation_props({
        "org.systemd.property.TimeoutStopSec": "uint64 7",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.CPUWeight": "@t 42",
        "org.systemd.property.After": "['a.service', 'b.service']",
        "org.systemd.property.IgnoreOnIsolate": "true",
        "other": "x",
    })
    assert got == [("After", ("as", ["a.service", "b.service"])),
                   ("CPUWeight", ("t", 42)),
                   ("CollectMode", ("s", "inactive-or-failed")),
                   ("IgnoreOnIsolate", ("b", True)),
                   ("TimeoutStopUSec", ("t", 7000000))]
    for bad in ({"org.systemd.property.Bad-Name": "1"}, {"org.systemd.property.Ab": "1"},
                {"org.systemd.property.TimeoutStopSec": "'x'"}, {"org.systemd.property.Foo": "nope"}):
        with pytest.raises(ConfigError, match=r"annotations\[org\.systemd\.property\."):
            sd.annotation_props(bad)


def test_cpu_range_is_bounded():
    """A huge cpuset range is one ConfigError, not minutes of bit-setting
    and a mask of hundreds of megabytes."""
    import time

    assert sd.range_to_bits("0-2,4", "f") == [0b10111]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="linux.resources.cpu.cpus"):
        sd.range_to_bits("0-4000000000", "linux.resources.cpu.cpus")
    assert time.monotonic() - started < 1
