"""Port publishing and outbound NAT with nftables (only when asked for).

One table per bridge holds a map `ports` (proto . host port -> container
address . port) used by a dnat rule, and a set `natted` of container
addresses masqueraded when leaving through anything but the bridge.  A
container adds and removes only its own elements, so the rules never need
editing.  `nft` runs as a subprocess: this path is opt-in.
"""
from .ipam import NetworkError

PROTOS = ("tcp", "udp")


class Publish:
    """HOST:CONTAINER[/proto], e.g. 8080:80/tcp."""

    __slots__ = ("host_port", "container_port", "proto")

    def __init__(self, text):
        ports, _, proto = text.partition("/")
        host, sep, cont = ports.partition(":")
        proto = proto or "tcp"
        try:
            hp, cp = int(host), int(cont if sep else host)
        except ValueError:
            raise NetworkError("--publish: %r is not HOST:CONTAINER[/tcp|udp]" % text) from None
        if proto not in PROTOS or not (0 < hp < 65536 and 0 < cp < 65536):
            raise NetworkError("--publish: %r is not HOST:CONTAINER[/tcp|udp] with ports 1-65535" % text)
        self.host_port, self.container_port, self.proto = hp, cp, proto

    def __str__(self):
        return "%d:%d/%s" % (self.host_port, self.container_port, self.proto)


def table_name(bridge):
    return "pyrunc_" + "".join(c if c.isalnum() else "_" for c in bridge)


def nft(script):
    import subprocess

    try:
        p = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True)
    except FileNotFoundError:
        raise NetworkError("nft not found: --publish and --nat need nftables installed") from None
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise NetworkError("nft: %s" % (err[0] if err else "exit status %d" % p.returncode))


def table_exists(bridge):
    import subprocess

    try:
        p = subprocess.run(["nft", "list", "table", "ip", table_name(bridge)], capture_output=True)
    except FileNotFoundError:
        return False
    return p.returncode == 0


def ensure_table(bridge):
    if table_exists(bridge):
        return
    nft("""table ip %(t)s {
  map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
  set natted { type ipv4_addr; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
  chain output { type nat hook output priority -100; policy accept;
    fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ip saddr @natted oifname != "%(br)s" masquerade; }
}
""" % {"t": table_name(bridge), "br": bridge})


def enable_forwarding():
    """Published ports and NAT route between the bridge and other links."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


def add_container(bridge, address, publish, masquerade):
    """Elements for one container; returns what teardown must remove."""
    ensure_table(bridge)
    enable_forwarding()
    t = table_name(bridge)
    # create, not add: a host port published twice is an error
    lines = ["create element ip %s ports { %s . %d : %s . %d }" % (t, p.proto, p.host_port, address, p.container_port)
             for p in publish]
    if masquerade:
        lines.append("add element ip %s natted { %s }" % (t, address))
    nft("\n".join(lines) + "\n")
    return {"publish": [str(p) for p in publish], "nat": bool(masquerade)}


def remove_container(bridge, lease, warn):
    """Remove one container's elements, each on its own (one already gone
    must not keep the others)."""
    t = table_name(bridge)
    lines = []
    for text in lease.get("publish") or ():
        p = Publish(text)
        lines.append("delete element ip %s ports { %s . %d }" % (t, p.proto, p.host_port))
    if lease.get("nat"):
        lines.append("delete element ip %s natted { %s }" % (t, lease.get("address")))
    for line in lines:
        try:
            nft(line + "\n")
        except NetworkError as e:
            warn(str(e))


def remove_table(bridge):
    if table_exists(bridge):
        nft("delete table ip %s\n" % table_name(bridge))

