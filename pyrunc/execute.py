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


class ExecOptions:
    __slots__ = ("detach", "pid_file", "console_socket", "preserve_fds", "cgroups",
                 "ignore_paused", "no_new_keyring")

    def __init__(self, detach=False, pid_file=None, console_socket=None, preserve_fds=0,
                 cgroups=(), ignore_paused=False, no_new_keyring=False):
        self.detach = detach
        self.pid_file = os.path.abspath(pid_file) if pid_file else None
        self.console_socket = os.path.abspath(console_socket) if console_socket else None
        self.preserve_fds = preserve_fds
        self.cgroups = list(cgroups or ())
        self.ignore_paused = ignore_paused
        self.no_new_keyring = no_new_keyring


# -- the verb ------------------------------------------------------------------

def exec_cli(g, ns):
    from .container import Container

    try:
        preserve = int(ns.preserve_fds)
    except ValueError:
        raise PyruncError("invalid value %r for --preserve-fds" % ns.preserve_fds) from None
    check_preserved_fds(preserve)  # before any fd of ours exists
    c = Container.load(ns.args[0], g.root)
    doc = process_from_cli(ns, c)
    opts = ExecOptions(detach=ns.detach, pid_file=ns.pid_file, console_socket=ns.console_socket,
                       preserve_fds=preserve, cgroups=ns.cgroup, ignore_paused=ns.ignore_paused,
                       no_new_keyring=bool(c.record.get("no_new_keyring")))
    return execute(c, doc, opts)


def check_preserved_fds(n):
    for fd in range(3, 3 + max(n, 0)):
        try:
            os.fstat(fd)
        except OSError as e:
            raise PyruncError("unable to stat preserved-fd %d (of %d): %s" % (fd - 3, n, e.strerror)) from None


def process_from_cli(ns, c):
    """The process document: `--process FILE`, or the container's own
    process with the command line's overrides (runc's getProcess)."""
    if ns.process:
        return load_process_file(ns.process)
    cfg = c.dir.read_json("config.json") or {}
    from .jsonio import dumps, loads

    p = loads(dumps(cfg.get("process") or {}))  # a deep copy
    p["args"] = list(ns.args[1:])
    if ns.cwd:
        p["cwd"] = ns.cwd
    if ns.apparmor:
        p["apparmorProfile"] = ns.apparmor
    if ns.process_label:
        p["selinuxLabel"] = ns.process_label
    if ns.cap:
        caps = p.setdefault("capabilities", {})
        for cap in ns.cap:
            for field in ("bounding", "effective", "permitted"):
                caps.setdefault(field, []).append(cap)
            # ambient needs inheritable: only where the config has that set
            if caps.get("inheritable") is not None:
                caps.setdefault("ambient", []).append(cap)
    p["env"] = list(p.get("env") or []) + list(ns.env)
    p["terminal"] = bool(ns.tty)
    if ns.no_new_privs:
        p["noNewPrivileges"] = True
    if ns.user:
        user = p.setdefault("user", {})
        uid, sep, gid = ns.user.partition(":")
        user["uid"] = _id(uid, "uid")
        if sep:
            user["gid"] = _id(gid, "gid")
    for gid in ns.additional_gids:
        p.setdefault("user", {}).setdefault("additionalGids", []).append(_id(gid, "additional gid"))
    check_process_doc(p)
    try:
        from .validate import validate_process
    except ImportError:
        return p
    return validate_process(p, "process")


def _id(text, what):
    try:
        v = int(text)
    except ValueError:
        raise PyruncError("parsing %s as int for %s failed" % (text, what)) from None
    if v < 0:
        raise PyruncError("%s %d is negative" % (what, v))
    return v


def load_process_file(path):
    try:
        from .validate import load_process
    except ImportError:
        from .jsonio import loads

        def load_process(path):
            try:
                with open(path, "rb") as f:
                    return loads(f.read())
            except (OSError, ValueError) as e:
                raise ConfigError("cannot read: %s" % e, path) from None
    doc = load_process(path)
    check_process_doc(doc, path)
    return doc


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

def execute(c, doc, opts):
    """Run process document `doc` in container `c` (a loaded, locked
    Container).  Foreground: returns the exit code; detached: 0."""
    from .container import PAUSED, STOPPED
    from .spec import Process

    status = c.status()
    if status == STOPPED:
        raise StateError("cannot exec in a stopped container")
    if status == PAUSED and not opts.ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    proc = Process(doc)
    check_security(proc, c)
    from .console import check_terminal

    check_terminal(proc.terminal, opts.detach, opts.console_socket)
    spec = _stored_spec(c)
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
    if opts.detach:
        if opts.pid_file:
            from .create import write_pid_file

            write_pid_file(opts.pid_file, gpid)
        return 0
    return wait_foreground(gpid, ours)


def _stored_spec(c):
    """The container's own config (validated at create), typed."""
    cfg = c.dir.read_json("config.json")
    if cfg is None:
        return None
    from .semantics import typed_spec

    return typed_spec(cfg)


def check_security(proc, c):
    """Refuse what the process cannot get, before anything is made."""
    if proc.capabilities is not None:
        from .security.capabilities import check

        check(proc.capabilities)
    if proc.apparmor_profile or proc.selinux_label:
        from .security.lsm import check_labels

        check_labels(proc)
    if proc.scheduler or proc.io_priority or proc.exec_cpu_affinity:
        from .security import process_attrs

        spec = c.spec()
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
            raise PyruncError("--cgroup: no such controller in the container: %s" % ", ".join(sorted(unknown)))
    return list(dict.fromkeys(dirs))


def _sub_dir(base, sub):
    path = os.path.normpath(os.path.join(base, sub.lstrip("/")))
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise PyruncError("--cgroup: %s is not inside the container's cgroup" % sub)
    if not os.path.isdir(path):
        raise PyruncError("--cgroup: sub-cgroup %s does not exist" % path)
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
