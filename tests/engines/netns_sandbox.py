"""A network namespace (and mount namespace) the test makes, for engines
whose networking must never reach the machine's own namespace.

A holder process (`unshare --net --mount`) owns both namespaces; every
engine command runs inside them through `nsenter --target <holder>`. In the
mount namespace (mounts propagate in from the host, never out) tmpfs covers:

- /run: podman's netns files (/run/netns), /run/containers/networks, the
  runtime's default state root (podman and buildah pass no --root), the
  iptables lock;
- /var/lib: CNI's state (/var/lib/cni: host-local leases, results cache)
  and the image tools' blob-info cache (/var/lib/containers/cache).

So the bridge, veths, addresses, routes and the CNI firewall/masquerade
rules (iptables-nft) exist only in the test's network namespace, and all
state they leave lives in memory that goes away with the holder.
"""
import json
import os
import re
import shutil
import subprocess

from engines import procs

# Mounted in the holder's own mount namespace before it reports ready.
HOLDER_SCRIPT = """\
set -e
mount -t tmpfs -o mode=0755 pyrunc-sandbox-run /run
mount -t tmpfs -o mode=0755 pyrunc-sandbox-varlib /var/lib
ip link set lo up
echo ready
exec sleep 86400
"""


def _ns_inode(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


class Sandbox:
    def __init__(self):
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "slave", "--",
                                      "sh", "-c", HOLDER_SCRIPT],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.wait(timeout=10)
            raise RuntimeError("sandbox holder failed (%s): %s%s"
                               % (self.proc.returncode, line.decode(), self.proc.stderr.read().decode()))
        self.proc.stdout.close()
        self.proc.stderr.close()
        # The holder must really be in namespaces of its own.
        for kind in ("net", "mnt"):
            if _ns_inode(self.pid, kind) == _ns_inode(os.getpid(), kind):
                raise RuntimeError("sandbox holder shares the caller's %s namespace" % kind)

    @property
    def pid(self):
        return self.proc.pid

    def net_inode(self):
        return _ns_inode(self.pid, "net")

    # -- commands inside ------------------------------------------------------
    def wrap(self, argv):
        """argv run in the sandbox's network and mount namespaces."""
        return ["nsenter", "--target", str(self.pid), "--net", "--mount", "--", *argv]

    def wrap_net(self, argv):
        """argv run in the sandbox's network namespace only (the host's files)."""
        return ["nsenter", "--target", str(self.pid), "--net", "--", *argv]

    def run(self, *argv, net_only=False, check=True, timeout=60):
        cmd = self.wrap_net(argv) if net_only else self.wrap(argv)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("in sandbox: %s failed (%d): %s%s"
                                 % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        return p

    def links(self):
        """{name: kind} of the sandbox's network interfaces."""
        return parse_links(self.run("ip", "-j", "-d", "link", "show").stdout)

    def mounts_under(self, prefix):
        """Mount points at or below `prefix` in the sandbox's mount namespace."""
        points = []
        with open("/proc/%d/mountinfo" % self.pid) as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                    points.append(point)
        return sorted(points, key=len, reverse=True)

    def stop(self):
        """End the holder; with it go the namespaces (once the engine's
        processes inside are gone too), the tmpfs mounts and their state."""
        if self.proc is not None:
            procs.end([self.proc.pid])
            self.proc.wait(timeout=10)


def parse_links(text):
    """{name: kind} from `ip -j -d link show` ("veth", "bridge"; "" when none)."""
    return {link["ifname"]: link.get("linkinfo", {}).get("info_kind", "") for link in json.loads(text)}


def host_network_snapshot():
    """What the machine's own network namespace shows: links, addresses,
    routes, the nftables ruleset and iptables-save's rules. Taken
    before and after an engine test; the two must be equal."""
    def out(*argv):
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout

    def strip_counters(text):
        # Only the ruleset's structure matters, not packet counts.
        return re.sub(r"\b(packets|bytes) \d+", r"\1", text)

    def iptables():
        # The legacy backend's rules are not in the nft ruleset.
        if shutil.which("iptables-save") is None:
            return ""
        return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in out("iptables-save").splitlines()
                         if not line.startswith("#"))

    return {
        "iptables": iptables(),
        "links": sorted(line.split(":")[1].strip().split("@")[0] + " " + line.split()[0]
                        for line in out("ip", "-o", "link", "show").splitlines()),
        "addresses": sorted(" ".join(line.split()[1:4]) for line in out("ip", "-o", "addr", "show").splitlines()),
        "routes": sorted(re.sub(r" expires \d+sec", "", line)  # a router advertisement's countdown
                         for line in out("ip", "route", "show", "table", "all").splitlines()),
        "nft": strip_counters(out("nft", "list", "ruleset")),
    }
