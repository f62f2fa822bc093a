"""What both managers share: persisted form, creation bookkeeping, process
listing, kill-all and removal."""
import errno
import os
import time

from . import fs
from .fs import CgroupError


class Manager:
    """Common part of V1Manager / V2Manager; see pyrunc.cgroups for the API."""

    # v2_placed: this process was born in the v2 directory (the unified
    # hierarchy on a hybrid host; see namespaces.fork_into_pid_ns), so
    # join_self has nothing to do there.  Never persisted.
    __slots__ = ("created", "_resources", "rootless", "v2_placed")
    version = None

    def __init__(self, resources=None, rootless=False, created=None):
        self._resources = resources  # Resources, None, or a record's dict (see resources)
        self.rootless = rootless
        self.created = list(created or [])
        self.v2_placed = False

    @property
    def resources(self):
        """The Resources applied (None: none).  A manager loaded from
        state.json parses them on first use: exec, kill --all and
        delete --force never need them (nor the modules that type them)."""
        r = self._resources
        if isinstance(r, dict):
            from .resources import Resources

            r = self._resources = Resources.from_dict(r)
        return r

    @resources.setter
    def resources(self, value):
        self._resources = value

    # -- subclasses provide -------------------------------------------------
    def dirs(self):
        """Every distinct host directory of the container's cgroup."""
        raise NotImplementedError

    def procs_dir(self):
        """The directory whose cgroup.procs lists the container's processes."""
        raise NotImplementedError

    def v2_dir(self):
        """The container's directory on the cgroup2 hierarchy, or None."""
        raise NotImplementedError

    def open_v2_dir(self):
        """An fd of v2_dir() for clone3(CLONE_INTO_CGROUP), or None."""
        d = self.v2_dir()
        if d is None:
            return None
        try:
            return os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None  # the caller forks as usual and joins by writing

    # -- lifecycle ----------------------------------------------------------
    def create(self, intend=None):
        """Make the cgroup (joining any part that exists) and apply resources.
        `intend(dirs, leaves)` is called before the first mkdir with every
        directory about to be made (shallowest first) and the container's
        own cgroups: the caller records them durably (write-ahead), so that
        a create killed at any instant, even between a mkdir and its
        record, leaves nothing `delete --force` does not find."""
        if intend is not None:
            intend(self.missing_dirs(), self.dirs())
        self._create()

    def missing_dirs(self):
        """Directories of the cgroup (and its ancestors) that do not exist."""
        out = []
        for d in self.dirs():
            missing = []
            p = d
            while p not in out and not os.path.isdir(p):
                missing.append(p)
                parent = os.path.dirname(p)
                if parent == p:
                    break
                p = parent
            out.extend(reversed(missing))
        return out

    def _create(self):
        try:
            for d in self.dirs():
                self._make(d)
            if self.resources is not None:
                self._apply(self.resources)
        except BaseException:
            self._remove_created()
            raise

    def check_reuse(self):
        """runc's checks on a cgroup that exists before create: a frozen
        one is refused (the init would stop in it and create would hang),
        a non-empty one is used, with a warning."""
        pids = self.pids() if self.exists() else ()
        if pids:
            from ..log import logger

            logger().warning("container's cgroup is not empty: %d process(es) found" % len(pids))
        # every hierarchy's freezer, not only the one exists() looks at
        if self.is_frozen():
            raise CgroupError("container's cgroup unexpectedly frozen")

    def _make(self, d):
        try:
            fs.mkdirs(d, self.created)
        except OSError as e:
            raise CgroupError("create cgroup %s: %s" % (d, e.strerror), e.errno) from None

    def set(self, resources):
        """Apply resources; laid over those applied before (runc's update)."""
        if resources is None:
            return
        merged = resources if self.resources is None else self.resources.merge(resources)
        self._apply(merged)
        self.resources = merged

    def _apply(self, resources):
        raise NotImplementedError

    def add_pid(self, pid):
        for d in self.dirs():
            self._join(d, "cgroup.procs", pid)

    def join_self(self):
        """Move the calling (single-threaded) process into the cgroup."""
        if not self.v2_placed:
            self.add_pid(os.getpid())

    def _join(self, d, name, value):
        try:
            fs.write(d, name, value)
        except CgroupError as e:
            if self.rootless and e.errno in (errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOENT):
                return
            raise CgroupError("join cgroup %s: %s" % (d, str(e).rsplit(": ", 1)[-1]), e.errno) from None

    def pids(self):
        d = self.procs_dir()
        if d is None or not os.path.isdir(d):
            return []
        return sorted(set(fs.procs(d)))

    def exists(self):
        d = self.procs_dir()
        return d is not None and os.path.isdir(d)

    def kill_all(self, sig):
        """Signal every process in the cgroup, frozen first so that none can
        fork a child we would miss."""
        frozen = False
        try:
            if self.can_freeze() and not self.is_frozen():
                self.freeze()
                frozen = True
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    def destroy(self):
        """Remove what create() made, deepest first, waiting briefly for
        exiting tasks; cgroups we only joined are left alone."""
        self._remove_created()

    def _remove_created(self):
        own = {"paths": getattr(self, "paths", None), "path": getattr(self, "path", None)}
        fs.remove_created(self.created, fs.leaf_dirs(own))
        self.created = []

    def wait_empty(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- persistence --------------------------------------------------------
    def to_dict(self):
        return {
            "version": self.version,
            "created": list(self.created),
            "resources": self._resources_dict(),
            "rootless": self.rootless,
        }

    def _resources_dict(self):
        r = self._resources
        if isinstance(r, dict):
            return dict(r)  # as loaded, never parsed
        return r.to_dict() if r is not None else None

    @staticmethod
    def _common_from_dict(d):
        res = d.get("resources")
        return dict(resources=dict(res) if res is not None else None,
                    rootless=bool(d.get("rootless")), created=d.get("created") or [])
