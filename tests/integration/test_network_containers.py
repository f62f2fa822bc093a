"""Bridge networking with real pyrunc containers and the network hooks.

The pyrunc CLI runs inside a network namespace the test made (`nsenter
--net`, which keeps the mount namespace and so the cgroup mounts): the
createRuntime hook builds the bridge there, never in the machine's own
namespace.  Each test uses its own bridge name and state dir.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import needs_root
from pyrunc.network import add_bridge_hooks
from pyrunc.network.bridge import veth_name
from test_network import HostNetns, http_get, listening_ports

pytestmark = [pytest.mark.integration, needs_root]


@pytest.fixture
def hostns(tmp_path):
    h = HostNetns(tmp_path / "net")
    yield h
    h.close()


class Net:
    """The runtime, run from inside the test's host netns."""

    def __init__(self, h, runtime):
        self.h = h
        self.rt = runtime
        self.live = []

    def __call__(self, *args, check=True, timeout=60):
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(self.h.cmd(*self.rt.cmd(*args)), stdin=subprocess.DEVNULL, stdout=out,
                               stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read().decode(), err.read().decode()
        if check and p.returncode != 0:
            raise AssertionError("pyrunc %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def popen(self, *args):
        """stderr to a file, not a pipe: a created container keeps the
        runtime's stdio open, so a pipe would never reach EOF."""
        import tempfile

        err = tempfile.TemporaryFile()
        p = subprocess.Popen(self.h.cmd(*self.rt.cmd(*args)), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        p.errfile = err
        return p

    def new_id(self):
        cid = self.rt.new_id()
        self.live.append(cid)
        return cid

    def delete_all(self):
        """Inside the netns, so that the poststop hooks tear down there."""
        for cid in self.live:
            self("delete", "--force", cid, check=False)


def finish(p, timeout=300):
    """-> (returncode, stderr text) of a Net.popen process."""
    rc = p.wait(timeout=timeout)
    p.errfile.seek(0)
    text = p.errfile.read().decode(errors="replace")
    p.errfile.close()
    return rc, text


@pytest.fixture
def net(hostns, runtime):
    n = Net(hostns, runtime)
    yield n
    n.delete_all()


def with_network(bundle, h, *args, **kw):
    """Hooks for the test's bridge and state dir; ping needs CAP_NET_RAW."""

    def edit(cfg):
        cfg.pop("hooks", None)  # called again for a second container
        add_bridge_hooks(cfg, bridge=h.bridge, state_dir=h.state_dir, **kw)
        caps = cfg["process"]["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k].append("CAP_NET_RAW")
        cfg["process"]["args"] = list(args)
        cfg["process"]["terminal"] = False

    bundle.update(edit)


def address_inside(net, cid):
    out = net("exec", cid, "ip", "-4", "-o", "addr", "show", "eth0").stdout.split()
    return out[out.index("inet") + 1]


def test_spec_network_bridge_adds_hooks_that_find_their_interpreter(tmp_path, runtime):
    subprocess.run([runtime.binary, "spec", "--bundle", str(tmp_path), "--network", "bridge"], check=True)
    hooks = json.loads((tmp_path / "config.json").read_text())["hooks"]
    up, = hooks["createRuntime"]
    down, = hooks["poststop"]
    assert os.path.isabs(up["path"]) and os.access(up["path"], os.X_OK)
    assert up["args"][1:] == ["-I", "-m", "pyrunc.network", "up"]
    assert down["args"][1:] == ["-I", "-m", "pyrunc.network", "down"]
    # the interpreter named there can run the hook with the hook's env only
    env = dict(e.split("=", 1) for e in up["env"])
    p = subprocess.run([up["path"], "-I", "-m", "pyrunc.network", "--help"], env=env, capture_output=True,
                       text=True, cwd="/")
    assert p.returncode == 0 and "createRuntime" in p.stdout


def test_tutorial_two_containers_ping_and_serve_the_host(bundle, hostns, net):
    """The tutorials' `curl 10.0.0.5:10000`: a server in one container is
    reached from the host namespace at the container's address while
    nothing listens on that port in the host namespace."""
    h = hostns
    www = os.path.join(bundle.rootfs, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello from a container\n")
    with_network(bundle, h, "httpd", "-f", "-p", "10000", "-h", "/www")
    server = net.new_id()
    net("run", "-d", "-b", bundle.path, server)
    with_network(bundle, h, "sleep", "1000")
    client = net.new_id()
    net("run", "-d", "-b", bundle.path, client)

    addr_s = h.lease(server)["address"]
    addr_c = h.lease(client)["address"]
    assert addr_s != addr_c
    assert address_inside(net, server) == addr_s + "/24"
    assert address_inside(net, client) == addr_c + "/24"
    assert sorted(h.veths()) == sorted([veth_name(server), veth_name(client)])

    net("exec", client, "ping", "-c", "1", "-W", "3", addr_s)
    net("exec", server, "ping", "-c", "1", "-W", "3", addr_c)

    deadline = time.monotonic() + 10
    while True:
        got = http_get(h, "http://%s:10000/index.html" % addr_s, check=False)
        if got.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # httpd may still be starting
    assert got.stdout == "hello from a container\n", got.stderr
    assert 10000 not in listening_ports(h)
    assert http_get(h, "http://10.0.0.1:10000/index.html", check=False).returncode != 0

    net("delete", "--force", server)
    net("delete", "--force", client)
    assert h.veths() == [] and h.leases() == [] and h.bridge not in h.links()


def test_twenty_concurrent_creates_get_twenty_addresses(bundle, hostns, net):
    h = hostns
    with_network(bundle, h, "sleep", "1000")
    ids = [net.new_id() for _ in range(20)]
    procs = [net.popen("create", "-b", bundle.path, cid) for cid in ids]
    failures = []
    for cid, p in zip(ids, procs):
        rc, err = finish(p)
        if rc != 0:
            failures.append((cid, err))
    assert not failures
    addresses = {cid: h.lease(cid)["address"] for cid in ids}
    assert len(set(addresses.values())) == 20
    for cid in ids[:3] + ids[-2:]:  # spot checks from inside
        assert address_inside(net, cid) == addresses[cid] + "/24"
    assert len(h.veths()) == 20
    procs = [net.popen("delete", "--force", cid) for cid in ids]
    for p in procs:
        rc, err = finish(p)
        assert rc == 0, err
    assert h.veths() == [] and h.leases() == [] and h.bridge not in h.links()


def _sigkill_create_after_network_up(bundle, h, net, tmp_path, **kw):
    """A create SIGKILLed while its createRuntime hooks run, after the
    network hook gave it a lease; -> the container id."""
    pidfile = tmp_path / "blocker.pid"
    with_network(bundle, h, "sleep", "1000", **kw)
    bundle.update(lambda c: c["hooks"]["createRuntime"].append(
        {"path": "/bin/sh", "args": ["sh", "-c", "echo $$ > %s; exec sleep 60" % pidfile]}))
    cid = net.new_id()
    p = net.popen("create", "-b", bundle.path, cid)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and p.poll() is None, "create never reached the blocking hook"
        time.sleep(0.05)
    assert h.leases() == [cid]
    p.kill()
    finish(p)
    try:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the hook we started
    except ProcessLookupError:
        pass
    return cid


def test_lease_of_a_sigkilled_create_is_reclaimed_by_the_next_container(bundle, hostns, net, tmp_path):
    """On a /30 there is one address: the next container gets it only if the
    dead create's lease is taken back."""
    h = hostns
    dead = _sigkill_create_after_network_up(bundle, h, net, tmp_path, subnet="10.0.0.0/30")
    with_network(bundle, h, "sleep", "1000", subnet="10.0.0.0/30")
    deadline = time.monotonic() + 10
    while h.lease(dead).get("pid") and os.path.exists("/proc/%d" % h.lease(dead)["pid"]):
        assert time.monotonic() < deadline, "the dead create's init is still alive"
        time.sleep(0.05)
    nxt = net.new_id()
    net("run", "-d", "-b", bundle.path, nxt)
    assert h.leases() == [nxt] and h.lease(nxt)["address"] == "10.0.0.2"
    net("delete", "--force", nxt)
    net("delete", "--force", dead)
    assert h.leases() == [] and h.veths() == []


def test_delete_force_after_a_sigkilled_create_frees_the_lease(bundle, hostns, net, tmp_path):
    h = hostns
    cid = _sigkill_create_after_network_up(bundle, h, net, tmp_path)
    assert h.leases() == [cid]  # the create died with the network set up
    net("delete", "--force", cid)
    assert h.leases() == [] and h.veths() == [] and h.bridge not in h.links()
