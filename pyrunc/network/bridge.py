"""Setup and teardown of one container on a bridge.

Everything runs under the state dir's lock: allocation, the bridge's
creation and its removal when the last container leaves cannot interleave.
Teardown is keyed by container id only (lease file and veth name), because
at poststop the container's process, and often its namespace, are gone.
"""
import os
import sys

from . import links
from .ipam import Leases, Lock, NetworkError, Subnet, owner_of, pick_address

DEFAULT_BRIDGE = "pyrunc0"
DEFAULT_SUBNET = "10.0.0.0/24"
STATE_ROOT = "/run/pyrunc-net"
NFT_MARKER = "nft"  # in the state dir while the bridge's nft table exists


def default_state_dir(bridge):
    """/run/pyrunc-net/<bridge> in the machine's network namespace; in any
    other one (a test's, a nested runtime's) a dir of its own, so that
    same-named bridges in different namespaces never share leases."""
    mine = os.stat("/proc/thread-self/ns/net")
    try:
        init = os.stat("/proc/1/ns/net")
    except OSError:  # pid 1's namespaces hidden from us: assume not the same
        init = None
    if init is not None and (init.st_dev, init.st_ino) == (mine.st_dev, mine.st_ino):
        return os.path.join(STATE_ROOT, bridge)
    return os.path.join(STATE_ROOT, "netns-%d" % mine.st_ino, bridge)


def veth_name(cid):
    """The host end's name, from the id alone (IFNAMSIZ: 15 chars)."""
    import hashlib

    return "pr-" + hashlib.sha256(cid.encode()).hexdigest()[:12]


def check_bridge_name(name):
    if not name or len(name) > 15 or "/" in name or any(c.isspace() for c in name) or name in (".", ".."):
        raise NetworkError("--bridge: %r is not a valid interface name (1-15 chars, no '/' or spaces)" % (name,))
    return name


def _stderr_warn(msg):
    sys.stderr.write("pyrunc-network: warning: %s\n" % msg)


def setup(container_id, netns_path, bridge=DEFAULT_BRIDGE, subnet=DEFAULT_SUBNET, state_dir=None,
          publish=(), nat=False, keep_bridge=False, pid=None, warn=None):
    """Give the namespace at `netns_path` an eth0 on `bridge`; -> its address."""
    from .nat import Publish

    check_bridge_name(bridge)
    net = Subnet(subnet)
    published = [p if isinstance(p, Publish) else Publish(p) for p in publish]
    state_dir = state_dir or default_state_dir(bridge)
    warn = warn or _stderr_warn
    try:
        netns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError("netns %s: %s" % (netns_path, e.strerror)) from None
    try:
        if links.same_netns_as_caller(netns_fd):
            raise NetworkError("container %s has no network namespace of its own "
                               "(add {\"type\": \"network\"} to linux.namespaces)" % container_id)
        owner = owner_of(netns_path, pid)
        links.iproute_class()  # the slow import, before the lock is taken
        with Lock(state_dir):
            return _setup_locked(container_id, netns_fd, owner, bridge, net, published, nat,
                                 keep_bridge, Leases(state_dir), state_dir, warn)
    finally:
        os.close(netns_fd)


def _setup_locked(cid, netns_fd, owner, bridge, net, published, nat, keep_bridge, leases, state_dir, warn):
    live, stale = leases.split_stale()
    veth = veth_name(cid)
    with links.iproute() as ipr:
        for old in stale:
            _release(ipr, bridge, old, state_dir, warn)
        address = pick_address(net, live, cid)
        lease = {"id": cid, "address": address, "prefixlen": net.prefixlen, "veth": veth,
                 "bridge": bridge, "subnet": net.text}
        lease.update(owner)
        leases.write(lease)
        try:
            bridge_idx = links.ensure_bridge(ipr, bridge, net.gateway, net.prefixlen)
            links.delete_link(ipr, veth)  # left by a setup of this id that crashed
            links.add_veth(ipr, veth, netns_fd, bridge_idx)
            links.configure_inside(netns_fd, address, net.prefixlen, net.gateway)
            if published or nat:
                from . import nat as nft

                open(os.path.join(state_dir, NFT_MARKER), "a").close()
                lease.update(nft.add_container(bridge, address, published, nat))
                leases.write(lease)
        except BaseException:
            _release(ipr, bridge, lease, state_dir, warn)
            leases.remove(cid)
            if not keep_bridge and not live:
                _remove_bridge(ipr, bridge, state_dir, warn)
            raise
    return address


def teardown(container_id, bridge=DEFAULT_BRIDGE, state_dir=None, keep_bridge=False, warn=None):
    """Undo setup for `container_id`; -> whether it had a lease.  Removes the
    bridge when no container is left on it (unless keep_bridge)."""
    check_bridge_name(bridge)
    state_dir = state_dir or default_state_dir(bridge)
    warn = warn or _stderr_warn
    leases = Leases(state_dir)
    leases.path(container_id)  # validates the id before anything is touched
    if not os.path.isdir(state_dir):
        return False  # never set up here: nothing to undo, nothing to create
    links.iproute_class()  # the slow import, before the lock is taken
    with Lock(state_dir) as lock, links.iproute() as ipr:
        lease = leases.load(container_id)
        _release(ipr, bridge, lease or {"id": container_id}, state_dir, warn)
        had = leases.remove(container_id)
        live, stale = leases.split_stale()
        for old in stale:
            _release(ipr, bridge, old, state_dir, warn)
        if not live and not keep_bridge and _remove_bridge(ipr, bridge, state_dir, warn):
            lock.remove_state_dir()
    _remove_empty_parent(state_dir)
    return had


def _remove_empty_parent(state_dir):
    """A netns-<ino> dir left empty by the last bridge of that namespace."""
    parent = os.path.dirname(state_dir)
    if os.path.basename(parent).startswith("netns-") and os.path.dirname(parent) == STATE_ROOT:
        try:
            os.rmdir(parent)
        except OSError:
            pass


def _release(ipr, bridge, lease, state_dir, warn):
    """The host veth (its peer goes with it) and any nft elements."""
    links.delete_link(ipr, lease.get("veth") or veth_name(lease["id"]))
    if lease.get("publish") or lease.get("nat"):
        from . import nat as nft

        nft.remove_container(bridge, lease, warn)


def _remove_bridge(ipr, bridge, state_dir, warn):
    """-> True when the bridge and its nft table are gone."""
    idx = links.index_of(ipr, bridge)
    if idx is not None:
        ports = links.bridge_ports(ipr, idx)
        if ports:
            warn("bridge %s kept: %d interface(s) still attached" % (bridge, len(ports)))
            return False
        links.delete_link(ipr, bridge)
    marker = os.path.join(state_dir, NFT_MARKER)
    if os.path.exists(marker):
        from . import nat as nft

        try:
            nft.remove_table(bridge)
        except NetworkError as e:
            warn(str(e))
            return False
        os.unlink(marker)
    return True


def show(container_id, bridge=DEFAULT_BRIDGE, state_dir=None):
    """The lease of a container (a dict), or None."""
    state_dir = state_dir or default_state_dir(check_bridge_name(bridge))
    with Lock(state_dir):
        return Leases(state_dir).load(container_id)


def list_leases(bridge=DEFAULT_BRIDGE, state_dir=None):
    state_dir = state_dir or default_state_dir(check_bridge_name(bridge))
    if not os.path.isdir(state_dir):
        return []
    with Lock(state_dir):
        return Leases(state_dir).all()
