"""podman 4.3 `run --network <bridge>` with pyrunc: the container joins the
network namespace podman made and CNI wired to a bridge.

podman (and so CNI's bridge, host-local and firewall plugins) runs inside a
network namespace the test made (engines.netns_sandbox): the bridge, the
veths, the addresses and the iptables-nft rules exist only there, and every
packet the test sends goes to an address in it. The host's links,
addresses, routes and ruleset are compared before and after.
"""
import os
import random
import tempfile
import time

import pytest

from conftest import PYRUNC, find_busybox, needs_root
from engines import procs
from engines.fixtures import IMAGE_NAME, image_archive, require
from engines.netns_sandbox import Sandbox, host_network_snapshot
from engines.podman import Podman

pytestmark = [needs_root, pytest.mark.integration]


@pytest.fixture(scope="module")
def net_pm(tmp_path_factory):
    require("podman", package="podman")
    require("conmon", package="conmon")
    require("unshare", "nsenter", package="util-linux")
    require("ip", package="iproute2")
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.skip("no CNI bridge plugin at /usr/lib/cni/bridge: apt-get install containernetworking-plugins")
    archive = image_archive(tmp_path_factory.mktemp("podman-net-image"))
    host_before = host_network_snapshot()
    etc_cni_before = sorted(os.listdir("/etc/cni/net.d")) if os.path.isdir("/etc/cni/net.d") else None
    parent = "/pyrunc-engines-podnet-%d" % os.getpid()
    sandbox = Sandbox()
    sandbox.start()
    base = tempfile.mkdtemp(prefix="pyrunc-pn-", dir="/tmp")
    pm = Podman(base, PYRUNC, archive, IMAGE_NAME, parent, sandbox=sandbox)
    try:
        pm.start()
        yield pm
    finally:
        pm.stop()
        sandbox.stop()
    assert [p for p in procs.pids_with_args(b"conmon") if pm._is_ours(p)] == []
    assert procs.cgroup_dirs(parent) == []
    assert host_network_snapshot() == host_before
    assert (sorted(os.listdir("/etc/cni/net.d")) if os.path.isdir("/etc/cni/net.d") else None) == etc_cni_before


def net_args(pm, network):
    return ["--network", network, "--pull", "never", "--cgroup-parent", pm.cgroup_parent]


def wget_from_sandbox(pm, url, tries=50):
    """Fetch url with the host's busybox, run in the sandbox's network
    namespace (busybox's wget -T crashes on Debian 12: retry instead)."""
    busybox = find_busybox()
    for _ in range(tries):
        p = pm.sandbox.run(busybox, "wget", "-q", "-O", "-", url, net_only=True, check=False, timeout=20)
        if p.returncode == 0:
            return p.stdout
        time.sleep(0.1)
    raise AssertionError("wget %s from the sandbox failed: %s" % (url, p.stderr))


def test_podman_run_on_bridge_network(net_pm):
    pm = net_pm
    if find_busybox() is None:
        pytest.skip("no static busybox on the host for the client side")
    subnet_octet = random.randint(1, 250)
    prefix = "10.231.%d." % subnet_octet
    network = "pyrunc-net-%s" % os.urandom(2).hex()
    pm.podman("network", "create", "--subnet", prefix + "0/24", network)
    assert os.path.exists(os.path.join(pm.base, "net", network + ".conflist"))
    assert network in pm.networks()

    name = "web-" + os.urandom(3).hex()
    ip = None
    server = "echo served-by-$(hostname) > /var/www/index.html; exec httpd -f -p 8080 -h /var/www"
    cid = pm.podman("run", "-d", "--name", name, *net_args(pm, network), IMAGE_NAME, "sh", "-c", server).stdout.strip()
    try:
        ip = pm.inspect(name, '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % network)
        assert ip.startswith(prefix) and ip != prefix + "1", ip
        # The container sees its address on eth0 (the veth's far end).
        addr = pm.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert " %s/24 " % ip in addr, addr
        route = pm.podman("exec", name, "ip", "route").stdout
        assert "default via %s1" % prefix in route, route

        # The kernel's view: the container's init is in the network namespace
        # podman made (its /run/netns file, in the sandbox's /run), which is
        # neither the sandbox's nor the host's.
        pid = int(pm.inspect(name, "{{.State.Pid}}"))
        netns_file = pm.inspect(name, "{{.NetworkSettings.SandboxKey}}")
        ctr_net = os.stat("/proc/%d/ns/net" % pid).st_ino
        assert ctr_net == os.stat("/proc/%d/root%s" % (pm.sandbox.pid, netns_file)).st_ino
        assert ctr_net not in (pm.sandbox.net_inode(), os.stat("/proc/self/ns/net").st_ino)

        # The bridge (with the gateway address) and the veth are in the sandbox.
        links = pm.sandbox.links()
        bridges = [n for n, kind in links.items() if kind == "bridge"]
        assert len(bridges) == 1 and list(links.values()).count("veth") == 1, links
        br_addr = pm.sandbox.run("ip", "-o", "-4", "addr", "show", bridges[0]).stdout
        assert " %s1/24 " % prefix in br_addr, br_addr

        # From the sandbox (the test's "host") to the server at its own IP.
        assert wget_from_sandbox(pm, "http://%s:8080/" % ip).strip() == "served-by-" + cid[:12]
        # And from a second container over the bridge.
        peer = pm.podman("run", "--rm", *net_args(pm, network), IMAGE_NAME, "sh", "-c",
                         "ip -o -4 addr show eth0; wget -q -O - http://%s:8080/" % ip, check=False)
        assert peer.returncode == 0, peer.stderr
        peer_lines = peer.stdout.splitlines()
        assert prefix in peer_lines[0] and " %s/" % ip not in peer_lines[0], peer_lines
        assert peer_lines[1] == "served-by-" + cid[:12]
    finally:
        pm.podman("rm", "--force", "--time", "0", name, check=False)
    # Removing the container tore its veth down and released its lease.
    deadline = time.monotonic() + 5
    while "veth" in pm.sandbox.links().values() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "veth" not in pm.sandbox.links().values()
    leases = pm.sandbox.run("ls", "/var/lib/cni/networks/" + network).stdout.split()
    assert ip not in leases, leases
    pm.podman("network", "rm", network)
    assert not os.path.exists(os.path.join(pm.base, "net", network + ".conflist"))
