"""The container lifecycle: create, start, state, kill, delete (and the
cgroup-backed verbs).  The library face of pyrunc; the CLI is a thin layer.

    from pyrunc import Container
    c = Container.create("web", "/path/to/bundle")
    c.start()
    c.state()["status"]      # 'running'
    c.kill("KILL"); c.delete()
"""
from . import lazyos as os  # os without its import cost (see lazyos)

from . import OCI_VERSION
from .errors import ContainerNotFound, PyruncError, StateDamaged, StateError
from .procfs import is_alive, start_time, wait_gone
from .state import CREATED, CREATING, PAUSED, RUNNING, STOPPED, StateDir  # noqa: F401  (statuses re-exported)


def _log():
    from .log import logger

    return logger()


class CreateOptions:
    """create's flags.  `one_shot`: the caller is a short-lived process (the
    CLI: create exits at once, orphaning the init; run waits for it).  Then
    the init may be the caller's own child, which saves a fork when no user
    or time namespace needs the two-stage spawn, and the caller's cwd stays
    in the bundle, as runc's does (hooks run there).  A long-lived library
    caller keeps the default: the init is never its child (nor its zombie)
    and its working directory is given back."""

    __slots__ = ("pid_file", "console_socket", "no_pivot", "no_new_keyring", "preserve_fds",
                 "systemd_cgroup", "rootless", "one_shot")

    def __init__(self, pid_file=None, console_socket=None, no_pivot=False, no_new_keyring=False,
                 preserve_fds=0, systemd_cgroup=False, rootless=None, one_shot=False):
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.one_shot = one_shot


class Container:
    __slots__ = ("id", "dir", "record", "damage")

    def __init__(self, statedir, record, damage=None):
        self.id = statedir.id
        self.dir = statedir
        self.record = record or {}
        self.damage = damage  # the StateDamaged error when loaded with damaged=True

    # -- loading -------------------------------------------------------------
    @classmethod
    def load(cls, cid, root=None, lock=True, damaged=False):
        """The container `cid`; its state.json must be sound (StateDamaged,
        one line, otherwise) unless `damaged`: then a damaged record loads
        as an empty one, with the error in .damage (delete uses this)."""
        sd = StateDir(root, cid)
        if lock:
            sd.open()
        elif not sd.exists():
            raise ContainerNotFound(cid)
        try:
            return cls(sd, sd.read_state())
        except StateDamaged as e:
            if not damaged:
                raise
            return cls(sd, None, e)

    # -- status ----------------------------------------------------------------
    @property
    def pid(self):
        return self.record.get("pid") or 0

    def status(self):
        rec = self.record
        if self.damage is not None:
            return STOPPED  # nothing in it can be trusted: delete finds the rest by cgroup
        if not rec:
            return CREATING  # a create holding the lock, before its first record
        if rec.get("status") == CREATING:
            return CREATING if is_alive(self.pid, rec.get("init_start")) else STOPPED
        if not is_alive(self.pid, rec.get("init_start")):
            return STOPPED
        cg = rec.get("cgroup")
        if cg:
            from .cgroups import holds, is_frozen

            if not holds(cg, self.pid):
                return STOPPED  # the pid names a process outside the container
        if os.path.exists(self.dir.fifo):
            return CREATED
        if cg and is_frozen(cg):
            return PAUSED
        return RUNNING

    def oci_state(self, status=None):
        """The OCI state document, keys in runc's order."""
        rec = self.record
        status = status or self.status()
        doc = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": rec.get("bundle", ""),
            "rootfs": rec.get("rootfs", ""),
            "created": rec.get("created", ""),
            "owner": rec.get("owner", ""),
        }
        if rec.get("annotations"):
            doc["annotations"] = rec["annotations"]
        return doc

    def state(self):
        return self.oci_state()

    def hook_state(self, status):
        """State given to hooks on stdin (spec: the state of the container)."""
        doc = self.oci_state(status)
        doc["pid"] = self.pid
        return doc

    # -- helpers -----------------------------------------------------------------
    def hooks(self, kind):
        """The config's hooks of one kind.  create records which kinds the
        config has, so start and delete parse config.json only when needed."""
        kinds = self.record.get("hook_kinds")
        if kinds is not None and kind not in kinds:
            return []
        spec = self.spec()
        return spec.hooks.get(kind) if spec else []

    def spec(self):
        from .spec import Spec

        cfg = self.dir.read_json("config.json")
        return Spec(cfg) if cfg is not None else None

    def cgroup_manager(self):
        d = self.record.get("cgroup")
        if not d:
            return None
        from .cgroups import load_manager

        return load_manager(d)

    def save(self):
        self.dir.write_state(self.record)

    # -- create ------------------------------------------------------------------
    @classmethod
    def create(cls, cid, bundle, root=None, options=None):
        from .create import create_container

        options = options or CreateOptions()
        if options.one_shot:
            return create_container(cls, cid, bundle, root, options)
        cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
        try:
            return create_container(cls, cid, bundle, root, options)
        finally:
            os.fchdir(cwd)
            os.close(cwd)

    # -- start ---------------------------------------------------------------------
    def start(self):
        status = self.status()
        if status != CREATED:
            if status == STOPPED:
                raise StateError("cannot start a container that has stopped")
            raise StateError("cannot start an already %s container" % status)
        data = self._release_init()
        try:
            os.unlink(self.dir.fifo)
        except FileNotFoundError:
            pass
        if data[:1] != b"0" or len(data) > 1:
            msg = data[1:].decode(errors="replace") if data[:1] == b"0" else data.decode(errors="replace")
            # runc's prefix, which tools read before the exec error
            raise PyruncError("unable to start container process: "
                              + (msg or "container init exited before running the process"))
        hooks = self.hooks("poststart")
        if hooks:
            from .hooks import run_hooks

            run_hooks("poststart", hooks, self.hook_state(RUNNING), warn=_log().warning)

    def _release_init(self):
        """Open the exec fifo (waking the init), read until it closes: one
        '0' byte, then EOF at execve, or an error text if the init failed."""
        import select

        fd = os.open(self.dir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            data = b""
            while True:
                events = poller.poll(100)
                if events:
                    chunk = os.read(fd, 4096)
                    if chunk:
                        data += chunk
                        continue
                    if data:
                        return data  # writer closed: exec'd or died
                    # No writer has connected yet.
                if not is_alive(self.pid, self.record.get("init_start")):
                    try:
                        data += os.read(fd, 4096)
                    except BlockingIOError:
                        pass
                    return data
                if not events:
                    continue
                # POLLHUP with no writer yet: avoid spinning.
                import time

                time.sleep(0.005)
        finally:
            os.close(fd)

    # -- kill -------------------------------------------------------------------------
    def kill(self, sig=15, all_processes=False):
        """`sig`: a number or a name as the CLI takes it ("TERM", "SIGKILL", "9")."""
        if not isinstance(sig, int):
            from .signals import parse_signal

            sig = parse_signal(sig)
        status = self.status()
        if all_processes:
            mgr = self.cgroup_manager()
            if mgr is not None:
                # Also when the init has exited: a child it left (no pid
                # namespace of its own) is still in the cgroup.  runc does
                # the same; containerd's killall before delete relies on it.
                if mgr.exists():
                    self._kill_all(mgr, sig)
                return
            if status == STOPPED:
                return
        elif status == STOPPED:
            raise StateError("container not running")
        signal_process(self.pid, self.record.get("init_start"), sig)

    # -- delete -----------------------------------------------------------------------
    def delete(self, force=False):
        """Kill what is left of the container and take back what its create
        made.  A stopped container's cgroups may still hold processes (its
        init had no pid namespace of its own and left a child): they are
        killed, as runc does.  Works from a damaged state.json too (see
        pyrunc.reclaim); what cannot be removed in bounded time is one
        error line, and the state directory stays for another try."""
        from . import reclaim

        status = self.status()
        if status in (RUNNING, PAUSED) and not force:
            raise StateError("cannot delete container %s that is not stopped: %s" % (self.id, status))
        # config.json (maybe megabytes) is parsed only when state.json
        # cannot say where the cgroups are or whose their members are
        config = self._raw_config() if self.damage is not None else None
        left = reclaim.gather(self.dir, None if self.damage else self.record, config)
        if config is None and any(d not in left.ours for d in left.leaves):
            config = self._raw_config()
        if self.damage is not None and not force and reclaim.members(left.leaves):
            raise StateError("%s; its cgroups still hold processes (delete --force kills them)" % self.damage)
        if status != STOPPED and self._init_is_member(left.leaves):
            signal_process(self.pid, self.record.get("init_start"), 9, quiet=True)
        targets = left.leaves if self._kills_all_members(config) else [d for d in left.leaves if d in left.ours]
        owns = reclaim.owner(self.pid, self.record.get("init_start")) if left.shared else None
        alive = reclaim.kill_members(targets, shared=left.shared, owns=owns)
        if status == PAUSED:
            reclaim.thaw(left.leaves)  # also where no member was ours to kill: the init must run to die
        if status != STOPPED:
            wait_gone(self.pid, self.record.get("init_start"))
        # Also for a create that died half-way (SIGKILL): its createRuntime
        # hooks may have set things up (a network lease) that poststop undoes.
        hooks = self._poststop_hooks(config)
        if hooks:
            from .hooks import run_hooks

            run_hooks("poststop", hooks, self.hook_state(STOPPED), warn=_log().warning)
        stays = self._stop_systemd_unit(config, left)
        stays += reclaim.remove_dirs(left) + reclaim.remove_rdt(left.rdt) + reclaim.unmount_under(left.mounts_under)
        if alive or stays:
            raise PyruncError("delete %s: left in place: %s" % (self.id, reclaim.describe(alive, stays)))
        self.dir.remove()

    def _kill_all(self, mgr, sig):
        """`kill --all`: every member of the container's cgroups, except in
        one that held older processes (a host cgroup it joined): there
        only the container's own (pyrunc.reclaim.owner)."""
        from . import reclaim
        from .cgroups.fs import leaf_dirs

        leaves = sorted(leaf_dirs(self.record.get("cgroup") or {}))
        if not reclaim.shared_leaves(leaves, reclaim.container_birth(self.dir, self.record)):
            mgr.kill_all(sig)
            return
        reclaim.signal_owned(leaves, sig, reclaim.owner(self.pid, self.record.get("init_start")))

    def _stop_systemd_unit(self, config, left):
        """--systemd-cgroup: StopUnit of the container's scope (runc's
        destroy), named by the record, else by a damaged record's config
        ("slice:prefix:name").  Never a unit that existed before the
        container (the record says "joined"; with a damaged one, its
        cgroups hold older processes).  -> [(unit, why)] if it could not
        be stopped."""
        cg = self.record.get("cgroup") or {}
        unit = cg.get("unit") if cg.get("driver") == "systemd" and not cg.get("joined") else None
        if unit is None and self.damage is not None and not left.shared:
            unit = _systemd_unit_of(config if config is not None else self._raw_config(), self.id)
        if not unit:
            return []
        from .cgroups.systemd import Systemd

        try:
            sd = Systemd()
            try:
                sd.stop_unit(unit, _log().warning)
            finally:
                sd.close()
        except (PyruncError, OSError) as e:
            return [(unit, str(e))]
        return []

    def _init_is_member(self, leaves):
        """The recorded init is in the container's cgroups (when it has
        any): a pid and start time alone are not enough to kill for."""
        existing = [d for d in leaves if os.path.isdir(d)]
        if not existing or self.record.get("status") == CREATING:
            return True  # no cgroup, or a create killed before the init joined it
        from .reclaim import members

        return self.pid in members(existing)

    def _raw_config(self):
        try:
            return self.dir.read_json("config.json")
        except (OSError, ValueError, SystemError, RecursionError):
            return None

    def _kills_all_members(self, config):
        """runc's rule: every member of the container's cgroups dies with it
        unless it has a pid namespace of its own (then they die with its
        init, and a cgroup it merely joined may hold others).  With a
        damaged state.json nothing tells them apart: all of them."""
        if self.damage is not None or not isinstance(config, dict):
            return True
        namespaces = (config.get("linux") or {}).get("namespaces") if isinstance(config.get("linux"), dict) else None
        for ns in namespaces if isinstance(namespaces, list) else ():
            if isinstance(ns, dict) and ns.get("type") == "pid":
                return bool(ns.get("path"))
        return True

    def _poststop_hooks(self, config):
        if self.damage is None:
            return self.hooks("poststop")
        config = config if config is not None else self._raw_config()
        hooks = config.get("hooks") if isinstance(config, dict) else None
        if not isinstance(hooks, dict) or not hooks.get("poststop"):
            return []
        try:
            return self.spec().hooks.get("poststop")
        except PyruncError:
            return []

    # -- cgroup verbs --------------------------------------------------------------
    def _require_cgroup(self):
        mgr = self.cgroup_manager()
        if mgr is None:
            raise StateError("container has no cgroup")
        return mgr

    def pause(self):
        status = self.status()
        if status not in (RUNNING, CREATED):
            raise StateError("container not running")
        self._require_cgroup().freeze()

    def resume(self):
        if self.status() != PAUSED:
            raise StateError("container not paused")
        self._require_cgroup().thaw()

    def pids(self):
        if self.status() == STOPPED:
            return []
        mgr = self.cgroup_manager()
        return mgr.pids() if mgr is not None else [self.pid]


def _systemd_unit_of(config, cid):
    """The scope a systemd-driven container would have, from its raw
    config, when systemd runs and cgroupsPath is "slice:prefix:name"."""
    linux = config.get("linux") if isinstance(config, dict) else None
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    if not isinstance(path, str) or path.count(":") != 2:
        return None
    from .cgroups import systemd_running

    if not systemd_running():
        return None
    from .cgroups.systemd import parse_cgroups_path, unit_name

    _slice, prefix, name = parse_cgroups_path(path, cid)
    return unit_name(prefix, name)


def signal_process(pid, expected_start, sig, quiet=False):
    """Signal `pid` only if it is still the process we started (pidfd pins
    it between the check and the signal)."""
    import _signal as signal

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        if quiet:
            return
        raise StateError("container not running") from None
    try:
        if expected_start is not None and start_time(pid) != expected_start:
            if quiet:
                return
            raise StateError("container not running")
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        if not quiet:
            raise StateError("container not running") from None
    finally:
        os.close(pidfd)
