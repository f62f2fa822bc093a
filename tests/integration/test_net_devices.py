"""linux.netDevices with real interfaces.

The host's network namespace is never touched: each test makes its own
namespace with a dummy interface in it and runs pyrunc inside that
namespace (nsenter --net: only the network namespace changes, so /sys and
the cgroup mounts stay as they are), so the "runtime's namespace" is the
test's.  Containers are deleted from inside it too (the `runtime`
fixture's cleanup would run outside), and the namespace is removed at the
end whatever happens."""
import os
import subprocess
import tempfile
import uuid

import pytest

from conftest import needs_root

pytestmark = needs_root

MAC = "02:00:5e:10:20:30"
MAC2 = "02:00:5e:10:20:31"


@pytest.fixture
def netns():
    name = "pyrunc-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def add_dummy(ns, ifname, mac=MAC):
    """A dummy interface; where the kernel has no dummy driver, one end of
    a veth pair (its peer stays in the test namespace)."""
    p = subprocess.run(["ip", "-n", ns, "link", "add", ifname, "address", mac, "type", "dummy"],
                       capture_output=True)
    if p.returncode != 0:
        subprocess.run(["ip", "-n", ns, "link", "add", ifname, "address", mac, "type", "veth",
                        "peer", "name", ifname + "p"], check=True)


def link_in(ns, ifname):
    """(exit status, output) of `ip link show` for ifname in the test namespace."""
    p = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", ifname],
                       capture_output=True, text=True)
    return p.returncode, p.stdout


def pyrunc_in(ns, runtime, *args, timeout=60):
    """pyrunc inside the test namespace; output through files (a created
    container keeps the caller's stdio)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(["nsenter", "--net=/run/netns/%s" % ns] + runtime.cmd(*args),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout)
        out.seek(0)
        err.seek(0)
        p.stdout = out.read().decode(errors="replace")
        p.stderr = err.read().decode(errors="replace")
    return p


def new_dev():
    return "pyt" + uuid.uuid4().hex[:8]


def test_moved_in_renamed_up_with_its_addresses(bundle, runtime, netns):
    """The spec: moved and renamed, its permanent global addresses kept (an
    IPv4 and an IPv6 one here, both inside the test's namespace), set up;
    and not managed on delete: the namespace's owner (here: the kernel, as
    the namespace dies with the init) decides what becomes of it."""
    dev = new_dev()
    add_dummy(netns, dev)
    for addr in ("10.251.7.2/24", "fd00:251:7::2/64"):
        subprocess.run(["ip", "-n", netns, "addr", "add", addr, "dev", dev, "nodad"]
                       if ":" in addr else ["ip", "-n", netns, "addr", "add", addr, "dev", dev], check=True)
    bundle.update(lambda c: c["linux"].update(netDevices={dev: {"name": "ctr0"}}))
    bundle.set_args("sleep", "1000")
    cid = "t" + uuid.uuid4().hex[:12]  # not runtime.new_id(): its cleanup runs outside netns
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 0, p.stderr
        assert pyrunc_in(netns, runtime, "start", cid).returncode == 0
        # Inside: the device is there under its new name, same MAC, up, addresses kept.
        p = pyrunc_in(netns, runtime, "exec", cid, "cat", "/sys/class/net/ctr0/address", "/sys/class/net/ctr0/flags")
        assert p.returncode == 0, p.stderr
        mac, flags = p.stdout.split()
        assert mac == MAC and int(flags, 16) & 0x1, p.stdout  # IFF_UP
        p = pyrunc_in(netns, runtime, "exec", cid, "ip", "addr", "show", "dev", "ctr0")
        assert "10.251.7.2/24" in p.stdout and "fd00:251:7::2/64" in p.stdout, p.stdout
        p = pyrunc_in(netns, runtime, "exec", cid, "ls", "/sys/class/net")
        assert dev not in p.stdout.split()
        # Outside: gone from the runtime's namespace.
        assert link_in(netns, dev)[0] != 0
        assert link_in(netns, "ctr0")[0] != 0
        p = pyrunc_in(netns, runtime, "delete", "--force", cid)
        assert p.returncode == 0, p.stderr
        # Not moved back: a virtual device dies with the container's namespace.
        assert link_in(netns, dev)[0] != 0
        assert not os.path.exists(os.path.join(runtime.root, cid))
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_missing_interface_fails_and_undoes(bundle, runtime, netns):
    dev = new_dev()
    add_dummy(netns, dev)
    # The first device moves, the second is missing: create fails with one
    # line naming the field, the first is given back, nothing is left.
    bundle.update(lambda c: c["linux"].update(netDevices={dev: {"name": "ctr1"}, "nosuch9": {}}))
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 1, (p.stdout, p.stderr)
        lines = p.stderr.strip().replace('\\"', '"').splitlines()  # logfmt escapes quotes
        assert len(lines) == 1, p.stderr
        assert 'linux.netDevices["nosuch9"]: no such network interface in the runtime\'s namespace' in lines[0]
        assert not os.path.exists(os.path.join(runtime.root, cid))
        rc, out = link_in(netns, dev)
        assert rc == 0 and MAC in out, out
        assert link_in(netns, "ctr1")[0] != 0
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_refused_without_a_network_namespace(bundle, runtime, netns):
    dev = new_dev()
    add_dummy(netns, dev)

    def cfg(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["netDevices"] = {dev: {}}
    bundle.update(cfg)
    cid = "t" + uuid.uuid4().hex[:12]
    p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
    assert p.returncode == 1
    assert "linux.netDevices: unable to move network devices without a private network namespace" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert link_in(netns, dev)[0] == 0


def test_features_claims_net_devices(runtime):
    import json

    assert json.loads(runtime("features").stdout)["linux"]["netDevices"] == {"enabled": True}


def test_run_moves_into_a_new_namespace(bundle, runtime, netns):
    # `run` spawns the init directly (one fork): the device must get there too.
    dev = new_dev()
    add_dummy(netns, dev)
    bundle.update(lambda c: c["linux"].update(netDevices={dev: {"name": "ctr2"}}))
    bundle.set_args("cat", "/sys/class/net/ctr2/address")
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "run", "-b", bundle.path, cid)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == MAC
        # The namespace died with the init: a virtual device dies with it.
        assert link_in(netns, dev)[0] != 0
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_joined_namespace_keeps_the_device_after_delete(bundle, runtime, netns):
    ctr_ns = "pyrunc-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ctr_ns], check=True)
    try:
        dev = new_dev()
        add_dummy(netns, dev)

        def cfg(c):
            for n in c["linux"]["namespaces"]:
                if n["type"] == "network":
                    n["path"] = "/run/netns/" + ctr_ns
            c["linux"]["netDevices"] = {dev: {"name": "ctr3"}}
        bundle.update(cfg)
        bundle.set_args("cat", "/sys/class/net/ctr3/address")
        cid = "t" + uuid.uuid4().hex[:12]
        try:
            p = pyrunc_in(netns, runtime, "run", "-b", bundle.path, cid)
            assert p.returncode == 0, p.stderr
            assert p.stdout.strip() == MAC
            # The joined namespace outlives the container and keeps the
            # device: its owner manages it, not the runtime's delete.
            assert link_in(netns, dev)[0] != 0
            rc, out = link_in(ctr_ns, "ctr3")
            assert rc == 0 and MAC in out, out
        finally:
            pyrunc_in(netns, runtime, "delete", "--force", cid)
    finally:
        subprocess.run(["ip", "netns", "del", ctr_ns], check=False)


@pytest.mark.parametrize("devices, field", [
    ({"pytA": {"name": "x" * 16}}, 'linux.netDevices["pytA"].name'),
    ({"pyt/A": {}}, 'linux.netDevices["pyt/A"]'),
    ({"pytA": {"name": "ctr"}, "pytB": {"name": "ctr"}}, 'linux.netDevices["pytB"].name'),
    ({"pytA": {"name": "eth%s"}}, 'linux.netDevices["pytA"].name'),  # a template is one %d
    ({"pytA": {"name": "e%d%d"}}, 'linux.netDevices["pytA"].name'),
])
def test_bad_names_refused_before_anything(bundle, runtime, netns, devices, field):
    bundle.update(lambda c: c["linux"].update(netDevices=devices))
    cid = "t" + uuid.uuid4().hex[:12]
    p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
    assert p.returncode == 1
    lines = p.stderr.strip().replace('\\"', '"').splitlines()
    assert len(lines) == 1 and field in lines[0], p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_name_taken_in_the_container_fails_cleanly(bundle, runtime, netns):
    dev = new_dev()
    add_dummy(netns, dev)
    bundle.update(lambda c: c["linux"].update(netDevices={dev: {"name": "lo"}}))
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 1
        lines = p.stderr.strip().replace('\\"', '"').splitlines()
        assert len(lines) == 1 and 'linux.netDevices["%s"].name: lo already exists' % dev in lines[0], p.stderr
        assert not os.path.exists(os.path.join(runtime.root, cid))
        rc, out = link_in(netns, dev)
        assert rc == 0 and MAC in out, out
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_template_names_numbered_by_the_kernel(bundle, runtime, netns):
    """The spec: a name ending in %d is a template, numbered by the kernel
    inside the container's namespace; two devices share one here, so the
    second clashes with the first's eth0 and becomes eth1.  Each is found
    under its real name for its addresses and IFF_UP."""
    a, b = new_dev(), new_dev()
    add_dummy(netns, a, MAC)
    add_dummy(netns, b, MAC2)
    subprocess.run(["ip", "-n", netns, "addr", "add", "10.251.8.2/24", "dev", b], check=True)
    bundle.update(lambda c: c["linux"].update(netDevices={a: {"name": "eth%d"}, b: {"name": "eth%d"}}))
    bundle.set_args("sleep", "1000")
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 0, p.stderr
        for ifname, mac in (("eth0", MAC), ("eth1", MAC2)):
            p = pyrunc_in(netns, runtime, "exec", cid, "cat",
                          "/sys/class/net/%s/address" % ifname, "/sys/class/net/%s/flags" % ifname)
            assert p.returncode == 0, p.stderr
            got, flags = p.stdout.split()
            assert got == mac and int(flags, 16) & 0x1, (ifname, p.stdout)  # IFF_UP
        p = pyrunc_in(netns, runtime, "exec", cid, "ip", "addr", "show", "dev", "eth1")
        assert "10.251.8.2/24" in p.stdout, p.stdout
        p = pyrunc_in(netns, runtime, "exec", cid, "ls", "/sys/class/net")
        assert sorted(p.stdout.split()) == ["eth0", "eth1", "lo"], p.stdout
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_fixed_names_go_before_templates(bundle, runtime, netns):
    """A template listed first must not take the name a fixed one asks for:
    {a: eth%d, b: eth0} gives b eth0 and a eth1, in any order."""
    a, b = new_dev(), new_dev()
    add_dummy(netns, a, MAC)
    add_dummy(netns, b, MAC2)
    bundle.update(lambda c: c["linux"].update(netDevices={a: {"name": "eth%d"}, b: {"name": "eth0"}}))
    bundle.set_args("sleep", "1000")
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 0, p.stderr
        for ifname, mac in (("eth0", MAC2), ("eth1", MAC)):
            p = pyrunc_in(netns, runtime, "exec", cid, "cat", "/sys/class/net/%s/address" % ifname)
            assert p.stdout.strip() == mac, (ifname, p.stdout, p.stderr)
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)


def test_failure_after_a_template_gives_it_back(bundle, runtime, netns):
    """A template moved (and renamed inside), then the next device is
    missing: one line naming that one; the first is back on the host under
    its own name and MAC, nothing is left."""
    a = new_dev()
    add_dummy(netns, a, MAC)
    missing = new_dev()
    bundle.update(lambda c: c["linux"].update(netDevices={a: {"name": "eth%d"}, missing: {"name": "net%d"}}))
    cid = "t" + uuid.uuid4().hex[:12]
    try:
        p = pyrunc_in(netns, runtime, "create", "-b", bundle.path, cid)
        assert p.returncode == 1, (p.stdout, p.stderr)
        lines = p.stderr.strip().replace('\\"', '"').splitlines()
        assert len(lines) == 1 and 'linux.netDevices["%s"]' % missing in lines[0], p.stderr
        assert not os.path.exists(os.path.join(runtime.root, cid))
        rc, out = link_in(netns, a)
        assert rc == 0 and MAC in out, out
        assert link_in(netns, "eth0")[0] != 0
    finally:
        pyrunc_in(netns, runtime, "delete", "--force", cid)
