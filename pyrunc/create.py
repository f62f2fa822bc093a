"""`create`: the runtime side of making a container (spawn.py forks the
init, child.py is the init, channel.py their messages).  Nothing is
touched before the config is validated, and any failure undoes everything
made so far."""
import os

from . import linux
from .errors import ConfigError, PyruncError
from .log import rfc3339_now
from .state import StateDir, write_atomic


def create_container(cls, cid, bundle, root, opts):
    from .child import InitJob
    from .namespaces import NamespacePlan
    from .process import check_inherited_fds
    from .state import CREATED, CREATING
    from .validate import check_spec, load_spec

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
    check_spec(spec, plan)
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
        job = InitJob(spec, rootfs, plan, -1, cid, no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring,
                      preserve_fds=opts.preserve_fds or 0, listen_fds=listen_fds, console_fd=console_fd,
                      cgroup_manager=mgr, idmapped=idmapped, notify_by_fd=notify_by_fd(spec))
        _spawn(container, job, join_fds, opts.one_shot, made)
        container.record["status"] = CREATED
        container.save()
        if opts.pid_file:
            write_pid_file(opts.pid_file, container.pid)
        from .channel import COMMIT

        made.channel.send(COMMIT)
        made.channel.close()
        made.channel = None
        return container
    except BaseException:
        made.undo(container)
        sd.remove()
        raise
    finally:
        made.close_net()
        for fd in ([fd for _, fd in join_fds] + list(idmapped.values())
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
    dests = [d for d in dests if d.strip("/")]
    roots = {os.path.normpath(rootfs + "/" + d.strip("/")) for d in dests}
    # A destination through a symlink in the rootfs is mounted where the
    # link leads (resolved inside the root): record that place too.
    from .rootfs import resolve_in_rootfs

    roots.update(os.path.normpath(rootfs + resolve_in_rootfs(rootfs, d)) for d in dests)
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


def notify_by_fd(spec):
    """An unprivileged runtime may not pidfd_getfd its non-dumpable init
    (root does, as runc): then the init sends the seccomp notify fd itself."""
    return os.geteuid() != 0 and spec.linux.seccomp is not None and spec.linux.seccomp.uses_notify


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

    mgr = manager_for(spec.linux.cgroups_path, cid, spec.linux.resources,
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


class _Undo:
    """What a failed create must take back."""

    __slots__ = ("cgroup", "pids", "channel", "hooks_ran", "child", "net")

    def __init__(self):
        self.cgroup = None
        self.pids = []
        self.channel = None
        self.hooks_ran = False
        self.child = 0  # an init forked directly is ours to reap
        self.net = None  # (fd of the container's netns, [moved netDevices])

    def close_net(self):
        if self.net is not None:
            os.close(self.net[0])
            self.net = None

    def undo(self, container):
        from .procfs import wait_gone

        if self.net is not None and self.net[1]:
            # While the init lives its namespace does: give the devices back
            # before closing the channel (the init exits on its EOF).
            from .log import logger
            from .netdevices import move_back

            move_back(self.net[0], self.net[1], logger().warning)
        self.close_net()
        if self.channel is not None:
            self.channel.close()
        for pid, start in self.pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            wait_gone(pid, start)
        if self.child:
            from .spawn import reap

            reap(self.child)
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


def _spawn(container, job, join_fds, one_shot, made):
    """Fork the init (spawn.spawn) and take it through the create messages
    up to READY."""
    from .child import Entry
    from .spawn import spawn

    spec, plan, mgr = job.spec, job.plan, job.cgroup_manager
    # A library caller (not one_shot) always gets stage 1: the init is never
    # its child.  Unprivileged, the id maps need stage 1 anyway.
    two_stage = not (one_shot and os.geteuid() == 0 and not plan.needs_stage1())
    job.fifo_fd = os.open(container.dir.fifo, linux.O_PATH | os.O_CLOEXEC)
    try:
        entry = Entry(two_stage, join_fds, new_flags=plan.new_flags, new_user=plan.new_user,
                      time_offsets=spec.linux.time_offsets if "time" in plan.new_types else None,
                      user_ns=plan.has("user"), cgroup=None if two_stage else mgr,
                      close_fds=[container.dir._lock_fd])
        spawned = spawn(entry, job, id_maps=(spec.linux.uid_mappings, spec.linux.gid_mappings),
                        join_cgroup=mgr.add_pid if two_stage and mgr is not None else None,
                        pidns=(dict(join_fds).get("pid"), "pid" in plan.new_types))
    finally:
        os.close(job.fifo_fd)
    made.channel = spawned.channel
    if spawned.ours:
        made.child = spawned.pid  # an init forked directly is ours to reap
    _finish_spawn(container, spec, spawned, made)


def _finish_spawn(container, spec, spawned, made):
    from .channel import HOOKS_DONE, MOUNTS_READY, NOTIFY_FD, READY, STATE, unexpected

    ch = spawned.channel
    init_pid = spawned.pid
    container.record["pid"] = init_pid
    container.record["init_start"] = start = _start_time_or_fail(init_pid)
    made.pids.append((init_pid, start))
    container.save()

    ch.expect(MOUNTS_READY)
    if spec.linux.intel_rdt is not None:
        from .intelrdt import Group, add_pid

        add_pid(Group.from_dict(container.record["intel_rdt"]), init_pid)
    if spec.linux.net_devices:
        _move_net_devices(spec, made, init_pid)
    made.hooks_ran = True
    _run_runtime_hooks(container, spec)
    ch.send(HOOKS_DONE)
    from .jsonio import dumps

    doc = container.hook_state("creating")
    if not (spec.hooks.get("createContainer") or spec.hooks.get("startContainer")):
        doc.pop("annotations", None)  # only the init's hooks read this state: keep it short
    ch.send(STATE, dumps(doc))
    tag, payload = ch.recv()
    if tag == NOTIFY_FD:
        from .spawn import to_listener

        to_listener(spawned, payload, spec.linux.seccomp, container.hook_state("creating"))
        tag, payload = ch.recv()
    if tag != READY:
        unexpected(tag, payload, "READY")


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


def _start_time_or_fail(pid):
    from .procfs import start_time

    start = start_time(pid)
    if start is None:
        raise PyruncError("container init exited unexpectedly")
    return start


def _run_runtime_hooks(container, spec):
    kinds = [k for k in ("prestart", "createRuntime") if spec.hooks.get(k)]
    if not kinds:
        return
    from .hooks import run_hooks

    state_doc = container.hook_state("creating")
    for kind in kinds:
        run_hooks(kind, spec.hooks.get(kind), state_doc)
