"""`exec`: run another process inside a running container.

    pyrunc exec (parent): checks, opens /proc/<init>/ns/*, non-dumpable
     └─ middle: joins the container's cgroup itself (the parent puts it in
        │       a --cgroup sub-cgroup) → setns into every namespace of the
        │       init that differs from ours (user first, mount last) → fork
        │       → report the pid → exit.  Only with user or time
        │       namespaces: otherwise the parent forks the process straight
        │       into the pid namespace and it does this part (direct_main).
        └─ process: in the container's pid namespace; setsid → [pty] →
                    keyring → exec_process() (rlimits, caps, user, NNP,
                    LSM, seccomp: the same path as the init)

The parent learns the process's fate from a close-on-exec status pipe:
EOF means execve succeeded; otherwise "<exit code> <message>".  In the
foreground the parent is a subreaper, so the process becomes its child
when the middle exits, and its exit status is ours.
"""
import os

from . import linux
from .errors import ConfigError, PyruncError, StateError
from .log import debug

# Joining order: the user namespace first (it owns the others, and gives
# us the capabilities to join them), mount last.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


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


class ExecContext:
    """What the middle and the process need, computed before fork."""

    __slots__ = ("proc", "linux_spec", "ns_fds", "console_fd", "preserve_fds",
                 "container_id", "no_new_keyring", "seccomp", "runtime_identity",
                 "notify_w", "notify_sends_fd", "ack_r", "cgroup_self", "rdt_group")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


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
    # relative to the caller's working directory, as for create
    pid_file = os.path.abspath(ns.pid_file) if ns.pid_file else None
    opts = ExecOptions(detach=ns.detach, pid_file=pid_file, console_socket=ns.console_socket,
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
    spec = c.spec()
    mgr = c.cgroup_manager()
    cgroup_dirs = target_cgroups(mgr, opts.cgroups)
    ns_fds = open_namespaces(c.pid, c.record.get("init_start"))
    ours = None
    ctx = ExecContext(proc=proc, linux_spec=spec.linux if spec else None, ns_fds=ns_fds,
                      preserve_fds=opts.preserve_fds, container_id=c.id,
                      no_new_keyring=opts.no_new_keyring, rdt_group=c.record.get("intel_rdt"))
    try:
        if proc.terminal:
            from .console import connect_socket, socket_pair

            if opts.detach:
                ctx.console_fd = connect_socket(opts.console_socket)
            else:
                ours, ctx.console_fd = socket_pair()
        c.dir.unlock()  # other verbs may run while the process does
        forwarder = None
        if not opts.detach:
            from .run import SignalForwarder

            forwarder = SignalForwarder()
        gpid = spawn(ctx, mgr, cgroup_dirs, subreaper=not opts.detach,
                     listener=_notify_listener(c, spec))
        if forwarder is not None:
            forwarder.target(gpid)
    except BaseException:
        if ours is not None:
            os.close(ours)
        raise
    finally:
        for _, fd in ns_fds:
            os.close(fd)
        if ctx.console_fd is not None:
            os.close(ctx.console_fd)
    if opts.pid_file:
        _write_pid_file_or_kill(opts.pid_file, gpid, ours)
    if opts.detach:
        return 0
    return wait_foreground(gpid, ours)


def _write_pid_file_or_kill(path, pid, console_sock):
    """runc writes --pid-file in the foreground too; when it cannot, the
    process it started is killed and exec fails (exit 255)."""
    from .create import write_pid_file

    try:
        write_pid_file(path, pid)
    except OSError as e:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        _reap(pid)
        if console_sock is not None:
            os.close(console_sock)
        raise PyruncError("--pid-file %s: %s" % (path, e.strerror or e)) from None


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


def open_namespaces(pid, expected_start):
    """fds of the init's namespaces that differ from ours, in join order;
    the init is pinned by a pidfd meanwhile, so they are surely its."""
    from .procfs import start_time
    from .spec import NAMESPACE_FILES

    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        raise StateError("cannot exec in a stopped container") from None
    fds = []
    try:
        for ns_type in JOIN_ORDER:
            name = NAMESPACE_FILES[ns_type]
            try:
                fd = os.open("/proc/%d/ns/%s" % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # e.g. no time namespaces in this kernel
            st, mine = os.fstat(fd), os.stat("/proc/self/ns/" + name)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                os.close(fd)
                continue
            fds.append((ns_type, fd))
        if expected_start is not None and start_time(pid) != expected_start:
            raise StateError("cannot exec in a stopped container")
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(pidfd)
    return fds


def _notify_listener(c, spec):
    """(seccomp model, container) when the filter has SCMP_ACT_NOTIFY."""
    sec = spec.linux.seccomp if spec is not None and spec.linux is not None else None
    return (sec, c) if sec is not None and sec.uses_notify else None


def spawn(ctx, mgr, cgroup_dirs, subreaper, listener=None):
    """Fork the middle, put it in the cgroup, get the process's host pid;
    raise with the process's own words if it could not be executed."""
    from .process import Sync

    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    st_r, st_w = os.pipe()
    notify_r = ack_w = -1
    if listener is not None:
        notify_r, ctx.notify_w = _notify_channel(ctx)
        ctx.ack_r, ack_w = os.pipe()
    if cgroup_dirs is None and mgr is not None:
        ctx.cgroup_self = mgr  # the middle joins itself: cheaper (V1Manager.join_self)
    # Nothing in the container may ptrace us or read /proc/<pid>/exe.
    linux.set_dumpable(False)
    if subreaper:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    # Without user and time namespaces the process needs no middle: we fork
    # it straight into the container's pid namespace (fork_into_pid_ns) and
    # it joins the other namespaces itself.
    direct = not any(t in ("user", "time") for t, _ in ctx.ns_fds)
    if direct:
        from .namespaces import fork_into_pid_ns

        pid = fork_into_pid_ns(dict(ctx.ns_fds).get("pid"), cgroup=ctx.cgroup_self)
    else:
        pid = os.fork()
    if pid == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        os.close(st_r)
        (direct_main if direct else middle_main)(ctx, Sync(p2c_r, c2p_w), st_w)
        os._exit(1)
    os.close(p2c_r)
    os.close(c2p_w)
    os.close(st_w)
    if listener is not None:
        os.close(ctx.notify_w)
        os.close(ctx.ack_r)
    sync = Sync(c2p_r, p2c_w)
    try:
        try:
            if ctx.cgroup_self is None:
                join_cgroups(pid, mgr, cgroup_dirs)
            if ctx.rdt_group:
                join_rdt_group(pid, ctx.rdt_group)
            sync.send("G")
            gpid = pid if direct else int(sync.expect("P"))
        except BaseException:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            _reap(pid)
            raise
        finally:
            if not direct:
                _reap(pid)  # the middle
            sync.close()
        if listener is not None:
            _seccomp_to_listener(listener, gpid, notify_r, ack_w, ctx.notify_sends_fd)
        failure = _read_to_eof(st_r)
    finally:
        os.close(st_r)
        for fd in (notify_r, ack_w):
            if fd >= 0:
                os.close(fd)
    if failure:
        code, _, msg = failure.decode(errors="replace").partition(" ")
        if subreaper:
            _reap(gpid)
        from .errors import ExecError

        raise ExecError("unable to start container process: " + msg, int(code) if code.isdigit() else 1)
    return gpid


def _notify_channel(ctx):
    """(our end, the process's end) of the channel for its seccomp notify
    fd: a pipe for the fd's number, which we copy with pidfd_getfd (runc's
    way); unprivileged, where pidfd_getfd on the non-dumpable process is
    refused, a socket pair it sends the fd itself over."""
    ctx.notify_sends_fd = os.geteuid() != 0
    if not ctx.notify_sends_fd:
        return os.pipe()
    from .process import notify_socketpair

    return notify_socketpair()


def _seccomp_to_listener(listener, gpid, notify_r, ack_w, sent):
    """The process loaded a notify filter and wrote its fd number (or
    `sent` the fd itself): take the fd, let the process go on, send it to
    the agent (runc's order).  EOF instead: the process failed before; its
    status pipe says why."""
    fd = _take_notify_fd(gpid, notify_r, sent)
    if fd is None:
        return
    from .security.seccomp import send_to_listener

    sec, c = listener
    try:
        os.write(ack_w, b"g")
        send_to_listener(fd, sec.listener_path, c.hook_state("running"), sec.listener_metadata, pid=gpid)
    finally:
        os.close(fd)


def _take_notify_fd(gpid, notify_r, sent):
    from .security.seccomp import fetch_fd, recv_fd

    if sent:
        return recv_fd(notify_r)[0]
    data = _read_to_eof_or_line(notify_r)
    return fetch_fd(gpid, int(data)) if data else None


def _read_to_eof_or_line(fd):
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(fd, 64)
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
    return data.strip()


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


def _read_to_eof(fd):
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return data
        data += chunk


def _reap(pid):
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def wait_foreground(pid, console_sock):
    """Wait for the exec'd process (our child now); proxy its terminal if
    it has one.  -> its exit code, 128+signal when killed."""
    if console_sock is None:
        from .run import wait_forwarding_signals

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


# -- the children ----------------------------------------------------------------

def middle_main(ctx, sync, st_w):
    from .process import _report_and_exit

    try:
        debug("nsexec container setup")
        _enter_container(ctx, sync, setns_pid=True)
        pid = os.fork()  # into the pid (and time) namespace
        if pid == 0:
            sync.close()
            process_main(ctx, st_w)
        sync.send("P", str(pid))
        os._exit(0)
    except BaseException as e:  # noqa: B902 - report anything to the parent
        _report_and_exit(sync, e)


def direct_main(ctx, sync, st_w):
    """The process forked straight into the pid namespace: what the middle
    does for its child, then be the process."""
    from .process import _report_and_exit

    try:
        debug("nsexec container setup")
        _enter_container(ctx, sync, setns_pid=False)
        sync.close()
    except BaseException as e:  # noqa: B902 - report anything to the parent
        _report_and_exit(sync, e)
    process_main(ctx, st_w)


def _enter_container(ctx, sync, setns_pid):
    """Cgroup (once the parent says go), then every namespace of the init
    that differs from ours; the pid namespace only where a fork follows."""
    from .process import default_signals
    from .spec import NAMESPACE_FLAGS

    default_signals()
    sync.expect("G")
    if ctx.cgroup_self is not None:
        ctx.cgroup_self.join_self()
    preload(ctx)
    for ns_type, fd in ctx.ns_fds:
        if setns_pid or ns_type != "pid":
            linux.setns(fd, NAMESPACE_FLAGS[ns_type])
        os.close(fd)
        if ns_type == "user":
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)


def preload(ctx):
    """Import (and compile) now what the process needs after setns(mnt)."""
    import resource  # noqa: F401

    from .process import compile_seccomp
    from .security import capabilities, process_attrs  # noqa: F401
    from .security.exec_guard import runtime_exe_identity

    proc = ctx.proc
    if proc.apparmor_profile or proc.selinux_label:
        from .security import lsm  # noqa: F401
    if ctx.notify_sends_fd:
        import _socket  # noqa: F401  (send_notify_fd after setns(mnt))
    if proc.terminal:
        import fcntl  # noqa: F401

        from . import console  # noqa: F401
    ctx.runtime_identity = runtime_exe_identity()
    ctx.seccomp = compile_seccomp(ctx.linux_spec)


def process_main(ctx, st_w):
    from .process import build_env, describe, exec_process, find_executable, join_new_keyring
    from .security.exec_guard import refuse_runtime_binary

    try:
        debug("child process in init()")
        os.setsid()
        proc = ctx.proc
        if proc.terminal:
            from .console import setup_console

            setup_console(ctx.console_fd, proc.console_size)
        if not ctx.no_new_keyring:
            join_new_keyring(ctx.container_id)
        env = build_env(proc)
        exe = find_executable(proc.args[0], env.get("PATH"), proc.cwd)
        refuse_runtime_binary(exe, ctx.runtime_identity, proc.args[0])
        if ctx.linux_spec is not None and ctx.linux_spec.memory_policy is not None:
            # before any seccomp filter, which may refuse set_mempolicy
            from .security.process_attrs import apply_memory_policy

            apply_memory_policy(ctx.linux_spec.memory_policy)
        if ctx.seccomp is not None and ctx.seccomp.notify:
            # still privileged: load now and hand the fd to the runtime
            fd = ctx.seccomp.load()
            if ctx.notify_sends_fd:
                from .process import send_notify_fd

                send_notify_fd(ctx.notify_w, fd)
            else:
                os.write(ctx.notify_w, b"%d\n" % fd)
            os.read(ctx.ack_r, 1)
            os.close(fd)
            ctx.seccomp = None
        debug("setns_init: about to exec")
        exec_process(proc, exe, env, ctx.preserve_fds, keep_fd=st_w, linux_spec=ctx.linux_spec,
                     seccomp=ctx.seccomp)
    except BaseException as e:  # noqa: B902
        code = getattr(e, "exit_code", 1) or 1
        try:
            os.write(st_w, ("%d %s" % (code, describe(e))).encode())
        except OSError:
            pass
        os._exit(code)
