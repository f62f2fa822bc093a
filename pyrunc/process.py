"""What runs in the children during `create`.

Process model (all plain os.fork(), so Python's fork bookkeeping holds):

  pyrunc create (parent)
   └─ stage 1: [unshare user ns; parent writes id maps] → join ns by path →
      │         unshare the other namespaces → fork → report init pid → exit
      │         (skipped for the CLI when there is no user or time namespace:
      │         the parent forks the init straight into the new pid namespace
      │         and the init joins/unshares the rest itself, direct_init_main)
      └─ init (pid 1 of a new pid ns): rootfs → createRuntime hooks (by the
                parent) → createContainer hooks → pivot_root → finalize →
                wait on exec.fifo → startContainer hooks → drop privileges →
                execve

  pyrunc exec (parent, see execute.py)
   └─ middle: [in the container's cgroup] → setns every namespace of the
      │       init (user first, mount last) → fork → report pid → exit
      └─ process (inside the pid ns): setsid → [pty] → exec_process()

Parent and children talk over two pipes with one-line messages (Sync).
Once a child has entered the container's mount namespace the host's Python
library is out of reach: everything it still needs is imported before.
"""
import os

from . import linux
from .errors import ExecError, PyruncError
from .log import debug
from .passwd import entry_for_uid  # used after pivot_root: imported now

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SyncError(PyruncError):
    pass


def child_error(payload):
    """A failure a child reported: runc's prefix, which tools read first."""
    return SyncError("unable to start container process: " + payload)


class Sync:
    """One end of the parent<->child channel: `tag [payload]\\n` lines."""

    __slots__ = ("rfd", "wfd", "_buf")

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""

    def send(self, tag, payload=""):
        line = (tag + (" " + payload.replace("\n", "\\n") if payload else "") + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self.wfd, view):]

    def recv(self):
        """-> (tag, payload); ('EOF', '') when the other side is gone.
        Linear in the line's length: only each new chunk is searched for
        the newline (a 20 MB state line took 11 s when the whole buffer
        was searched and copied once per 4 KiB read)."""
        chunks = [self._buf]
        found = b"\n" in self._buf
        while not found:
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                self._buf = b"".join(chunks)
                return "EOF", ""
            chunks.append(chunk)
            found = b"\n" in chunk
        line, self._buf = b"".join(chunks).split(b"\n", 1)
        tag, _, payload = line.decode(errors="replace").partition(" ")
        return tag, payload.replace("\\n", "\n")

    def expect(self, tag):
        got, payload = self.recv()
        if got == tag:
            return payload
        if got == "E":
            raise child_error(payload)
        if got == "EOF":
            raise SyncError("container init exited unexpectedly")
        raise SyncError("unexpected message %r from container init" % got)

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class InitContext:
    """Everything the children need, computed by the parent before fork."""

    __slots__ = ("spec", "rootfs", "plan", "join_fds", "fifo_fd", "no_pivot",
                 "no_new_keyring", "preserve_fds", "cgroup_manager", "console_fd",
                 "container_id", "close_fds", "listen_fds", "idmapped", "notify_sock", "bind_sources")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


# -- stage 1 ------------------------------------------------------------

def default_signals():
    """A forked child drops the handlers a foreground run/exec installed
    to forward signals: the container's processes get the default ones."""
    import _signal as signal

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"):
        num = getattr(signal, name)
        if callable(signal.getsignal(num)):  # ignored ones stay ignored (nohup)
            signal.signal(num, signal.SIG_DFL)


def stage1_main(ctx, sync):
    """Enter/create the namespaces, fork the init, report its pid, exit."""
    try:
        debug("nsexec container setup")
        default_signals()
        for fd in ctx.close_fds or ():
            os.close(fd)  # e.g. the state dir lock: the verbs after create need it
        plan = ctx.plan
        unprivileged = os.geteuid() != 0  # asked before entering a user namespace
        if plan.new_user:
            linux.unshare(linux.CLONE_NEWUSER)
            sync.send("U")
        sync.expect("G")  # id maps written, cgroups joined
        from .namespaces import join_all, write_time_offsets

        flags = plan.new_flags & ~linux.CLONE_NEWUSER
        time_early = unprivileged and plan.new_user and "time" in plan.new_types
        if time_early:
            # Unprivileged, a non-dumpable process's /proc/self/* belongs to
            # the host's root, which we are not: the offsets go in while we
            # are still dumpable, holding nothing but our own new user
            # namespace (none joined yet), which owns the time namespace.
            linux.unshare(linux.CLONE_NEWTIME)
            write_time_offsets(ctx.spec.linux.time_offsets)
            flags &= ~linux.CLONE_NEWTIME
        linux.set_dumpable(False)  # (already so unless the runtime is unprivileged)
        join_all(ctx.join_fds)
        if flags:
            linux.unshare(flags)
        if plan.new_user and plan.has("mount"):
            # Still the runtime's kernel uid (the switch to the namespace's
            # root comes below): bind sources a directory only the host's
            # root may enter hides from the container's root are opened
            # now, in the container's mount namespace, as runc's parent
            # opens them there.
            from .rootfs import open_bind_sources

            ctx.bind_sources = open_bind_sources(ctx.spec.mounts)
        if "time" in plan.new_types and not time_early:
            # Before the switch to the namespace's root: we are not dumpable,
            # so /proc/self/* belongs to the host's root -- still our fsuid.
            write_time_offsets(ctx.spec.linux.time_offsets)
        if plan.has("user"):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        # The init shares the sync pipe: it may speak only after stage 1 has
        # reported its pid, so it waits for `reported` to close first.
        wait_r, reported = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reported)
            os.read(wait_r, 1)
            os.close(wait_r)
            init_main(ctx, sync)  # never returns
        os.close(wait_r)
        sync.send("P", str(pid))
        os._exit(0)
    except BaseException as e:  # noqa: B902 - report anything to the parent
        _report_and_exit(sync, e)


def direct_init_main(ctx, sync):
    """The init forked by the runtime itself (no user or time namespace:
    see create._fork_init_directly), already pid 1 of its pid namespace:
    do what stage 1 would have done for it, then be the init."""
    try:
        debug("nsexec container setup")
        default_signals()
        for fd in ctx.close_fds or ():
            os.close(fd)
        if ctx.cgroup_manager is not None:
            # Itself, before any namespace: cheaper than the parent writing
            # our pid (see V1Manager.join_self), and in time for cgroupns.
            ctx.cgroup_manager.join_self()
        linux.set_dumpable(False)
        from .namespaces import join_all

        for t, fd in ctx.join_fds:
            if t == "pid":
                os.close(fd)  # entered already: the parent forked us into it
        join_all([(t, fd) for t, fd in ctx.join_fds if t != "pid"])
        flags = ctx.plan.new_flags & ~linux.CLONE_NEWPID
        if flags:
            linux.unshare(flags)
    except BaseException as e:  # noqa: B902
        _report_and_exit(sync, e)
    init_main(ctx, sync)  # never returns


def _report_and_exit(sync, exc):
    try:
        sync.send("E", describe(exc))
    finally:
        os._exit(1)


def describe(exc):
    if isinstance(exc, OSError) and exc.strerror:
        where = " %s" % exc.filename if exc.filename else ""
        return "%s%s: %s" % (type(exc).__name__ if not isinstance(exc, PyruncError) else "", where, exc.strerror)
    return str(exc) or type(exc).__name__


# -- the init --------------------------------------------------------------

def init_main(ctx, sync):
    spec = ctx.spec
    fifo_fd = -1
    try:
        debug("child process in init()")
        os.setsid()
        from .rootfs import RootfsBuilder
        from .security.exec_guard import refuse_runtime_binary, runtime_exe_identity

        runtime_identity = runtime_exe_identity()

        builder = RootfsBuilder(spec, ctx.rootfs, in_userns=ctx.plan.has("user"),
                                cgroup_manager=ctx.cgroup_manager,
                                new_cgroupns="cgroup" in ctx.plan.new_types,
                                own_mount_ns=ctx.plan.has("mount"), idmapped=ctx.idmapped,
                                bind_sources=ctx.bind_sources)
        builder.prepare()
        # An O_PATH handle opened by the runtime: the state dir is out of
        # reach after pivot_root, and for a user-namespaced init from the start.
        fifo_fd = ctx.fifo_fd
        sync.send("H")  # ready for prestart/createRuntime hooks
        sync.expect("G")
        state_doc = sync_state_doc(sync)
        hooks = spec.hooks.get("createContainer")
        if hooks:
            from .hooks import run_hooks

            os.chdir(ctx.rootfs)  # runc runs them from the rootfs: relative paths are the container's
            run_hooks("createContainer", hooks, state_doc)
        preload_modules(spec)
        seccomp = compile_seccomp(spec.linux)
        builder.pivot(ctx.no_pivot)
        if spec.process.terminal:
            from .console import setup_console

            setup_console(ctx.console_fd, spec.process.console_size, mount_console=True)
        # sysctls before readonlyPaths (usually /proc/sys) go read-only,
        # through the procfs this init mounted (pivot checked it is there).
        set_identity_names(spec, ctx.plan)
        apply_sysctl(spec.linux.sysctl, builder.proc_handle())
        builder.finalize()
        if not ctx.no_new_keyring:
            join_new_keyring(ctx.container_id)
        proc = spec.process
        env = build_env(proc)
        if ctx.listen_fds:
            # socket activation: the init is pid 1 (runc sets 1 regardless)
            env["LISTEN_FDS"] = str(ctx.listen_fds)
            env["LISTEN_PID"] = "1"
        exe = find_executable(proc.args[0], env.get("PATH"), proc.cwd)
        refuse_runtime_binary(exe, runtime_identity, proc.args[0])
        if spec.linux.memory_policy is not None:
            # Here, not at execve: a policy the kernel refuses fails create
            # (as runc); before any seccomp filter, which may refuse it.
            from .security.process_attrs import apply_memory_policy

            apply_memory_policy(spec.linux.memory_policy)
        if seccomp is not None and seccomp.notify:
            hand_over_notify_fd(seccomp, sync, ctx.notify_sock)
            seccomp = None
        debug("init: closing the pipe to signal completion")
        sync.send("R")
        if sync.recv()[0] != "C":
            os._exit(1)  # the runtime died before committing the state
        sync.close()
    except BaseException as e:  # noqa: B902
        _report_and_exit(sync, e)

    # Created: wait for `start`.  Opening for writing blocks until start
    # opens the fifo for reading; the fd is close-on-exec, so start sees
    # EOF exactly when execve succeeded (or the init died).
    wfd = -1
    try:
        wfd = reopen_for_writing(fifo_fd)
        os.close(fifo_fd)
        os.write(wfd, b"0")
        hooks = spec.hooks.get("startContainer")
        before_exec = None
        if hooks:
            from .hooks import run_hooks

            def before_exec():
                run_hooks("startContainer", hooks, state_doc)
        exec_process(proc, exe, env, ctx.preserve_fds, keep_fd=wfd, linux_spec=spec.linux,
                     seccomp=seccomp, before_exec=before_exec)
    except BaseException as e:  # noqa: B902
        # Tell `start` through the fifo; if it could not even be opened,
        # the container's stderr is the only channel left.
        try:
            os.write(wfd if wfd >= 0 else 2, (describe(e) + ("" if wfd >= 0 else "\n")).encode())
        except OSError:
            pass
        os._exit(getattr(e, "exit_code", 1) or 1)


def reopen_for_writing(fd):
    """Open for writing (blocking, for a fifo) the file behind an O_PATH fd.
    After pivot_root /proc is whatever the container has: planted
    /proc/self/fd links would steer a plain reopen (CVE-2025-52565's
    class).  When /proc is a procfs its self/fd entries are the kernel's,
    and nothing runs in the container yet that could mount over it; else a
    private procfs instance is used (its fd is held while the open blocks)."""
    from .errors import PyruncError
    from .procfs import open_private_procfs, proc_is_procfs

    if proc_is_procfs("/proc"):
        return os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_CLOEXEC)
    try:
        proc = open_private_procfs()
    except OSError as e:
        raise PyruncError("the container's /proc is not procfs and no private procfs could be made "
                          "(%s): refusing to reopen the exec fifo through it" % e.strerror) from None
    try:
        return os.open("self/fd/%d" % fd, os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)


def preload_modules(spec):
    """After pivot_root the host's Python library is out of reach: import
    now everything the init still needs before execve."""
    import resource  # noqa: F401  (rlimits)

    from .security import capabilities, process_attrs  # noqa: F401
    if spec.process.apparmor_profile or spec.process.selinux_label:
        from .security import lsm  # noqa: F401
    if spec.linux.seccomp_doc is not None and os.geteuid() != 0:
        import _socket  # noqa: F401  (send_notify_fd; built in on Debian, not everywhere)
    if spec.hooks.get("startContainer"):
        import select  # noqa: F401  (hooks.run_one; an extension module outside Debian's python)

        from . import hooks, jsonio  # noqa: F401
    if spec.process.terminal:
        import fcntl  # noqa: F401
        import stat  # noqa: F401

        from . import console  # noqa: F401


def compile_seccomp(linux_spec):
    """The container's seccomp filter, compiled while the host's library is
    still reachable; exec_process() loads it.  Never run unconfined when a
    filter was asked for."""
    doc = linux_spec.seccomp_doc if linux_spec is not None else None
    if doc is None:
        return None
    try:
        from .security.seccomp import Seccomp
    except ImportError:
        from .errors import NotSupported

        raise NotSupported("linux.seccomp: this pyrunc has no seccomp support") from None
    return Seccomp.from_dict(doc).compile()


def hand_over_notify_fd(seccomp, sync, sock=None):
    """A filter with SCMP_ACT_NOTIFY goes in while the runtime still
    listens (runc's order): the runtime copies the notify fd with
    pidfd_getfd and sends it to the agent.  An unprivileged runtime may not
    pidfd_getfd its non-dumpable init: then the init sends the fd itself
    over `sock`, a socket pair from the runtime.  The init is still
    privileged here, so no_new_privs is not needed yet; every syscall the
    init makes from now on is under the filter (runc: NOTIFY on write is
    refused; with `sock`, on sendmsg too)."""
    fd = seccomp.load()
    if sock is None:
        sync.send("N", str(fd))
    else:
        send_notify_fd(sock, fd)
        sync.send("N")  # the fd is on the socket before the runtime looks
    sync.expect("n")
    os.close(fd)


def notify_socketpair():
    """(runtime end, container end) for a container process to send its
    seccomp notify fd over (send_notify_fd)."""
    import _socket

    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return a.detach(), b.detach()


def send_notify_fd(sock, fd):
    """One SCM_RIGHTS message with `fd` on the connected unix socket `sock`
    (not closed).  `_socket` is built in: usable after pivot_root."""
    import sys

    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, sock)
    try:
        s.sendmsg([b"N"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
    finally:
        s.detach()


def sync_state_doc(sync):
    from .jsonio import loads

    tag, payload = sync.recv()
    if tag != "S":
        raise SyncError("expected state from runtime, got %r" % tag)
    doc = loads(payload)
    doc["pid"] = os.getpid()  # hooks in the container's namespaces see its pid
    return doc


def set_identity_names(spec, plan):
    if spec.hostname is not None and plan.has("uts"):
        linux.sethostname(spec.hostname)
    if spec.domainname is not None and plan.has("uts"):
        linux.setdomainname(spec.domainname)


def apply_sysctl(sysctl, proc_fd=-1):
    """Each key written under proc_fd's sys/ (a procfs handle) when there is
    one, never through a symlink; else by the name /proc/sys."""
    for key, value in sysctl.items():
        rel = "sys/" + key.replace(".", "/")
        try:
            if proc_fd >= 0:
                fd = linux.openat2(proc_fd, rel, os.O_WRONLY,
                                   linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS)
            else:
                fd = os.open("/proc/" + rel, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            raise PyruncError("linux.sysctl[%r]: %s" % (key, e.strerror)) from None
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise PyruncError("linux.sysctl[%r]: write %r: %s" % (key, value, e.strerror)) from None
        finally:
            os.close(fd)


def join_new_keyring(cid):
    try:
        linux.join_session_keyring("_ses." + cid)
    except OSError as e:
        # ENOSYS: keyrings not built in; EACCES/EDQUOT as runc tolerates.
        if e.errno not in (38, 13, 122):
            raise


def build_env(proc):
    env = {}
    for item in proc.env:
        k, sep, v = item.partition("=")
        if sep:
            env[k] = v
    if "HOME" not in env:
        env["HOME"] = home_of(proc.user.uid)
    return env


def home_of(uid):
    entry = entry_for_uid(uid)
    return (entry[5] if entry else "") or "/"


def find_executable(name, path_env, cwd):
    """Resolve argv[0] like Go's exec.LookPath, runc's wording on failure."""
    if "/" in name:
        cand = name if name.startswith("/") else os.path.join(cwd or "/", name)
        _check_exec(name, cand)
        return cand
    for d in (path_env if path_env is not None else DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        try:
            _check_exec(name, cand)
            return cand
        except ExecError as e:
            if e.exit_code == 126 and os.path.isfile(cand):
                raise
    raise ExecError('exec: "%s": executable file not found in $PATH' % name, 127)


def _check_exec(name, path):
    try:
        st = os.stat(path)
    except OSError:
        raise ExecError('exec: "%s": stat %s: no such file or directory' % (name, path), 127) from None
    if not (st.st_mode & 0o170000 == 0o100000) or not st.st_mode & 0o111:
        raise ExecError('exec: "%s": permission denied' % name, 126)


def exec_process(proc, exe, env, preserve_fds, keep_fd=-1, linux_spec=None, seccomp=None,
                 before_exec=None):
    """Drop privileges and execve, in runc's order: rlimits, close fds,
    bounding set, user, capabilities, cwd, no_new_privs, seccomp,
    `before_exec` (the startContainer hooks: runc runs them as the process
    will run, its seccomp filter included), exec.

    Used by the init and by `exec`.  fds 3..3+preserve_fds-1 (socket
    activation and --preserve-fds) reach the process; every other fd is
    closed.  `seccomp` is a compiled filter: without no_new_privs loading
    it is privileged, so it goes in before the capabilities are dropped;
    with no_new_privs as late as possible."""
    import resource

    for rl in proc.rlimits:
        num = getattr(resource, rl.type, None)
        if num is None:
            raise PyruncError("process.rlimits: unknown rlimit %s" % rl.type)
        resource.setrlimit(num, (_rlim(rl.soft), _rlim(rl.hard)))
    from .security import process_attrs

    process_attrs.apply(proc, linux_spec)
    extra = preserve_fds or 0
    for fd in range(3, 3 + extra):
        os.set_inheritable(fd, True)
    close_fds(3 + extra, keep_fd)
    if seccomp is not None and not proc.no_new_privileges:
        seccomp.load()
        seccomp = None
    caps = proc.capabilities
    if caps is not None:
        from .security import capabilities

        capabilities.drop_bounding(caps)
    user = proc.user
    # runc: chdir while still root (a cwd only the runtime's user may
    # enter works), again after the switch if that was refused (a cwd only
    # the container's user may enter: a volume chowned to it).
    cwd_done = _chdir_cwd(proc.cwd, retry_on_eperm=True)
    if proc.terminal:
        give_terminal_to(user.uid)
    if caps is not None:
        linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    set_groups(user.additional_gids)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if caps is not None:
        linux.prctl(linux.PR_SET_KEEPCAPS, 0)
        capabilities.apply_sets(caps)
    if not cwd_done:
        _chdir_cwd(proc.cwd, retry_on_eperm=False)
    os.umask(user.umask if user.umask is not None else 0o022)
    if proc.apparmor_profile or proc.selinux_label:
        from .security.lsm import apply_exec_labels

        apply_exec_labels(proc)
    if proc.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp is not None:
        seccomp.load()
    if before_exec is not None:
        before_exec()
    try:
        os.execve(exe, proc.args, env)
    except OSError as e:
        code = 126 if e.errno in (13, 8) else 127
        raise ExecError('exec: "%s": %s' % (proc.args[0], e.strerror.lower()), code) from None


def give_terminal_to(uid):
    """The container's pty (stdio by now) belongs to the process's user, as
    runc's fixStdioPermissions does, so that a non-root user can use its
    terminal; the group stays devpts's (gid=5).  Unlike runc, stdio that is
    not the container's own pty (the caller's files) is never chowned."""
    try:
        st = os.fstat(0)
        if st.st_uid != uid:
            os.fchown(0, uid, st.st_gid)
    except OSError as e:
        if e.errno not in (1, 22):  # EPERM, EINVAL: an owner or group unmapped here
            raise


def _chdir_cwd(cwd, retry_on_eperm):
    """-> True once in `cwd`; False when refused and a retry is allowed."""
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        if retry_on_eperm:
            return False
        raise PyruncError("process.cwd: chdir %s: Permission denied" % cwd) from None
    except OSError as e:
        raise PyruncError("process.cwd: chdir %s: %s" % (cwd, e.strerror)) from None


def set_groups(gids):
    """setgroups(2), except where a user namespace denies it (rootless):
    then only an empty list is acceptable, and it is already in force."""
    try:
        os.setgroups(gids)
    except PermissionError:
        try:
            with open("/proc/self/setgroups") as f:
                denied = f.read().strip() == "deny"
        except OSError:
            denied = False
        if not denied:
            raise PyruncError("process.user.additionalGids: setgroups: operation not permitted") from None
        if gids:
            raise PyruncError("process.user.additionalGids: cannot set groups: setgroups is denied "
                              "in this user namespace (rootless)") from None


def _rlim(v):
    return -1 if v >= (1 << 64) - 1 else v


def close_fds(first, keep_fd=-1):
    """Close every fd >= first except keep_fd (close-on-exec for that one)."""
    if keep_fd >= first:
        os.closerange(first, keep_fd)
        os.closerange(keep_fd + 1, 1 << 20)
    else:
        os.closerange(first, 1 << 20)


def check_inherited_fds(preserve_fds):
    """fds the caller passes to the container: socket activation's (when
    LISTEN_PID names us, as systemd's sd_listen_fds checks) then
    --preserve-fds more.  Checked before the runtime opens any fd of its
    own, so none of ours can sit at one of those numbers.  -> the number
    of socket-activation fds."""
    listen = 0
    if os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            listen = max(0, int(os.environ["LISTEN_FDS"]))
        except ValueError:
            listen = 0
    base = 3 + listen
    for fd in range(3, base + (preserve_fds or 0)):
        try:
            os.fstat(fd)
        except OSError as e:
            if fd < base:
                raise PyruncError("LISTEN_FDS=%d: fd %d: %s" % (listen, fd, e.strerror)) from None
            raise PyruncError("unable to stat preserved-fd %d (of %d): %s"
                              % (fd - base, preserve_fds, e.strerror)) from None
    return listen
