"""`create`: the runtime side of making a container (see process.py for the
children).  Nothing is touched before the config is validated, and any
failure undoes everything made so far."""
import os

from . import linux
from .errors import ConfigError, PyruncError
from .state import StateDir, rfc3339_now, write_atomic


_LOADED = {}


def load_spec(bundle):
    """(raw dict, Spec) of <bundle>/config.json, validated.  Memoized per
    file identity: a foreground `run` looks at the config before create."""
    from .spec import Spec

    from .validate import load_config

    path = os.path.join(bundle, "config.json")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("no such file (bundle %s)" % bundle) from None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _LOADED:
        raw = load_config(path)
        _LOADED[key] = (raw, Spec(raw))
    return _LOADED[key]


def create_container(cls, cid, bundle, root, opts):
    from .container import CREATED, CREATING, check_bundle_spec
    from .namespaces import NamespacePlan
    from .process import check_inherited_fds

    listen_fds = check_inherited_fds(opts.preserve_fds)  # before we open any fd
    bundle = os.path.abspath(bundle or ".")
    # Paths given on the command line are relative to the caller's cwd,
    # not to the bundle we chdir into below.
    if opts.pid_file:
        opts.pid_file = os.path.abspath(opts.pid_file)
    if opts.console_socket:
        opts.console_socket = os.path.abspath(opts.console_socket)
    sd = StateDir(root, cid)  # validates the id first
    raw, spec = load_spec(bundle)
    plan = NamespacePlan(spec.linux)
    check_bundle_spec(spec, plan)
    if opts.no_pivot and spec.linux.rootfs_propagation in ("private", "rprivate"):
        # runc refuses it: after the MS_MOVE, a private root would make
        # unmounting the host's mounts below it never propagate back
        raise ConfigError("linux.rootfsPropagation: %s is not safe without pivot_root (--no-pivot)"
                          % spec.linux.rootfs_propagation)
    # Relative paths in the config (root.path, bind sources) are relative
    # to the bundle, as for runc.
    os.chdir(bundle)
    rootfs = os.path.realpath(os.path.join(bundle, spec.root.path))
    if not os.path.isdir(rootfs):
        raise ConfigError("root.path: %s: no such directory" % spec.root.path)
    console_channel = _no_console
    if spec.process.terminal or opts.console_socket or getattr(opts, "console_fd", None) is not None:
        from .console import console_channel

    console_fd = console_channel(spec.process, opts)
    notify_fds = notify_channel(spec)
    join_fds = plan.open_join_fds()
    idmapped = {}

    sd.make()
    container = cls(sd, None)
    made = _Undo()
    try:
        container.record = {
            "id": cid, "status": CREATING, "pid": 0, "init_start": None,
            "bundle": bundle, "rootfs": rootfs, "created": rfc3339_now(),
            "owner": "", "annotations": spec.annotations, "cgroup": None,
            "hook_kinds": [k for k, hooks in spec.hooks.by_kind.items() if hooks],
        }
        if opts.no_new_keyring:
            container.record["no_new_keyring"] = True  # exec's processes too, as runc
        container.save()  # first, so that the state dir never lacks a record for long
        write_atomic(sd.file("config.json"), _config_as_taken(bundle, raw), 0o600)
        make_exec_fifo(sd.fifo, spec)
        mgr = _make_cgroup(spec, cid, opts, sd)
        if mgr is not None:
            made.cgroup = mgr
            container.record["cgroup"] = mgr.to_dict()
        container.save()
        if spec.linux.intel_rdt is not None:
            _make_rdt_group(spec, container)
        if not plan.has("mount"):
            # no mount namespace: the init mounts in ours, under the rootfs
            sd.intend("mounts_under", mount_roots(spec, rootfs))
        if any(m.idmapped for m in spec.mounts):
            from .idmap import make_trees

            idmapped = make_trees(spec)  # with the host's privileges, before the fork
        _spawn(container, spec, plan, join_fds, rootfs, mgr, opts, made,
               console_fd=console_fd, listen_fds=listen_fds, idmapped=idmapped, notify_fds=notify_fds)
        container.record["status"] = CREATED
        container.save()
        if opts.pid_file:
            write_pid_file(opts.pid_file, container.pid)
        made.sync.send("C")
        made.sync.close()
        made.sync = None
        return container
    except BaseException:
        made.undo(container)
        sd.remove()
        raise
    finally:
        made.close_net()
        for fd in ([fd for _, fd in join_fds] + list(idmapped.values()) + list(notify_fds)
                   + ([console_fd] if console_fd is not None else [])):
            try:
                os.close(fd)
            except OSError:
                pass


def mount_roots(spec, rootfs):
    """Where a container without a mount namespace mounts on the host: at
    or under rootfs/<destination> of its mounts, /dev (device nodes),
    masked and read-only paths.  Never the rootfs itself or /."""
    if rootfs == "/":
        return []
    dests = [m.destination for m in spec.mounts] + ["/dev"]
    dests += list(spec.linux.masked_paths) + list(spec.linux.readonly_paths)
    roots = {os.path.normpath(rootfs + "/" + d.strip("/")) for d in dests if d.strip("/")}
    return sorted(r for r in roots if r.startswith(rootfs + "/"))


def make_exec_fifo(path, spec):
    """The fifo `start` opens to release the init; writable by the
    container's root, who may be an unprivileged host uid."""
    os.mkfifo(path, 0o600)
    os.chown(path, host_id(spec.linux.uid_mappings, 0), host_id(spec.linux.gid_mappings, 0))
    os.chmod(path, 0o622)


def host_id(mappings, cid):
    for m in mappings:
        if m.container_id <= cid < m.container_id + m.size:
            return m.host_id + cid - m.container_id
    return cid if not mappings else -1


def _no_console(process, opts):
    return None


def notify_channel(spec):
    """(runtime end, init end) of a socket pair for the seccomp notify fd,
    or ().  An unprivileged runtime may not pidfd_getfd its non-dumpable
    init (root does, as runc): the init sends the fd itself."""
    if os.geteuid() == 0 or spec.linux.seccomp_doc is None or not spec.linux.seccomp.uses_notify:
        return ()
    from .process import notify_socketpair

    return notify_socketpair()


def _config_as_taken(bundle, raw):
    """What the later verbs read (exec's seccomp filter, delete's hooks):
    the bundle's bytes, or the document as runc's reading rewrote it when
    pyrunc.compat changed anything (its warnings are then not repeated)."""
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        data = f.read()
    from .compat import rewritten

    if not rewritten(raw):
        return data
    from .jsonio import dumps

    return dumps(raw).encode()


def write_pid_file(path, pid):
    """A bare number, no newline, written atomically (runc's format)."""
    path = os.path.abspath(path)
    write_atomic(path, str(pid).encode(), 0o644)


def _make_cgroup(spec, cid, opts, sd):
    from .cgroups import manager_for

    mgr = manager_for(spec.linux.cgroups_path, cid, container_resources(spec),
                      rootless=bool(opts.rootless), systemd=opts.systemd_cgroup,
                      annotations=spec.annotations if opts.systemd_cgroup else None)
    if mgr is not None:
        mgr.check_reuse()
        # write-ahead: the journal names every directory before its mkdir
        mgr.create(intend=lambda dirs, leaves: sd.intend("cgroup", dirs, leaves))
        if opts.rootless and set(spec.linux.resources_doc or ()) - {"devices"}:
            from .log import logger

            logger().warning("rootless container: linux.resources apply only in cgroups "
                             "delegated to this user; the others are skipped")
    return mgr


def _make_rdt_group(spec, container):
    """The resctrl groups, each recorded in state.json as soon as it is
    made: delete (or this create's undo) removes exactly those."""
    from .intelrdt import prepare

    def record(group):
        container.record["intel_rdt"] = group.to_dict()
        container.save()

    def intend(path):
        container.dir.intend("intel_rdt", [path])  # write-ahead, before its mkdir

    record(prepare(spec.linux.intel_rdt, container.id, record, intend))


def container_resources(spec):
    """linux.resources with runc's device rules: the config's rules, then
    runc's default allow-list (cgroups.with_default_devices).  A
    linux.devices node gets no rule of its own: as in runc, the config's
    resources.devices say whether it may be opened."""
    from .cgroups import with_default_devices
    from .cgroups.resources import Resources

    doc = dict(spec.linux.resources_doc or {})
    doc["devices"] = list(doc.get("devices") or ())
    return with_default_devices(Resources.from_dict(doc), spec.linux.devices)


class _Undo:
    """What a failed create must take back."""

    __slots__ = ("cgroup", "pids", "sync", "hooks_ran", "child", "net")

    def __init__(self):
        self.cgroup = None
        self.pids = []
        self.sync = None
        self.hooks_ran = False
        self.child = 0  # an init forked directly is ours to reap
        self.net = None  # (fd of the container's netns, [moved netDevices])

    def close_net(self):
        if self.net is not None:
            os.close(self.net[0])
            self.net = None

    def undo(self, container):
        from .container import wait_gone

        if self.net is not None and self.net[1]:
            # While the init lives its namespace does: give the devices back
            # before closing the sync pipe (the init exits on its EOF).
            from .log import logger
            from .netdevices import move_back

            move_back(self.net[0], self.net[1], logger().warning)
        self.close_net()
        if self.sync is not None:
            self.sync.close()
        for pid, start in self.pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            wait_gone(pid, start)
        if self.child:
            _reap(self.child)
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except OSError:
                pass
        mounts_under = container.dir.read_journal().get("mounts_under")
        if mounts_under:
            from .reclaim import unmount_under

            unmount_under(mounts_under)
        rdt = (container.record or {}).get("intel_rdt")
        if rdt:
            from .intelrdt import remove_recorded
            from .log import logger

            remove_recorded(rdt, logger().warning)
        if self.hooks_ran:
            # The spec's failure path continues with delete, poststop included:
            # what createRuntime hooks set up (a network lease) is undone.
            hooks = container.hooks("poststop")
            if hooks:
                from .hooks import run_hooks
                from .log import logger

                run_hooks("poststop", hooks, container.hook_state("stopped"), warn=logger().warning)


def _spawn(container, spec, plan, join_fds, rootfs, mgr, opts, made, console_fd=None, listen_fds=0,
           idmapped=None, notify_fds=()):
    from .process import InitContext, stage1_main

    notify_ours, notify_theirs = notify_fds or (None, None)
    fifo_fd = os.open(container.dir.fifo, linux.O_PATH | os.O_CLOEXEC)
    ctx = InitContext(spec=spec, rootfs=rootfs, plan=plan, join_fds=join_fds,
                      fifo_fd=fifo_fd, no_pivot=opts.no_pivot,
                      no_new_keyring=opts.no_new_keyring,
                      preserve_fds=listen_fds + (opts.preserve_fds or 0), listen_fds=listen_fds,
                      console_fd=console_fd,
                      cgroup_manager=mgr, container_id=container.id, idmapped=idmapped,
                      notify_sock=notify_theirs,
                      close_fds=[container.dir._lock_fd] + ([notify_ours] if notify_fds else []))
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    # The runtime must not be dumpable (ptrace-able, /proc/pid/exe readable)
    # by anything in the container it is about to create (CVE-2019-5736).
    # Unprivileged, the parent can only write the child's id maps while the
    # child is dumpable: then both drop it right after the maps (stage 1
    # has only an empty user namespace by then).
    unprivileged = os.geteuid() != 0
    if not unprivileged:
        linux.set_dumpable(False)
    if opts.one_shot and not unprivileged and _init_can_be_forked_directly(plan):
        return _spawn_direct(container, spec, ctx, made, fifo_fd, (p2c_r, p2c_w, c2p_r, c2p_w))
    pid, sync = _fork_child(os.fork, stage1_main, ctx, fifo_fd, (p2c_r, p2c_w, c2p_r, c2p_w))
    made.sync = sync
    try:
        if plan.new_user:
            sync.expect("U")
            from .namespaces import write_id_maps

            write_id_maps(pid, spec.linux.uid_mappings, spec.linux.gid_mappings,
                          deny_setgroups=os.geteuid() != 0)
        if unprivileged:
            linux.set_dumpable(False)
        if mgr is not None:
            mgr.add_pid(pid)
        sync.send("G")
        init_pid = int(sync.expect("P"))
    except BaseException:
        # Stage 1 may be blocked waiting for "G": reaping it without this
        # would wait forever (a failed cgroup join hung create).
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        raise
    finally:
        _reap(pid)
    _finish_spawn(container, spec, sync, made, init_pid, notify_ours)


def _init_can_be_forked_directly(plan):
    """Without user and time namespaces nothing has to happen between
    entering the namespaces and forking pid 1 that the parent cannot do
    for itself (a user namespace must exist before the others, owning them;
    time offsets must be written before the first process enters)."""
    return not plan.has("user") and not plan.has("time")


def _spawn_direct(container, spec, ctx, made, fifo_fd, pipes):
    """One fork instead of two: the parent enters the container's pid
    namespace for its children only (unshare/setns CLONE_NEWPID changes
    pid_for_children, not the caller), forks the init as that namespace's
    pid 1, and returns to its own at once."""
    from .namespaces import fork_into_pid_ns
    from .process import direct_init_main

    def fork():
        return fork_into_pid_ns(dict(ctx.join_fds).get("pid"), new="pid" in ctx.plan.new_types,
                                cgroup=ctx.cgroup_manager)

    pid, made.sync = _fork_child(fork, direct_init_main, ctx, fifo_fd, pipes)
    made.child = pid  # the init joins its cgroup itself (join_self)
    _finish_spawn(container, spec, made.sync, made, pid)


def _fork_child(fork, child_main, ctx, fifo_fd, pipes):
    """fork() a child that runs child_main(ctx, its Sync) and never returns;
    -> (pid, the parent's Sync).  Each side closes the other's pipe ends."""
    from .process import Sync

    p2c_r, p2c_w, c2p_r, c2p_w = pipes
    pid = fork()
    if pid == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        child_main(ctx, Sync(p2c_r, c2p_w))
        os._exit(1)
    os.close(p2c_r)
    os.close(c2p_w)
    os.close(fifo_fd)
    return pid, Sync(c2p_r, p2c_w)


def _finish_spawn(container, spec, sync, made, init_pid, notify_sock=None):
    container.record["pid"] = init_pid
    container.record["init_start"] = start = _start_time_or_fail(init_pid)
    made.pids.append((init_pid, start))
    container.save()

    sync.expect("H")
    if spec.linux.intel_rdt is not None:
        from .intelrdt import Group, add_pid

        add_pid(Group.from_dict(container.record["intel_rdt"]), init_pid)
    if spec.linux.net_devices:
        _move_net_devices(spec, made, init_pid)
    made.hooks_ran = True
    _run_runtime_hooks(container, spec)
    sync.send("G")
    from .jsonio import dumps

    doc = container.hook_state("creating")
    if not (spec.hooks.get("createContainer") or spec.hooks.get("startContainer")):
        doc.pop("annotations", None)  # only the init's hooks read this state: keep it short
    sync.send("S", dumps(doc))
    tag, payload = sync.recv()
    if tag == "N":
        fd = _take_notify_fd(init_pid, payload, notify_sock)
        _seccomp_to_listener(spec, sync, fd, container.hook_state("creating"))
        tag, payload = sync.recv()
    if tag != "R":
        _unexpected(tag, payload)


def _move_net_devices(spec, made, init_pid):
    """The init has its network namespace: move linux.netDevices into it,
    recording each device in `made` as soon as it is moved (a failed
    create's undo gives them back)."""
    from .netdevices import move_in

    joined = next((ns.path for ns in spec.linux.namespaces if ns.type == "network" and ns.path), None)
    # Held open until create ends: the namespace outlives an init that dies
    # half-way, and a failed create gives the devices back through it.
    try:
        made.net = (os.open(joined or "/proc/%d/ns/net" % init_pid, os.O_RDONLY | os.O_CLOEXEC), [])
    except OSError as e:
        raise PyruncError("linux.netDevices: the container's network namespace: %s" % os.strerror(e.errno)) from None
    move_in(spec, made.net[0], made.net[1])


def _take_notify_fd(pid, payload, sock):
    """The init loaded a notify filter: our copy of its fd, taken with
    pidfd_getfd (`payload` is its number) or received on `sock` (sent by
    the init before it said so)."""
    from .security.seccomp import fetch_fd, recv_fd

    if sock is None:
        return fetch_fd(pid, int(payload))
    fd, _ = recv_fd(sock)
    if fd is None:
        raise PyruncError("container init did not send its seccomp notify fd")
    return fd


def _seccomp_to_listener(spec, sync, fd, state):
    """Let the init go on, hand its notify fd (closed here) to
    linux.seccomp.listenerPath with the container state (runc's order)."""
    from .security.seccomp import send_to_listener

    sec = spec.linux.seccomp
    try:
        sync.send("n")
        send_to_listener(fd, sec.listener_path, state, sec.listener_metadata)
    finally:
        os.close(fd)


def _unexpected(tag, payload):
    from .process import SyncError, child_error

    if tag == "E":
        raise child_error(payload)
    if tag == "EOF":
        raise SyncError("container init exited unexpectedly")
    raise SyncError("unexpected message %r from container init" % tag)


def _start_time_or_fail(pid):
    from .procfs import start_time

    start = start_time(pid)
    if start is None:
        raise PyruncError("container init exited unexpectedly")
    return start


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _run_runtime_hooks(container, spec):
    kinds = [k for k in ("prestart", "createRuntime") if spec.hooks.get(k)]
    if not kinds:
        return
    from .hooks import run_hooks

    state_doc = container.hook_state("creating")
    for kind in kinds:
        run_hooks(kind, spec.hooks.get(kind), state_doc)
