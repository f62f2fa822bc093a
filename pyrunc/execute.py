"""`exec`: run another process inside a running container.

The runtime checks the process, opens the init's namespaces
(namespaces.open_process_namespaces) and forks it with spawn.spawn, the
routine create uses for the init: straight into the container's pid
namespace, or (user or time namespaces) through a middle process; the
child joins the cgroup (or the runtime puts it in a --cgroup sub-cgroup),
enters the namespaces and becomes child.ExecJob: setsid → [pty] → keyring →
exec_process() (rlimits, caps, user, NNP, LSM, seccomp: the init's path).

The runtime learns the process's fate on the channel: EOF (its end is
close-on-exec) means execve succeeded; ERROR carries the exit code and
message.  In the foreground the runtime is a subreaper, so the process
becomes its child when the middle exits, and its exit status is ours.
"""
import os

from . import linux
from .errors import ConfigError, PyruncError, StateError


class ProcessOverrides:
    """What `exec` changes in the container's own process (runc's
    getProcess): the command line's --cwd, --env, --tty, --user, ..."""

    __slots__ = ("args", "cwd", "env", "terminal", "uid", "gid", "additional_gids", "apparmor_profile",
                 "selinux_label", "add_caps", "no_new_privileges")

    def __init__(self, args, cwd=None, env=(), terminal=False, uid=None, gid=None, additional_gids=(),
                 apparmor_profile=None, selinux_label=None, add_caps=(), no_new_privileges=False):
        self.args = list(args)
        self.cwd = cwd
        self.env = list(env)
        self.terminal = terminal
        self.uid = uid
        self.gid = gid
        self.additional_gids = list(additional_gids)
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label
        self.add_caps = list(add_caps)
        self.no_new_privileges = no_new_privileges


class ExecRequest:
    """One `exec`: the process (a process.json file, or overrides of the
    container's own process) and how to run it."""

    __slots__ = ("process_file", "overrides", "detach", "pid_file", "console_socket", "preserve_fds",
                 "cgroups", "ignore_paused", "no_new_keyring")

    def __init__(self, process_file=None, overrides=None, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, cgroups=(), ignore_paused=False, no_new_keyring=False):
        self.process_file = process_file
        self.overrides = overrides
        self.detach = detach
        self.pid_file = os.path.abspath(pid_file) if pid_file else None
        self.console_socket = os.path.abspath(console_socket) if console_socket else None
        self.preserve_fds = preserve_fds
        self.cgroups = list(cgroups or ())
        self.ignore_paused = ignore_paused
        self.no_new_keyring = no_new_keyring  # set from the container's record by exec_in


# -- the verb ------------------------------------------------------------------

def exec_in(cid, root, request):
    """`exec` into container `cid` under state root `root`: foreground, the
    process's exit code; detached, 0."""
    from .container import Container

    from .process import check_inherited_fds

    check_inherited_fds(request.preserve_fds, socket_activation=False)  # before any fd of ours exists
    c = Container.load(cid, root)
    cfg = c.dir.read_json("config.json")  # a fresh copy: changed freely below
    doc = process_document(request, cfg)
    request.no_new_keyring = bool(c.record.get("no_new_keyring"))
    return execute(c, doc, request, cfg)


def process_document(request, cfg):
    """The process document, checked (runc's rules, then the schema):
    `request.process_file`, or the container's own process with the
    request's overrides (runc's getProcess)."""
    from .validate import load_process, validate_process

    if request.process_file:
        doc = load_process(request.process_file)
        check_process_doc(doc, request.process_file)
        return doc
    doc = apply_overrides((cfg or {}).get("process") or {}, request.overrides)
    check_process_doc(doc)
    return validate_process(doc, "process")


def apply_overrides(p, o):
    p["args"] = list(o.args)
    if o.cwd:
        p["cwd"] = o.cwd
    if o.apparmor_profile:
        p["apparmorProfile"] = o.apparmor_profile
    if o.selinux_label:
        p["selinuxLabel"] = o.selinux_label
    if o.add_caps:
        caps = p.setdefault("capabilities", {})
        for cap in o.add_caps:
            for field in ("bounding", "effective", "permitted"):
                caps.setdefault(field, []).append(cap)
            # ambient needs inheritable: only where the config has that set
            if caps.get("inheritable") is not None:
                caps.setdefault("ambient", []).append(cap)
    p["env"] = list(p.get("env") or []) + o.env
    p["terminal"] = bool(o.terminal)
    if o.no_new_privileges:
        p["noNewPrivileges"] = True
    if o.uid is not None:
        user = p.setdefault("user", {})
        user["uid"] = o.uid
        if o.gid is not None:
            user["gid"] = o.gid
    for gid in o.additional_gids:
        p.setdefault("user", {}).setdefault("additionalGids", []).append(gid)
    return p


def check_process_doc(p, source="process"):
    """runc's validateProcessSpec."""
    if not p.get("args"):
        raise ConfigError("args: process args cannot be empty", source)
    cwd = p.get("cwd")
    if not cwd:
        raise ConfigError("cwd: property must not be empty", source)
    if not cwd.startswith("/"):
        raise ConfigError("cwd: must be an absolute path", source)


# -- exec ------------------------------------------------------------------------

def execute(c, doc, opts, cfg=None):
    """Run process document `doc` in container `c` (a loaded, locked
    Container; `cfg` its config.json when already read) as ExecRequest
    `opts` says.  Foreground: returns the exit code; detached: 0."""
    from .container import PAUSED, STOPPED
    from .spec import Process

    status = c.status()
    if status == STOPPED:
        raise StateError("cannot exec in a stopped container")
    if status == PAUSED and not opts.ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    proc = Process(doc)
    spec = _stored_spec(c, cfg)
    check_security(proc, spec)
    from .console import check_terminal

    check_terminal(proc.terminal, opts.detach, opts.console_socket)
    mgr = c.cgroup_manager()
    cgroup_dirs = target_cgroups(mgr, opts.cgroups)
    from .namespaces import open_process_namespaces

    ns_fds = open_process_namespaces(c.pid, c.record.get("init_start"))
    ours = console_fd = None
    try:
        if proc.terminal:
            from .console import connect_socket, socket_pair

            if opts.detach:
                console_fd = connect_socket(opts.console_socket)
            else:
                ours, console_fd = socket_pair()
        c.dir.unlock()  # other verbs may run while the process does
        forwarder = None
        if not opts.detach:
            from .signals import SignalForwarder

            forwarder = SignalForwarder()
        gpid = spawn_process(c, proc, spec, ns_fds, console_fd, mgr, cgroup_dirs, opts,
                             subreaper=not opts.detach)
        if forwarder is not None:
            forwarder.target(gpid)
    except BaseException:
        if ours is not None:
            os.close(ours)
        raise
    finally:
        for _, fd in ns_fds:
            try:
                os.close(fd)
            except OSError:
                pass  # closed by a failed fork path already
        if console_fd is not None:
            os.close(console_fd)
    if opts.pid_file:
        _write_pid_file_or_kill(opts.pid_file, gpid, ours)
    if opts.detach:
        return 0
    return wait_foreground(gpid, ours)


def _write_pid_file_or_kill(path, pid, console_sock):
    """runc writes --pid-file in the foreground too; when it cannot, the
    process it started is killed and exec fails (exit 255)."""
    from .create import write_pid_file
    from .spawn import reap

    try:
        write_pid_file(path, pid)
    except OSError as e:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        reap(pid)
        if console_sock is not None:
            os.close(console_sock)
        raise PyruncError("--pid-file %s: %s" % (path, e.strerror or e)) from None


def _stored_spec(c, cfg=None):
    """The container's own config (validated at create), typed."""
    if cfg is None:
        cfg = c.dir.read_json("config.json")
    if cfg is None:
        return None
    from .validate import typed_spec

    return typed_spec(cfg)


def check_security(proc, spec):
    """Refuse what the process cannot get, before anything is made."""
    if proc.capabilities is not None:
        from .security.capabilities import check

        check(proc.capabilities)
    if proc.apparmor_profile or proc.selinux_label:
        from .security.lsm import check_labels

        check_labels(proc)
    if proc.scheduler or proc.io_priority or proc.exec_cpu_affinity:
        from .security import process_attrs

        process_attrs.check(proc, spec.linux if spec else None)


def target_cgroups(mgr, subs):
    """Directories whose cgroup.procs the process joins: the container's
    cgroup, or (--cgroup) sub-cgroups of it: `path` for every hierarchy or
    `ctrl[,ctrl]:path` for some (cgroup v1)."""
    if mgr is None:
        if subs:
            raise PyruncError("--cgroup: the container has no cgroup")
        return None
    if not subs:
        return None  # mgr.add_pid: every hierarchy of the container
    by_ctrl = {}
    for arg in subs:
        ctrls, sep, path = arg.rpartition(":")
        for ctrl in (ctrls.split(",") if sep else [""]):
            if ctrl in by_ctrl:
                raise PyruncError("invalid --cgroup argument: %s (duplicate)" % arg)
            by_ctrl[ctrl] = path
    dirs = []
    if mgr.version == 2:
        if set(by_ctrl) - {""}:
            raise PyruncError("--cgroup: controller names are for cgroup v1; give one path")
        dirs.append(_sub_dir(mgr.path, by_ctrl[""]))
    else:
        for ctrl, base in mgr.paths.items():
            sub = by_ctrl.get(ctrl, by_ctrl.get(""))
            dirs.append(_sub_dir(base, sub) if sub is not None else base)
        unknown = set(by_ctrl) - set(mgr.paths) - {""}
        if unknown:
            raise PyruncError("--cgroup: unknown controller %s (not in the container's cgroup)"
                              % ", ".join(sorted(unknown)))
    return list(dict.fromkeys(dirs))


def _sub_dir(base, sub):
    path = os.path.normpath(os.path.join(base, sub.lstrip("/")))
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise PyruncError("--cgroup: %s is not a sub cgroup path (outside the container's cgroup)" % sub)
    if not os.path.isdir(path):
        # runc's words: tools match on them
        raise PyruncError("--cgroup: adding pid to cgroups: %s/cgroup.procs: no such file or directory" % path)
    return path


def spawn_process(c, proc, spec, ns_fds, console_fd, mgr, cgroup_dirs, opts, subreaper, kernel=linux):
    """Fork the process into container `c` (spawn.spawn) and wait for its
    execve: -> its host pid; raise with its own words if it could not be
    executed."""
    from .channel import EOF, ERROR, NOTIFY_FD, unexpected
    from .child import Entry, ExecJob
    from .spawn import reap, spawn, to_listener

    linux_spec = spec.linux if spec is not None else None
    listener = linux_spec.seccomp if linux_spec is not None else None
    if listener is not None and not listener.uses_notify:
        listener = None
    job = ExecJob(proc, linux_spec, c.id, console_fd=console_fd, preserve_fds=opts.preserve_fds,
                  no_new_keyring=opts.no_new_keyring,
                  notify_by_fd=listener is not None and os.geteuid() != 0)
    types = {t for t, _ in ns_fds}
    # Without user and time namespaces the process needs no middle: it is
    # forked straight into the container's pid namespace.
    self_join = cgroup_dirs is None and mgr is not None  # cheaper (V1Manager.join_self)
    entry = Entry("user" in types or "time" in types, ns_fds, user_ns="user" in types,
                  cgroup=mgr if self_join else None)
    rdt = c.record.get("intel_rdt")

    def join(pid):
        if not self_join:
            join_cgroups(pid, mgr, cgroup_dirs)
        if rdt:
            join_rdt_group(pid, rdt)

    if subreaper:
        kernel.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    spawned = spawn(entry, job, join_cgroup=join, pidns=(dict(ns_fds).get("pid"), False), kernel=kernel)
    ch = spawned.channel
    try:
        while True:
            tag, payload = ch.recv()
            if tag == NOTIFY_FD and listener is not None:
                to_listener(spawned, payload, listener, c.hook_state("running"), pid=spawned.pid)
                continue
            if tag == EOF:
                return spawned.pid  # execve succeeded (the channel is close-on-exec)
            if subreaper or spawned.ours:
                reap(spawned.pid)
            if tag == ERROR:
                from .errors import ExecError

                code, _, msg = payload.partition(" ")
                raise ExecError("unable to start container process: " + msg, int(code) if code.isdigit() else 1)
            unexpected(tag, payload)
    finally:
        ch.close()


def join_rdt_group(pid, record):
    """The container's resctrl group(s), as its init (runc does the same):
    a task forked later (the middle's child) inherits the group."""
    from .intelrdt import Group, add_pid

    add_pid(Group.from_dict(record), pid)


def join_cgroups(pid, mgr, dirs):
    if dirs is None:
        if mgr is not None:
            mgr.add_pid(pid)
        return
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError as e:
            raise PyruncError("can't add exec process to cgroup %s: %s" % (d, e.strerror)) from None


def wait_foreground(pid, console_sock):
    """Wait for the exec'd process (our child now); proxy its terminal if
    it has one.  -> its exit code, 128+signal when killed."""
    if console_sock is None:
        from .signals import wait_forwarding_signals

        return wait_forwarding_signals(pid)
    from .console import TerminalProxy, recv_fd

    try:
        master = recv_fd(console_sock)
    finally:
        os.close(console_sock)
    try:
        with TerminalProxy(master) as proxy:
            return proxy.run(pid)
    finally:
        os.close(master)
