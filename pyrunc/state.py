"""The state root: one directory per container, locked, written atomically.

    <root>/<id>/state.json   our record of the container (not the OCI state)
    <root>/<id>/config.json  the config as it was at create (hooks, cgroups)
    <root>/<id>/exec.fifo    exists while the init waits for `start`
    <root>/<id>/lock         flock()ed by every verb that changes the container
"""
from . import jsonio
from . import lazyos as os  # os without its import cost (see lazyos)

from .errors import ContainerExists, ContainerNotFound, InvalidID

DEFAULT_ROOT = "/run/pyrunc"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(cid):
    """Container ids are single path components from runc's alphabet, so they
    can never name anything outside the state root."""
    if not cid:
        raise InvalidID("container id cannot be empty")
    if cid in (".", "..") or not _ID_CHARS.issuperset(cid) or len(cid) > 1024:
        raise InvalidID("invalid container ID format")


class StateDir:
    __slots__ = ("root", "id", "path", "_lock_fd")

    def __init__(self, root, cid):
        validate_id(cid)
        self.root = os.path.abspath(root or DEFAULT_ROOT)
        self.id = cid
        self.path = os.path.join(self.root, cid)
        self._lock_fd = -1

    # -- paths -----------------------------------------------------------
    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def fifo(self):
        return self.file("exec.fifo")

    def exists(self):
        return os.path.isdir(self.path)

    # -- life of the directory ------------------------------------------
    def make(self):
        """Create the directory; refuse an id already in use."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None
        self.lock()

    def open(self):
        """Lock an existing container's directory."""
        if not self.exists():
            raise ContainerNotFound(self.id)
        self.lock()

    def lock(self):
        import fcntl

        fd = os.open(self.file("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def unlock(self):
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def remove(self):
        """Remove the directory and what is in it (flat: we make no subdirs)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.path, name))
            except IsADirectoryError:
                os.rmdir(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        self.unlock()

    # -- records ---------------------------------------------------------
    def write_json(self, name, doc):
        write_atomic(self.file(name), jsonio.dumps(doc).encode(), 0o600)

    def read_json(self, name):
        try:
            with open(self.file(name), "rb") as f:
                return jsonio.loads(f.read())
        except FileNotFoundError:
            return None


def write_atomic(path, data, mode=0o644):
    """Write a file so readers see the old or the new content, never half."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def list_ids(root):
    try:
        names = sorted(os.listdir(root or DEFAULT_ROOT))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.isdir(os.path.join(root or DEFAULT_ROOT, n))]


def rfc3339_now():
    """UTC time with nanoseconds, like Go's time.RFC3339Nano (runc's `created`)."""
    import time

    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return "%s.%sZ" % (base, ("%09d" % frac).rstrip("0")) if frac else base + "Z"
