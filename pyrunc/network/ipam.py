"""Address allocation: one lease file per container under a state dir.

Every change happens under an exclusive flock on `<state_dir>/lock`, so two
setups never pick the same address.  A lease records its owner (pid and
start time, or a netns path and inode) so that the lease of a container that
died without teardown can be handed out again.
"""
import fcntl
import json
import os

from ..errors import PyruncError

LEASE_DIR = "leases"


class NetworkError(PyruncError):
    pass


class Subnet:
    """An IPv4 subnet: network, prefix length, gateway (the first host)."""

    __slots__ = ("network", "prefixlen", "text")

    def __init__(self, text):
        addr, sep, plen = text.partition("/")
        try:
            prefixlen = int(plen) if sep else 24
            network = ip_to_int(addr)
        except ValueError:
            raise NetworkError("--subnet: %r is not an IPv4 CIDR like 10.0.0.0/24" % text) from None
        if not 8 <= prefixlen <= 30:
            raise NetworkError("--subnet: prefix length of %r must be between 8 and 30" % text)
        mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
        if network & ~mask & 0xFFFFFFFF:
            raise NetworkError("--subnet: %r has host bits set" % text)
        self.network = network
        self.prefixlen = prefixlen
        self.text = "%s/%d" % (int_to_ip(network), prefixlen)

    @property
    def gateway(self):
        return int_to_ip(self.network + 1)

    def hosts(self):
        """Addresses a container may get: all but network, gateway, broadcast."""
        size = 1 << (32 - self.prefixlen)
        return (int_to_ip(self.network + i) for i in range(2, size - 1))

    def __contains__(self, ip):
        size = 1 << (32 - self.prefixlen)
        return self.network <= ip_to_int(ip) < self.network + size


def ip_to_int(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(text)
    n = 0
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            raise ValueError(text)
        n = (n << 8) | int(p)
    return n


def int_to_ip(n):
    return "%d.%d.%d.%d" % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)


def check_id(cid):
    """A container id becomes a file name: no path tricks."""
    if not cid or "/" in cid or cid.startswith(".") or "\0" in cid:
        raise NetworkError("container id %r cannot name a lease file" % (cid,))
    return cid


class Lock:
    """Exclusive flock on the state dir's lock file (per open file, so it
    also excludes other threads of this process)."""

    __slots__ = ("path", "fd")

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, "lock")
        self.fd = -1

    def __enter__(self):
        # The last teardown removes the state dir, lock file included: a
        # waiter that then wins the lock on the unlinked file starts over.
        while True:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # the dir went away between makedirs and open
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def remove_state_dir(self):
        """While held: remove the lock file and its dir if nothing else is
        in it (called when the bridge is gone)."""
        state_dir = os.path.dirname(self.path)
        try:
            os.rmdir(os.path.join(state_dir, LEASE_DIR))
        except FileNotFoundError:
            pass
        except OSError:
            return  # a lease appeared: keep everything
        os.unlink(self.path)
        try:
            os.rmdir(state_dir)
        except OSError:
            pass

    def __exit__(self, *exc):
        os.close(self.fd)  # closing the last fd releases the flock
        self.fd = -1


# -- owners -----------------------------------------------------------------------

def process_start_time(pid):
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[19])


def netns_identity(path):
    """(st_dev, st_ino) of a network namespace file, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def owner_of(netns_path, pid=None):
    """What a lease records about the namespace it gives an address to."""
    if pid is None:
        parts = netns_path.split("/")
        if len(parts) == 5 and parts[1] == "proc" and parts[2].isdigit() and parts[3:] == ["ns", "net"]:
            pid = int(parts[2])
    owner = {"netns_path": netns_path, "netns": netns_identity(netns_path)}
    if pid:
        owner["pid"] = pid
        owner["start"] = process_start_time(pid)
    return owner


def owner_alive(lease):
    """A process owner lives while its pid has the same start time and the
    same netns; a path owner while the path still names the same netns."""
    pid = lease.get("pid")
    if pid:
        if lease.get("start") is None or process_start_time(pid) != lease["start"]:
            return False
        now = netns_identity("/proc/%d/ns/net" % pid)
        return now is None or lease.get("netns") is None or now == lease["netns"]
    ident = lease.get("netns")
    return ident is not None and netns_identity(lease.get("netns_path", "")) == ident


# -- lease files ------------------------------------------------------------------

class Leases:
    """The lease files of one state dir.  Call only under its Lock."""

    __slots__ = ("dir",)

    def __init__(self, state_dir):
        self.dir = os.path.join(state_dir, LEASE_DIR)

    def path(self, cid):
        return os.path.join(self.dir, check_id(cid))

    def load(self, cid):
        try:
            with open(self.path(cid)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except ValueError:
            return {"id": cid}  # a torn write: still an entry to clean up

    def all(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        out = []
        for name in sorted(names):
            if name.startswith("."):
                continue  # a temp file of an interrupted write
            lease = self.load(name)
            if lease is not None:
                out.append(lease)
        return out

    def write(self, lease):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        path = self.path(lease["id"])
        tmp = os.path.join(self.dir, ".%s.tmp" % lease["id"])
        with open(tmp, "w") as f:
            json.dump(lease, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    def remove(self, cid):
        try:
            os.unlink(self.path(cid))
            return True
        except FileNotFoundError:
            return False

    def split_stale(self):
        """-> (live leases, stale leases), stale ones already removed."""
        live, stale = [], []
        for lease in self.all():
            if owner_alive(lease):
                live.append(lease)
            else:
                self.remove(lease["id"])
                stale.append(lease)
        return live, stale


def pick_address(subnet, live, cid):
    """The lowest free host address; a live lease of `cid` is an error."""
    used = set()
    for lease in live:
        if lease["id"] == cid:
            raise NetworkError("container %s already has address %s" % (cid, lease.get("address")))
        used.add(lease.get("address"))
    for ip in subnet.hosts():
        if ip not in used:
            return ip
    raise NetworkError("subnet %s: no free address (%d leases)" % (subnet.text, len(used)))
