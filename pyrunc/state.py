"""The state root: one directory per container, locked, written atomically.

    <root>/<id>/state.json   our record of the container (not the OCI state)
    <root>/<id>/journal.json write-ahead record: what create is about to make
                             on the host, written (durably) before it makes it
    <root>/<id>/config.json  the config as it was at create (hooks, cgroups)
    <root>/<id>/exec.fifo    exists while the init waits for `start`
    <root>/<id>/lock         flock()ed by every verb that changes the container

Every verb reads state.json through read_state(): any damage (unreadable,
not JSON, not an object, a field of the wrong type) is one StateDamaged
error, never a traceback.
"""
from . import jsonio
from . import lazyos as os  # os without its import cost (see lazyos)

from .errors import ContainerExists, ContainerNotFound, InvalidID, StateDamaged

# A container's status, as `state` reports it.
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"

DEFAULT_ROOT = "/run/pyrunc"
INLINE_ANNOTATIONS_MAX = 64 << 10  # larger annotations live in annotations.json
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(cid):
    """Container ids are single path components from runc's alphabet, so they
    can never name anything outside the state root."""
    if not cid:
        raise InvalidID("container id cannot be empty")
    if cid in (".", "..") or not _ID_CHARS.issuperset(cid) or len(cid) > 1024:
        raise InvalidID("invalid container ID format")


class StateDir:
    __slots__ = ("root", "id", "path", "_lock_fd", "_annotations", "_journal")

    def __init__(self, root, cid):
        validate_id(cid)
        self.root = os.path.abspath(root or DEFAULT_ROOT)
        self.id = cid
        self.path = os.path.join(self.root, cid)
        self._lock_fd = -1
        self._annotations = None  # (the dict, its JSON): written once per create, not per save
        self._journal = None

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

    def busy(self):
        """Whether another process holds the lock (a create in progress)."""
        import fcntl

        if self._lock_fd >= 0:
            return False  # we hold it

        try:
            fd = os.open(self.file("lock"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

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
    def write_json(self, name, doc, durable=False):
        write_atomic(self.file(name), jsonio.dumps(doc).encode(), 0o600, durable)

    def read_json(self, name):
        try:
            with open(self.file(name), "rb") as f:
                return jsonio.loads(f.read())
        except FileNotFoundError:
            return None

    def write_state(self, record):
        """state.json, atomically.  The annotations are serialised once per
        StateDir: spliced in when small, else written once to
        annotations.json (they may be megabytes, and create saves the
        record several times: each save stays as small as what changed)."""
        ann = record.get("annotations")
        if not ann:
            text = jsonio.dumps(record)
        else:
            if self._annotations is None or self._annotations[0] is not ann:
                text = jsonio.dumps(ann)
                if len(text) > INLINE_ANNOTATIONS_MAX:
                    write_atomic(self.file("annotations.json"), text.encode(), 0o600)
                    text = None
                self._annotations = (ann, text)
            rest = {k: v for k, v in record.items() if k != "annotations"}
            if self._annotations[1] is None:
                rest["annotations_in_file"] = True
                text = jsonio.dumps(rest)
            else:
                text = jsonio.dumps(rest)
                text = text[:-1] + ("," if len(text) > 2 else "") + '"annotations":' + self._annotations[1] + "}"
        # Atomic, not fsynced: a killed process loses nothing of the page
        # cache, and what must survive a crash before it exists on the
        # host goes through the journal, which is fsynced.
        write_atomic(self.file("state.json"), text.encode(), 0o600)

    def read_state(self):
        """The record state.json holds, checked: StateDamaged on anything
        else.  A create still before its first record (it holds the lock)
        reads as an empty record."""
        try:
            with open(self.file("state.json"), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if not self.exists():
                raise ContainerNotFound(self.id) from None
            if self.busy():
                return {}
            raise StateDamaged(self.id, "missing") from None
        except OSError as e:
            raise StateDamaged(self.id, "unreadable: %s" % e.strerror) from None
        if not data.strip():
            raise StateDamaged(self.id, "empty file")
        try:
            record = jsonio.loads(data)
        except RecursionError:
            raise StateDamaged(self.id, "nested too deeply") from None
        except (ValueError, SystemError) as e:
            raise StateDamaged(self.id, "not JSON (%s)" % _first_line(e)) from None
        why = record_problem(record, self.id)
        if why:
            raise StateDamaged(self.id, why)
        if record.pop("annotations_in_file", False):
            record["annotations"] = self._read_annotations()
            self._annotations = (record["annotations"], None)  # a later save keeps the file
        return record

    def _read_annotations(self):
        try:
            ann = self.read_json("annotations.json")
        except (OSError, ValueError, SystemError, RecursionError) as e:
            raise StateDamaged(self.id, "annotations.json: %s" % _first_line(e)) from None
        if not _is_str_map(ann):
            raise StateDamaged(self.id, "annotations.json: must be an object of strings")
        return ann

    # -- write-ahead journal ----------------------------------------------
    def intend(self, kind, paths, leaves=()):
        """Record, durably, that create is about to make `paths` (host
        directories of `kind`: "cgroup", "intel_rdt"), before it makes any
        of them.  `leaves`: the container's own cgroups among them."""
        j = self._journal if self._journal is not None else {}
        j.setdefault(kind, [])
        j[kind] += [p for p in paths if p not in j[kind]]
        if leaves:
            key = kind + "_leaves"
            j[key] = (j.get(key) or []) + [p for p in leaves if p not in (j.get(key) or ())]
        self._journal = j
        self.write_json("journal.json", j, durable=True)

    def read_journal(self):
        """What the journal says create was about to make, {kind: [paths]};
        {} when absent or damaged (then the other sources must do)."""
        try:
            j = self.read_json("journal.json")
        except (OSError, ValueError, SystemError, RecursionError):
            return {}
        if not isinstance(j, dict):
            return {}
        return {k: [p for p in v if _is_abs_path(p)] for k, v in j.items()
                if isinstance(k, str) and isinstance(v, list)}


def _first_line(e):
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _is_abs_path(p):
    return isinstance(p, str) and p.startswith("/") and "\0" not in p


# Fields of the record create writes: name -> (check, what it must be).
def _is_int(v):
    return type(v) is int


def _is_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_str_map(v):
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _is_cgroup(v):
    if not isinstance(v, dict) or v.get("version") not in (1, 2):
        return False
    if not isinstance(v.get("created") or [], list) or not all(_is_abs_path(p) for p in v.get("created") or ()):
        return False
    if not isinstance(v.get("resources"), (dict, type(None))):
        return False
    if v["version"] == 1:
        paths = v.get("paths")
        return isinstance(paths, dict) and all(_is_abs_path(p) for p in paths.values())
    return _is_abs_path(v.get("path"))


def _is_rdt(v):
    return (isinstance(v, dict) and _is_abs_path(v.get("path"))
            and (v.get("mon_path") is None or _is_abs_path(v.get("mon_path")))
            and isinstance(v.get("owned") or [], list) and all(_is_abs_path(p) for p in v.get("owned") or ()))


_FIELDS = (
    ("id", lambda v: isinstance(v, str), "a string"),
    ("status", lambda v: v in ("creating", "created", "running", "paused", "stopped"), "an OCI status"),
    ("pid", lambda v: _is_int(v) and v >= 0, "a pid (a non-negative integer)"),
    ("init_start", lambda v: v is None or (_is_int(v) and v >= 0), "null or a start time"),
    ("bundle", lambda v: isinstance(v, str), "a string"),
    ("rootfs", lambda v: isinstance(v, str), "a string"),
    ("created", lambda v: isinstance(v, str), "a string"),
    ("owner", lambda v: isinstance(v, str), "a string"),
)
_OPTIONAL = (
    ("annotations", lambda v: v is None or _is_str_map(v), "an object of strings"),
    ("cgroup", lambda v: v is None or _is_cgroup(v), "a cgroup record"),
    ("hook_kinds", lambda v: v is None or _is_str_list(v), "a list of strings"),
    ("intel_rdt", lambda v: v is None or _is_rdt(v), "a resctrl group record"),
    ("no_new_keyring", lambda v: isinstance(v, bool), "true or false"),
    ("annotations_in_file", lambda v: isinstance(v, bool), "true or false"),
)


def record_problem(record, cid):
    """Why `record` is not a state record of container `cid`, or None."""
    if not isinstance(record, dict):
        return "not a JSON object (%s)" % ("null" if record is None else type(record).__name__)
    for name, ok, what in _FIELDS:
        if name not in record:
            return "%s: missing" % name
        if not ok(record[name]):
            return "%s: must be %s, not %s" % (name, what, _short(record[name]))
    for name, ok, what in _OPTIONAL:
        if name in record and not ok(record[name]):
            return "%s: must be %s, not %s" % (name, what, _short(record[name]))
    if record["id"] != cid:
        return "id: %s is not this container's id" % _short(record["id"])
    if record["pid"] and record["init_start"] is None:
        # A pid alone could name any process once the init is gone.
        return "pid: %d without init_start (cannot tell the init from a reused pid)" % record["pid"]
    return None


def _short(v):
    text = jsonio.dumps(v) if not isinstance(v, (dict, list)) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def write_atomic(path, data, mode=0o644, durable=False):
    """Write a file so readers see the old or the new content, never half.
    `durable`: the file and the rename reach the disk before this returns
    (fsync of the file, then of its directory)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if durable:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def list_ids(root):
    try:
        names = sorted(os.listdir(root or DEFAULT_ROOT))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.isdir(os.path.join(root or DEFAULT_ROOT, n))]
