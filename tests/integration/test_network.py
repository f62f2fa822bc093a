"""Bridge networking on a real kernel, with plain processes as containers.

Every test makes its own network namespace (`ip netns add`) that plays the
host: the bridge, the veths and every address live there or in namespaces
of processes the test started from it.  Nothing is created in the machine's
own network namespace and no packet leaves the test's namespaces.  The
network hooks run exactly as a runtime runs them: the state JSON on stdin,
from inside the "host" namespace.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from conftest import find_busybox, needs_root

pytestmark = [pytest.mark.integration, needs_root]

HOOK = [sys.executable, "-I", "-m", "pyrunc.network"]


def ns_inode(pid):
    try:
        return os.stat("/proc/%s/ns/net" % pid).st_ino
    except OSError:
        return None


class HostNetns:
    """A named netns playing the host, with "containers" (processes in
    their own netns, started from inside it) and a private state dir."""

    def __init__(self, state_dir):
        self.name = "pyrunc-t-" + uuid.uuid4().hex[:8]
        self.path = "/run/netns/" + self.name
        self.state_dir = str(state_dir)
        self.bridge = "prt" + uuid.uuid4().hex[:8]
        self.procs = []
        self.busybox = find_busybox()
        if self.busybox is None:
            pytest.skip("no static busybox on this host")
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.inode = os.stat(self.path).st_ino
        self.run("ip", "link", "set", "lo", "up")

    # -- processes ------------------------------------------------------------
    def cmd(self, *args):
        """argv running `args` in the host netns (network only: nsenter
        keeps the mount namespace, so /sys/fs/cgroup and the tmp dirs stay)."""
        return ["nsenter", "--net=" + self.path, *args]

    def run(self, *args, check=True, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        p = subprocess.run(self.cmd(*args), **kw)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def spawn(self, *args, **kw):
        p = subprocess.Popen(self.cmd(*args), **kw)
        self.procs.append(p)
        return p

    def container(self):
        """A process in a new netns made from inside the host netns; -> pid."""
        p = self.spawn("unshare", "--net", self.busybox, "sleep", "1000")
        deadline = time.monotonic() + 10
        while ns_inode(p.pid) in (None, self.inode) or self._is_nsenter(p.pid):
            assert time.monotonic() < deadline, "container process never got its own netns"
            time.sleep(0.01)
        return p.pid

    @staticmethod
    def _is_nsenter(pid):
        try:
            return not os.readlink("/proc/%d/exe" % pid).endswith("busybox")
        except OSError:
            return True

    def in_container(self, pid, *args, check=True, timeout=30):
        p = subprocess.run(["nsenter", "-t", str(pid), "-n", self.busybox, *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("in %d: %s failed (%d): %s%s" % (pid, " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def kill(self, pid):
        for p in self.procs:
            if p.pid == pid:
                p.kill()
                p.wait()

    # -- hooks ----------------------------------------------------------------
    def hook_argv(self, action, *extra):
        return self.cmd(*HOOK, action, "--bridge", self.bridge, "--state-dir", self.state_dir, *extra)

    def up(self, cid, pid, *extra, check=True):
        p = subprocess.run(self.hook_argv("up", *extra), input=json.dumps({"ociVersion": "1.2.0", "id": cid,
                           "pid": pid, "status": "created", "bundle": "/nonexistent"}),
                           capture_output=True, text=True, timeout=120)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    def down(self, cid, *extra):
        p = subprocess.run(self.hook_argv("down", *extra), input=json.dumps({"id": cid, "status": "stopped"}),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p

    # -- what is there --------------------------------------------------------
    def links(self):
        return [l.split(":")[1].strip().split("@")[0] for l in self.run("ip", "-o", "link").stdout.splitlines()]

    def veths(self):
        return [l for l in self.links() if l.startswith("pr-")]

    def leases(self):
        d = os.path.join(self.state_dir, "leases")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def lease(self, cid):
        with open(os.path.join(self.state_dir, "leases", cid)) as f:
            return json.load(f)

    def eth0_address(self, pid):
        """eth0's IPv4 address as the container sees it."""
        out = self.in_container(pid, "ip", "-4", "-o", "addr", "show", "eth0").stdout.split()
        return out[out.index("inet") + 1]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def hostns(tmp_path):
    h = HostNetns(tmp_path / "net")
    yield h
    h.close()


def wait_listening(h, pid, port, timeout=10):
    """Until the container's netns has a TCP socket listening on port."""
    want = ":%04X" % port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # httpd may bind [::]
            for line in h.in_container(pid, "cat", table).stdout.splitlines()[1:]:
                f = line.split()
                if f[1].endswith(want) and f[3] == "0A":
                    return
        time.sleep(0.05)
    raise AssertionError("nothing listens on %d in %d" % (port, pid))


def listening_ports(h):
    """TCP ports with a listener in the host netns (v4 and v6)."""
    out = h.run("cat", "/proc/net/tcp", "/proc/net/tcp6").stdout.splitlines()
    return {int(l.split()[1].rsplit(":", 1)[1], 16) for l in out
            if l.split()[0].endswith(":") and l.split()[3] == "0A"}


HTTP_GET = """
import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
except OSError as e:
    sys.exit('GET %s: %s' % (sys.argv[1], e))
"""


def http_get(h, url, check=True):
    """GET from inside the host netns (busybox's static wget is unreliable)."""
    return h.run(sys.executable, "-I", "-c", HTTP_GET, url, check=check)


def serve_http(h, pid, port, tmp_path, body):
    """busybox httpd in the container's netns serving `body` as /index.html."""
    www = tmp_path / ("www%d" % port)
    www.mkdir()
    (www / "index.html").write_text(body)
    h.spawn("nsenter", "-t", str(pid), "-n", h.busybox, "httpd", "-f", "-p", str(port), "-h", str(www))
    wait_listening(h, pid, port)


# -- tests ------------------------------------------------------------------------

def test_two_containers_get_their_own_ips_ping_each_other_and_serve_the_host(hostns, tmp_path):
    h = hostns
    a, b = h.container(), h.container()
    addr_a = h.up("ca", a).stdout.strip()
    addr_b = h.up("cb", b).stdout.strip()
    assert addr_a != addr_b
    # what each sees from inside matches the lease
    assert h.eth0_address(a) == addr_a + "/24" and h.eth0_address(b) == addr_b + "/24"
    assert h.lease("ca")["address"] == addr_a and h.lease("cb")["address"] == addr_b
    assert addr_a.startswith("10.0.0.") and addr_b.startswith("10.0.0.")
    # lo up and a default route via the bridge
    assert "UP" in h.in_container(a, "ip", "link", "show", "lo").stdout
    assert "default via 10.0.0.1 dev eth0" in h.in_container(a, "ip", "route").stdout
    # the host ends are on the bridge, named from the ids
    from pyrunc.network.bridge import veth_name

    assert sorted(h.veths()) == sorted([veth_name("ca"), veth_name("cb")])
    assert "master %s" % h.bridge in h.run("ip", "-o", "link", "show", veth_name("ca")).stdout
    # container to container
    h.in_container(a, "ping", "-c", "1", "-W", "3", addr_b)
    h.in_container(b, "ping", "-c", "1", "-W", "3", addr_a)
    # the tutorial: a server in b reached from the host at b's address,
    # while nothing listens on that port in the host namespace
    serve_http(h, b, 10000, tmp_path, "hello from b\n")
    assert 10000 not in listening_ports(h)
    got = http_get(h, "http://%s:10000/index.html" % addr_b)
    assert got.stdout == "hello from b\n"
    refused = http_get(h, "http://10.0.0.1:10000/index.html", check=False)
    assert refused.returncode != 0 and "refused" in refused.stderr
    h.down("ca")
    h.down("cb")
    assert h.veths() == [] and h.leases() == [] and h.bridge not in h.links()
    assert not os.path.exists(h.state_dir)  # the last one out removes the state dir too


def test_twenty_concurrent_setups_get_twenty_addresses_and_teardown_leaves_nothing(hostns):
    h = hostns
    pids = [h.container() for _ in range(20)]
    ups = [subprocess.Popen(h.hook_argv("up"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in pids]
    for i, (p, pid) in enumerate(zip(ups, pids)):
        p.stdin.write(json.dumps({"id": "c%02d" % i, "pid": pid}))
        p.stdin.close()
    results = [(p.wait(timeout=180), p.stdout.read().strip(), p.stderr.read()) for p in ups]
    for p in ups:
        p.stdout.close()
        p.stderr.close()
    assert all(rc == 0 for rc, _, _ in results), [err for rc, _, err in results if rc]
    addresses = [out for _, out, _ in results]
    assert len(set(addresses)) == 20
    for pid, address in zip(pids, addresses):
        assert h.eth0_address(pid) == address + "/24"
    assert len(h.leases()) == 20 and len(h.veths()) == 20
    downs = [subprocess.Popen(h.hook_argv("down"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in pids]
    for i, p in enumerate(downs):
        p.stdin.write(json.dumps({"id": "c%02d" % i}))
        p.stdin.close()
    errs = [(p.wait(timeout=180), p.stderr.read()) for p in downs]
    for p in downs:
        p.stderr.close()
    assert all(rc == 0 for rc, _ in errs), errs
    assert h.veths() == [] and h.leases() == [] and h.bridge not in h.links()
    for pid in pids:  # the container ends went with their peers
        assert "eth0" not in h.in_container(pid, "ip", "-o", "link").stdout


def test_teardown_after_the_container_died_and_keep_bridge(hostns):
    h = hostns
    a, b = h.container(), h.container()
    h.up("ka", a, "--keep-bridge")
    h.up("kb", b, "--keep-bridge")
    h.kill(a)  # its netns dies: the kernel removes both veth ends
    h.down("ka", "--keep-bridge")
    assert h.leases() == ["kb"]
    h.down("kb", "--keep-bridge")
    h.down("kb", "--keep-bridge")  # twice is harmless
    assert h.leases() == [] and h.veths() == []
    assert h.bridge in h.links()  # kept as asked
    h.down("nobody")  # without --keep-bridge the last teardown removes it
    assert h.bridge not in h.links()


def test_default_state_dir_is_per_network_namespace(hostns):
    """Outside the machine's own netns the default state dir is keyed by
    the namespace, so tests (or nested runtimes) never share leases."""
    h = hostns
    state = "/run/pyrunc-net/netns-%d/%s" % (h.inode, h.bridge)
    a = h.container()
    argv = h.cmd(*HOOK, "up", "--bridge", h.bridge)
    try:
        p = subprocess.run(argv, input=json.dumps({"id": "dflt", "pid": a}), capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert os.listdir(state + "/leases") == ["dflt"]
        assert not os.path.exists("/run/pyrunc-net/" + h.bridge)
        p = subprocess.run(h.cmd(*HOOK, "down", "--bridge", h.bridge), input='{"id": "dflt"}',
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert not os.path.exists("/run/pyrunc-net/netns-%d" % h.inode)
    finally:
        shutil.rmtree("/run/pyrunc-net/netns-%d" % h.inode, ignore_errors=True)


def test_lease_of_a_killed_owner_is_reclaimed(hostns):
    """A /30 has one container address: the second setup can only succeed
    by taking back the lease of the process that died without teardown."""
    h = hostns
    a = h.container()
    assert h.up("dead", a, "--subnet", "10.7.0.0/30").stdout.strip() == "10.7.0.2"
    b = h.container()
    full = h.up("other", b, "--subnet", "10.7.0.0/30", check=False)
    assert full.returncode == 1 and "no free address" in full.stderr
    h.kill(a)
    assert h.up("other", b, "--subnet", "10.7.0.0/30").stdout.strip() == "10.7.0.2"
    assert h.leases() == ["other"]
    from pyrunc.network.bridge import veth_name

    assert h.veths() == [veth_name("other")]
    h.in_container(b, "ping", "-c", "1", "-W", "3", "10.7.0.1")
    h.down("other")


def test_a_second_up_for_the_same_id_is_refused(hostns):
    h = hostns
    a, b = h.container(), h.container()
    h.up("same", a)
    again = h.up("same", b, check=False)
    assert again.returncode == 1 and "already has address" in again.stderr
    assert "eth0" not in h.in_container(b, "ip", "-o", "link").stdout
    h.down("same")


def test_setup_refuses_the_hosts_own_namespace_and_leaves_nothing(hostns):
    h = hostns
    plain = h.spawn(h.busybox, "sleep", "1000")  # no netns of its own
    deadline = time.monotonic() + 10
    while ns_inode(plain.pid) != h.inode or HostNetns._is_nsenter(plain.pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    p = h.up("shared", plain.pid, check=False)
    assert p.returncode == 1 and "no network namespace of its own" in p.stderr
    assert h.leases() == [] and h.bridge not in h.links()


def test_failed_setup_rolls_back_lease_veth_and_bridge(hostns):
    h = hostns
    a = h.container()
    # the name the veth end needs is taken (a bridge: built into this kernel)
    subprocess.run(["nsenter", "-t", str(a), "-n", "ip", "link", "add", "eth0", "type", "bridge"], check=True)
    p = h.up("clash", a, check=False)
    assert p.returncode == 1
    assert h.leases() == [] and h.veths() == [] and h.bridge not in h.links()


def test_existing_bridge_with_another_address_is_refused(hostns):
    h = hostns
    h.run("ip", "link", "add", h.bridge, "type", "bridge")
    h.run("ip", "addr", "add", "192.168.99.1/24", "dev", h.bridge)
    p = h.up("x", h.container(), check=False)
    assert p.returncode == 1 and "already has 192.168.99.1/24" in p.stderr
    assert h.leases() == []


def test_python_api_with_a_named_netns(hostns, tmp_path):
    """setup/teardown from Python with a bind-mounted namespace as owner
    (no pid): the lease lives while that path names the namespace."""
    h = hostns
    inner = "pyrunc-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", inner], check=True)
    try:
        code = ("import json, pyrunc.network as n\n"
                "a = n.setup('api', '/run/netns/%s', bridge=%r, state_dir=%r)\n"
                "print(a)\n") % (inner, h.bridge, h.state_dir)
        out = h.run(sys.executable, "-I", "-c", code).stdout.strip()
        assert out == "10.0.0.2"
        lease = h.lease("api")
        assert "pid" not in lease and lease["netns_path"] == "/run/netns/" + inner
        got = subprocess.run(["ip", "netns", "exec", inner, "ip", "-4", "-o", "addr", "show", "eth0"],
                             capture_output=True, text=True).stdout
        assert "10.0.0.2/24" in got
        code = "import pyrunc.network as n\nprint(n.teardown('api', bridge=%r, state_dir=%r))\n" % (
            h.bridge, h.state_dir)
        assert h.run(sys.executable, "-I", "-c", code).stdout.strip() == "True"
        assert h.leases() == [] and h.veths() == [] and h.bridge not in h.links()
    finally:
        subprocess.run(["ip", "netns", "del", inner], capture_output=True)


needs_nft = pytest.mark.skipif(shutil.which("nft") is None, reason="nft (nftables) not installed: publish/NAT untested")


@needs_nft
def test_published_port_and_outbound_nat(hostns, tmp_path):
    """8080 on the host's bridge address reaches port 80 in the container;
    with --nat the container reaches a "world" namespace that has no route
    back to the container subnet (only masquerading makes the reply come)."""
    h = hostns
    world = "pyrunc-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", world], check=True)
    try:
        out = "pw" + uuid.uuid4().hex[:8]
        h.run("ip", "link", "add", out, "type", "veth", "peer", "name", "wo0", "netns", world)
        h.run("ip", "addr", "add", "192.168.77.1/24", "dev", out)
        h.run("ip", "link", "set", out, "up")
        for c in (["ip", "addr", "add", "192.168.77.2/24", "dev", "wo0"], ["ip", "link", "set", "wo0", "up"]):
            subprocess.run(["ip", "netns", "exec", world, *c], check=True)
        a = h.container()
        addr = h.up("pub", a, "--publish", "8080:80/tcp", "--nat").stdout.strip()
        assert h.lease("pub")["publish"] == ["8080:80/tcp"] and h.lease("pub")["nat"] is True
        serve_http(h, a, 80, tmp_path, "published\n")
        assert 8080 not in listening_ports(h)
        got = http_get(h, "http://10.0.0.1:8080/index.html")
        assert got.stdout == "published\n"
        h.in_container(a, "ping", "-c", "1", "-W", "3", "192.168.77.2")
        table = h.run("nft", "list", "table", "ip", "pyrunc_" + h.bridge).stdout
        assert "tcp . 8080 : %s . 80" % addr in table
        h.down("pub")
        assert h.run("nft", "list", "table", "ip", "pyrunc_" + h.bridge, check=False).returncode != 0
        assert h.leases() == [] and h.bridge not in h.links()
    finally:
        subprocess.run(["ip", "netns", "del", world], capture_output=True)


@needs_nft
def test_without_nat_the_world_is_unreachable(hostns):
    """The control for the test above: no --nat, no reply."""
    h = hostns
    world = "pyrunc-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", world], check=True)
    try:
        out = "pw" + uuid.uuid4().hex[:8]
        h.run("ip", "link", "add", out, "type", "veth", "peer", "name", "wo0", "netns", world)
        h.run("ip", "addr", "add", "192.168.77.1/24", "dev", out)
        h.run("ip", "link", "set", out, "up")
        for c in (["ip", "addr", "add", "192.168.77.2/24", "dev", "wo0"], ["ip", "link", "set", "wo0", "up"]):
            subprocess.run(["ip", "netns", "exec", world, *c], check=True)
        h.run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        a = h.container()
        h.up("nonat", a)
        p = h.in_container(a, "ping", "-c", "1", "-W", "2", "192.168.77.2", check=False)
        assert p.returncode != 0
        h.down("nonat")
    finally:
        subprocess.run(["ip", "netns", "del", world], capture_output=True)
