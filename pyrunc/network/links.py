"""Links, addresses and routes over netlink (pyroute2; no `ip` processes).

The caller's network namespace plays the host: the bridge and the host end
of each veth live there.  The container end is created straight inside the
container's namespace (IFLA_NET_NS_FD on the peer) as `eth0`, and configured
through a netlink socket opened while this thread is inside that namespace.
"""
import os

from .. import linux
from .ipam import NetworkError

CLONE_NEWNET = 0x40000000
CONTAINER_IFNAME = "eth0"


class step:
    """Turns a netlink error into a one-line NetworkError naming the step."""

    __slots__ = ("what",)

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        code = getattr(exc, "code", None)
        if typ is not None and isinstance(code, int) and not isinstance(exc, NetworkError):
            raise NetworkError("%s: %s" % (self.what, os.strerror(code) if code > 0 else exc)) from None
        return False


def iproute():
    return iproute_class()()


def iproute_class():
    """pyroute2's IPRoute without running the package's __init__, which
    imports every pyroute2 API (~140 ms against ~90 ms for this one).  The
    stand-in parent leaves sys.modules afterwards, so a later plain `import
    pyroute2` still runs the real __init__ (reusing the loaded submodules)."""
    import sys

    if "pyroute2" in sys.modules:
        from pyroute2 import IPRoute

        return IPRoute
    import importlib.util
    import types

    spec = importlib.util.find_spec("pyroute2")
    if spec is None:
        raise NetworkError("pyroute2 is not installed: pip install 'pyrunc[network]'")
    stub = types.ModuleType("pyroute2")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__spec__ = spec
    sys.modules["pyroute2"] = stub
    try:
        from pyroute2.iproute.linux import IPRoute
    except (ImportError, AttributeError):
        IPRoute = None  # a layout this shortcut does not know: the plain way below
    finally:
        if sys.modules.get("pyroute2") is stub:
            del sys.modules["pyroute2"]
    if IPRoute is None:
        for name in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
            del sys.modules[name]
        from pyroute2 import IPRoute
    return IPRoute


def index_of(ipr, ifname):
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _attr(msg, name):
    return msg.get_attr(name) if hasattr(msg, "get_attr") else msg.get(name)


def ensure_bridge(ipr, name, gateway, prefixlen):
    """The bridge, up, with the gateway address; created if missing.  An
    existing bridge must not carry another IPv4 address."""
    idx = index_of(ipr, name)
    if idx is None:
        with step("creating bridge %s" % name):
            ipr.link("add", ifname=name, kind="bridge")
        idx = index_of(ipr, name)
    else:
        kind = link_kind(ipr, idx)
        if kind != "bridge":
            raise NetworkError("--bridge: %s exists and is a %s, not a bridge" % (name, kind or "plain link"))
    have = [(_attr(a, "IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)]
    if (gateway, prefixlen) not in have:
        if have:
            raise NetworkError("--subnet: bridge %s already has %s, not %s/%d"
                               % (name, ", ".join("%s/%d" % h for h in have), gateway, prefixlen))
        with step("adding %s/%d to bridge %s" % (gateway, prefixlen, name)):
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
    with step("setting bridge %s up" % name):
        ipr.link("set", index=idx, state="up")
    return idx


def link_kind(ipr, idx):
    msg = ipr.get_links(idx)[0]
    info = _attr(msg, "IFLA_LINKINFO")
    return _attr(info, "IFLA_INFO_KIND") if info else None


def bridge_ports(ipr, bridge_idx):
    return [m["index"] for m in ipr.get_links() if _attr(m, "IFLA_MASTER") == bridge_idx]


def delete_link(ipr, ifname):
    """Delete a link by name; False when it is not there."""
    idx = index_of(ipr, ifname)
    if idx is None:
        return False
    try:
        with step("deleting %s" % ifname):
            ipr.link("del", index=idx)
    except NetworkError:
        if index_of(ipr, ifname) is None:
            return False  # gone meanwhile: its namespace died
        raise
    return True


def add_veth(ipr, host_ifname, netns_fd, bridge_idx):
    """A veth pair: `host_ifname` on the bridge, its peer `eth0` inside the
    namespace behind `netns_fd`."""
    with step("creating veth %s with peer %s in the container" % (host_ifname, CONTAINER_IFNAME)):
        ipr.link("add", ifname=host_ifname, kind="veth",
                 peer={"ifname": CONTAINER_IFNAME, "net_ns_fd": netns_fd})
    idx = index_of(ipr, host_ifname)
    with step("attaching %s to the bridge" % host_ifname):
        ipr.link("set", index=idx, master=bridge_idx, state="up")
    return idx


def configure_inside(netns_fd, address, prefixlen, gateway):
    """lo up; eth0 up with the address; default route via the gateway."""

    def work():
        with iproute() as ipr:
            lo = index_of(ipr, "lo")
            if lo is not None:
                ipr.link("set", index=lo, state="up")
            eth = index_of(ipr, CONTAINER_IFNAME)
            if eth is None:
                raise NetworkError("%s did not appear in the container's network namespace" % CONTAINER_IFNAME)
            with step("container: adding %s/%d to %s" % (address, prefixlen, CONTAINER_IFNAME)):
                ipr.addr("add", index=eth, address=address, prefixlen=prefixlen)
                ipr.link("set", index=eth, state="up")
            with step("container: default route via %s" % gateway):
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=eth)

    return in_netns(netns_fd, work)


def in_netns(netns_fd, fn):
    """Run fn with this thread inside another network namespace (setns is
    per thread), then come back whatever happens."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(netns_fd, CLONE_NEWNET)
        try:
            return fn()
        finally:
            linux.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


def same_netns_as_caller(netns_fd):
    mine = os.stat("/proc/thread-self/ns/net")
    theirs = os.fstat(netns_fd)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
