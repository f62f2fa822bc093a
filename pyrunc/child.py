"""The children of create and exec: one entry (child_main), the steps that
take a forked child into the container, and the final `become` step of each
kind of container process: the init (InitJob) or a process exec'd into a
running container (ExecJob).  The runtime side is spawn.py; the messages
are channel.py's.

    runtime (spawn.spawn)
     ├─ direct: forked straight into the container's pid namespace
     │    GO → [joins its cgroup] → setns the other namespaces → unshare
     │    the new ones → job.become()
     └─ two-stage (user or time namespaces): stage 1 / exec's middle
          [unshare user ns, USERNS_READY, the runtime writes id maps] →
          GO → [time ns + offsets] → setns → unshare → fork → CHILD_PID → exit
          └─ job.become() (waits until CHILD_PID was sent)

    InitJob.become: rootfs → MOUNTS_READY … HOOKS_DONE → STATE →
        createContainer hooks → pivot_root → console, sysctl, masked and
        read-only paths → [NOTIFY_FD] → READY … COMMIT → exec.fifo →
        startContainer hooks → exec_process
    ExecJob.become: setsid → [pty] → keyring → [NOTIFY_FD] → exec_process
        (the channel's write end stays open, close-on-exec: EOF = execve done)

Once a child has entered the container's mount namespace the host's Python
library is out of reach: everything it still needs is imported before
(ExecJob.prepare before setns, InitJob's preload before pivot_root).
"""
import os

from . import linux
from .channel import (CHILD_PID, COMMIT, GO, HOOKS_DONE, MOUNTS_READY, NOTIFY_TAKEN, READY, STATE,
                      USERNS_READY, ChildError, describe)
from .log import debug
from .namespaces import become_root, enter, write_time_offsets
from .process import build_env, exec_process, find_executable, has_process_attrs, join_new_keyring
from .signals import default_signals


class Entry:
    """How a child gets into the container, decided by the runtime before
    the fork.  `cgroup`: a manager the child joins itself right after GO
    (cheaper than the runtime writing its pid, see V1Manager.join_self);
    `time_offsets`: the offsets of a new time namespace, else None."""

    __slots__ = ("two_stage", "join_fds", "new_flags", "new_user", "time_offsets", "user_ns",
                 "cgroup", "close_fds")

    def __init__(self, two_stage, join_fds, new_flags=0, new_user=False, time_offsets=None,
                 user_ns=False, cgroup=None, close_fds=()):
        self.two_stage = two_stage
        self.join_fds = join_fds
        self.new_flags = new_flags
        self.new_user = new_user
        self.time_offsets = time_offsets
        self.user_ns = user_ns
        self.cgroup = cgroup
        self.close_fds = close_fds


def child_main(entry, job, ch, kernel=linux):
    """The forked child: into the container, then become `job`.  Never
    returns; any failure is reported on the channel.  Every syscall goes
    through `kernel` (the linux module; tests pass a recording fake)."""
    try:
        debug("nsexec container setup")
        default_signals()
        for fd in entry.close_fds:
            os.close(fd)  # e.g. the state dir lock: the verbs after create need it
        if entry.two_stage:
            _stage1(entry, job, ch, kernel)  # returns in the forked grandchild only
        else:
            _enter_direct(entry, job, ch, kernel)
    except BaseException as e:  # noqa: B902 - report anything to the parent
        ch.fail(e)
    job.become(ch, kernel)
    os._exit(1)


def _enter_direct(entry, job, ch, kernel=linux):
    """Forked straight into the pid namespace: the rest of the entering."""
    ch.expect(GO)
    if entry.cgroup is not None:
        entry.cgroup.join_self()  # before any namespace: in time for cgroupns
    job.prepare()
    kernel.set_dumpable(False)
    enter(entry.join_fds, skip_pid=True, kernel=kernel)
    flags = entry.new_flags & ~linux.CLONE_NEWPID
    if flags:
        kernel.unshare(flags)


def _stage1(entry, job, ch, kernel=linux):
    """Enter/create the namespaces, fork the container's process, report
    its pid and exit; the forked process returns from here."""
    unprivileged = os.geteuid() != 0  # asked before entering a user namespace
    if entry.new_user:
        kernel.unshare(linux.CLONE_NEWUSER)
        ch.send(USERNS_READY)
    ch.expect(GO)  # id maps written, cgroups joined
    if entry.cgroup is not None:
        entry.cgroup.join_self()
    job.prepare()
    flags = entry.new_flags & ~linux.CLONE_NEWUSER
    time_early = unprivileged and entry.new_user and entry.time_offsets is not None
    if time_early:
        # Unprivileged, a non-dumpable process's /proc/self/* belongs to
        # the host's root, which we are not: the offsets go in while we
        # are still dumpable, holding nothing but our own new user
        # namespace (none joined yet), which owns the time namespace.
        kernel.unshare(linux.CLONE_NEWTIME)
        write_time_offsets(entry.time_offsets, kernel)
        flags &= ~linux.CLONE_NEWTIME
    kernel.set_dumpable(False)  # (already so unless the runtime is unprivileged)
    enter(entry.join_fds, kernel=kernel)
    if flags:
        kernel.unshare(flags)
    job.entered(entry)
    if entry.time_offsets is not None and not time_early:
        # Before the switch to the namespace's root: we are not dumpable,
        # so /proc/self/* belongs to the host's root -- still our fsuid.
        write_time_offsets(entry.time_offsets, kernel)
    if entry.user_ns:
        become_root(kernel)
    # The forked process shares the channel: it may speak only after we
    # reported its pid, so it waits for `reported` to close first.
    wait_r, reported = os.pipe()
    pid = kernel.fork()
    if pid == 0:
        os.close(reported)
        os.read(wait_r, 1)
        os.close(wait_r)
        return
    os.close(wait_r)
    ch.send(CHILD_PID, str(pid))
    os._exit(0)


# -- the seccomp notify fd (both kinds) ---------------------------------------

def compile_seccomp(linux_spec):
    """The container's seccomp filter (typed at load), compiled while the
    host's library is still reachable; exec_process() loads it.  Never run
    unconfined when a filter was asked for."""
    model = linux_spec.seccomp if linux_spec is not None else None
    if model is None:
        return None
    try:
        from .security.seccomp_filter import compile_filter
    except ImportError:
        from .errors import NotSupported

        raise NotSupported("linux.seccomp: this pyrunc has no seccomp support") from None
    return compile_filter(model)


def hand_over_notify_fd(seccomp, ch):
    """A filter with SCMP_ACT_NOTIFY goes in while the runtime still
    listens (runc's order): the runtime copies the notify fd (or, from an
    unprivileged runtime, receives it) and sends it to the agent.  The
    process is still privileged here, so no_new_privs is not needed yet;
    every syscall it makes from now on is under the filter (runc: NOTIFY on
    write is refused; for an unprivileged runtime, on sendmsg too)."""
    fd = seccomp.load()
    ch.send_notify_fd(fd)
    ch.expect(NOTIFY_TAKEN)
    os.close(fd)


def _final_steps(proc, linux_spec, seccomp, runtime_identity, ch, listen_fds=0):
    """What both kinds do last before the wait/exec: env, the executable
    (never the runtime's own binary), memory policy, the notify handoff.
    -> (exe, env, the filter still to load or None)."""
    from .security.exec_guard import refuse_runtime_binary

    env = build_env(proc)
    if listen_fds:
        # socket activation: the init is pid 1 (runc sets 1 regardless)
        env["LISTEN_FDS"] = str(listen_fds)
        env["LISTEN_PID"] = "1"
    exe = find_executable(proc.args[0], env.get("PATH"), proc.cwd)
    refuse_runtime_binary(exe, runtime_identity, proc.args[0])
    if linux_spec is not None and linux_spec.memory_policy is not None:
        # Here, not at execve: a policy the kernel refuses fails create
        # (as runc); before any seccomp filter, which may refuse it.
        from .security.process_attrs import apply_memory_policy

        apply_memory_policy(linux_spec.memory_policy)
    if seccomp is not None and seccomp.notify:
        hand_over_notify_fd(seccomp, ch)
        seccomp = None
    return exe, env, seccomp


def preload(proc, linux_spec, hooks=False, fd_socket=False):
    """After pivot_root (init) or setns into the mount namespace (exec) the
    host's Python library is out of reach: import now everything the
    process still needs before execve."""
    import resource  # noqa: F401  (rlimits)

    from .security import capabilities, exec_guard  # noqa: F401
    if has_process_attrs(proc, linux_spec):
        from .security import process_attrs  # noqa: F401
    if proc.apparmor_profile or proc.selinux_label:
        from .security import lsm  # noqa: F401
    if fd_socket:
        import _socket  # noqa: F401  (channel.send_fd; an extension module on most Pythons)
    if hooks:
        import select  # noqa: F401  (hooks.run_one; an extension module outside Debian's python)

        from . import hooks, jsonio  # noqa: F401
    if proc.terminal:
        import _socket  # noqa: F401,F811  (console.setup_console sends the pty master)
        import fcntl  # noqa: F401
        import stat  # noqa: F401

        from . import console  # noqa: F401


# -- the init ----------------------------------------------------------------------

class InitJob:
    """What the container's init needs, computed by the runtime before fork."""

    __slots__ = ("spec", "rootfs", "plan", "fifo_fd", "no_pivot", "no_new_keyring", "preserve_fds",
                 "listen_fds", "console_fd", "cgroup_manager", "container_id", "idmapped", "notify_by_fd",
                 "bind_sources")

    def __init__(self, spec, rootfs, plan, fifo_fd, container_id, no_pivot=False, no_new_keyring=False,
                 preserve_fds=0, listen_fds=0, console_fd=None, cgroup_manager=None, idmapped=None,
                 notify_by_fd=False):
        self.spec = spec
        self.rootfs = rootfs
        self.plan = plan
        self.fifo_fd = fifo_fd  # an O_PATH handle: the state dir is out of reach after pivot_root
        self.container_id = container_id
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.listen_fds = listen_fds
        self.console_fd = console_fd
        self.cgroup_manager = cgroup_manager
        self.idmapped = idmapped or {}
        self.notify_by_fd = notify_by_fd
        self.bind_sources = None  # opened by stage 1 (entered)

    def prepare(self):
        """Nothing before the namespaces: the rootfs is still reachable."""

    def entered(self, entry):
        """Stage 1, namespaces made, still the runtime's kernel uid (the
        switch to the namespace's root comes next): bind sources that a
        directory only the host's root may enter hides from the
        container's root are opened now, in the container's mount
        namespace, as runc's parent opens them there."""
        if entry.new_user and self.plan.has("mount"):
            from .rootfs import open_bind_sources

            self.bind_sources = open_bind_sources(self.spec.mounts)

    def become(self, ch, kernel=linux):
        try:
            exe, env, seccomp, state_doc = self._create(ch, kernel)
        except BaseException as e:  # noqa: B902
            ch.fail(e)
        self._wait_for_start(exe, env, seccomp, state_doc, kernel)

    def _create(self, ch, kernel):
        """Everything up to READY ... COMMIT."""
        spec = self.spec
        plan = self.plan
        debug("child process in init()")
        kernel.setsid()
        from .rootfs import RootfsBuilder
        from .security.exec_guard import runtime_exe_identity

        runtime_identity = runtime_exe_identity()
        builder = RootfsBuilder(spec, self.rootfs, in_userns=plan.has("user"),
                                cgroup_manager=self.cgroup_manager,
                                new_cgroupns="cgroup" in plan.new_types,
                                own_mount_ns=plan.has("mount"), idmapped=self.idmapped,
                                bind_sources=self.bind_sources, kernel=kernel)
        builder.prepare()
        ch.send(MOUNTS_READY)  # the runtime runs prestart/createRuntime hooks
        ch.expect(HOOKS_DONE)
        state_doc = _state_doc(ch.expect(STATE))
        hooks = spec.hooks.get("createContainer")
        if hooks:
            from .hooks import run_hooks

            kernel.chdir(self.rootfs)  # runc runs them from the rootfs: relative paths are the container's
            run_hooks("createContainer", hooks, state_doc)
        preload(spec.process, spec.linux, hooks=bool(spec.hooks.get("startContainer")),
                fd_socket=self.notify_by_fd)
        seccomp = compile_seccomp(spec.linux)
        builder.pivot(self.no_pivot)
        if spec.process.terminal:
            from .console import setup_console

            setup_console(self.console_fd, spec.process.console_size, mount_console=True)
        # sysctls before readonlyPaths (usually /proc/sys) go read-only,
        # through the procfs this init mounted (pivot checked it is there).
        set_identity_names(spec, plan, kernel)
        apply_sysctl(spec.linux.sysctl, builder.proc_handle())
        builder.finalize()
        if not self.no_new_keyring:
            join_new_keyring(self.container_id)
        exe, env, seccomp = _final_steps(spec.process, spec.linux, seccomp, runtime_identity, ch,
                                         self.listen_fds)
        debug("init: closing the pipe to signal completion")
        ch.send(READY)
        if ch.recv()[0] != COMMIT:
            os._exit(1)  # the runtime died before committing the state
        ch.close()
        return exe, env, seccomp, state_doc

    def _wait_for_start(self, exe, env, seccomp, state_doc, kernel):
        """Created: wait for `start`.  Opening for writing blocks until start
        opens the fifo for reading; the fd is close-on-exec, so start sees
        EOF exactly when execve succeeded (or the init died)."""
        wfd = -1
        try:
            wfd = reopen_for_writing(self.fifo_fd)
            os.close(self.fifo_fd)
            os.write(wfd, b"0")
            hooks = self.spec.hooks.get("startContainer")
            before_exec = None
            if hooks:
                from .hooks import run_hooks

                def before_exec():
                    run_hooks("startContainer", hooks, state_doc)
            exec_process(self.spec.process, exe, env, self.preserve_fds + self.listen_fds, keep_fd=wfd,
                         linux_spec=self.spec.linux, seccomp=seccomp, before_exec=before_exec, kernel=kernel)
        except BaseException as e:  # noqa: B902
            # Tell `start` through the fifo; if it could not even be opened,
            # the container's stderr is the only channel left.
            try:
                os.write(wfd if wfd >= 0 else 2, (describe(e) + ("" if wfd >= 0 else "\n")).encode())
            except OSError:
                pass
            os._exit(getattr(e, "exit_code", 1) or 1)


def _state_doc(payload):
    from .jsonio import loads

    doc = loads(payload)
    doc["pid"] = os.getpid()  # hooks in the container's namespaces see its pid
    return doc


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


def set_identity_names(spec, plan, kernel=linux):
    if spec.hostname is not None and plan.has("uts"):
        kernel.sethostname(spec.hostname)
    if spec.domainname is not None and plan.has("uts"):
        kernel.setdomainname(spec.domainname)


def apply_sysctl(sysctl, proc_fd=-1):
    """Each key written under proc_fd's sys/ (a procfs handle) when there is
    one, never through a symlink; else by the name /proc/sys."""
    from .errors import PyruncError

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


# -- a process exec'd into a running container -------------------------------------

class ExecJob:
    """What `exec`'s process needs, computed by the runtime before fork."""

    __slots__ = ("proc", "linux_spec", "console_fd", "preserve_fds", "container_id", "no_new_keyring",
                 "notify_by_fd", "seccomp", "runtime_identity")

    def __init__(self, proc, linux_spec, container_id, console_fd=None, preserve_fds=0,
                 no_new_keyring=False, notify_by_fd=False):
        self.proc = proc
        self.linux_spec = linux_spec
        self.container_id = container_id
        self.console_fd = console_fd
        self.preserve_fds = preserve_fds
        self.no_new_keyring = no_new_keyring
        self.notify_by_fd = notify_by_fd
        self.seccomp = None
        self.runtime_identity = None

    def prepare(self):
        """Before setns into the mount namespace: imports, the runtime's
        identity, the compiled filter."""
        from .security.exec_guard import runtime_exe_identity

        preload(self.proc, self.linux_spec, fd_socket=self.notify_by_fd)
        self.runtime_identity = runtime_exe_identity()
        self.seccomp = compile_seccomp(self.linux_spec)

    def entered(self, entry):
        """Nothing between entering the namespaces and the fork."""

    def become(self, ch, kernel=linux):
        try:
            debug("child process in init()")
            kernel.setsid()
            proc = self.proc
            if proc.terminal:
                from .console import setup_console

                setup_console(self.console_fd, proc.console_size)
            if not self.no_new_keyring:
                join_new_keyring(self.container_id)
            exe, env, seccomp = _final_steps(proc, self.linux_spec, self.seccomp, self.runtime_identity, ch)
            ch.close_read()
            debug("setns_init: about to exec")
            # The write end stays open through execve (close-on-exec): EOF
            # tells the runtime the exec succeeded, ERROR why it did not.
            exec_process(proc, exe, env, self.preserve_fds, keep_fd=ch.wfd, linux_spec=self.linux_spec,
                         seccomp=seccomp, kernel=kernel)
        except BaseException as e:  # noqa: B902
            ch.fail(e)


__all__ = ["Entry", "InitJob", "ExecJob", "child_main", "ChildError"]
