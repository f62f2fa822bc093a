"""The last steps of every container process, init or exec'd: the
environment, the executable (Go's LookPath, runc's wording), dropping
privileges in runc's order and execve (exec_process); and the check of the
fds a caller passes in.  child.py calls these; they run after pivot_root /
setns(mnt), so they import nothing new there (see child.preload).
"""
import errno
import os

from . import linux
from .errors import ExecError, PyruncError
from .passwd import entry_for_uid  # used after pivot_root: imported now

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def join_new_keyring(cid):
    try:
        linux.join_session_keyring("_ses." + cid)
    except OSError as e:
        # ENOSYS: keyrings not built in; EACCES/EDQUOT as runc tolerates.
        if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EDQUOT):
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


def has_process_attrs(proc, linux_spec):
    """Whether security.process_attrs has anything to do for this process
    (memoryPolicy included): only then is the module imported, and
    preloaded before pivot_root."""
    affinity = proc.exec_cpu_affinity
    return (proc.oom_score_adj is not None or proc.scheduler is not None or proc.io_priority is not None
            or (affinity is not None and bool(affinity.final))
            or (linux_spec is not None
                and (linux_spec.personality is not None or linux_spec.memory_policy is not None)))


def exec_process(proc, exe, env, preserve_fds, keep_fd=-1, linux_spec=None, seccomp=None,
                 before_exec=None, kernel=linux):
    """Drop privileges and execve, in runc's order: rlimits, close fds,
    bounding set, user, capabilities, cwd, no_new_privs, seccomp,
    `before_exec` (the startContainer hooks: runc runs them as the process
    will run, its seccomp filter included), exec.

    Used by the init and by `exec`.  fds 3..3+preserve_fds-1 (socket
    activation and --preserve-fds) reach the process; every other fd is
    closed.  `seccomp` is a compiled filter: without no_new_privs loading
    it is privileged, so it goes in before the capabilities are dropped;
    with no_new_privs as late as possible.  The credential, cwd and exec
    syscalls go through `kernel` (tests pass a recording fake)."""
    import resource

    for rl in proc.rlimits:
        num = getattr(resource, rl.type, None)
        if num is None:
            raise PyruncError("process.rlimits: unknown rlimit %s" % rl.type)
        resource.setrlimit(num, (_rlim(rl.soft), _rlim(rl.hard)))
    if has_process_attrs(proc, linux_spec):
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
    cwd_done = _chdir_cwd(proc.cwd, True, kernel)
    if proc.terminal:
        give_terminal_to(user.uid)
    if caps is not None:
        kernel.prctl(linux.PR_SET_KEEPCAPS, 1)
    set_groups(user.additional_gids, kernel)
    kernel.setresgid(user.gid, user.gid, user.gid)
    kernel.setresuid(user.uid, user.uid, user.uid)
    if caps is not None:
        kernel.prctl(linux.PR_SET_KEEPCAPS, 0)
        capabilities.apply_sets(caps)
    if not cwd_done:
        _chdir_cwd(proc.cwd, False, kernel)
    kernel.umask(user.umask if user.umask is not None else 0o022)
    if proc.apparmor_profile or proc.selinux_label:
        from .security.lsm import apply_exec_labels

        apply_exec_labels(proc)
    if proc.no_new_privileges:
        kernel.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp is not None:
        seccomp.load()
    if before_exec is not None:
        before_exec()
    try:
        kernel.execve(exe, proc.args, env)
    except OSError as e:
        code = 126 if e.errno in (errno.EACCES, errno.ENOEXEC) else 127
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
        if e.errno not in (errno.EPERM, errno.EINVAL):  # an owner or group unmapped here
            raise


def _chdir_cwd(cwd, retry_on_eperm, kernel=linux):
    """-> True once in `cwd`; False when refused and a retry is allowed."""
    try:
        kernel.chdir(cwd)
        return True
    except PermissionError:
        if retry_on_eperm:
            return False
        raise PyruncError("process.cwd: chdir %s: Permission denied" % cwd) from None
    except OSError as e:
        raise PyruncError("process.cwd: chdir %s: %s" % (cwd, e.strerror)) from None


def set_groups(gids, kernel=linux):
    """setgroups(2), except where a user namespace denies it (rootless):
    then only an empty list is acceptable, and it is already in force."""
    try:
        kernel.setgroups(gids)
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


def check_inherited_fds(preserve_fds, socket_activation=True):
    """fds the caller passes to the container (create and exec alike):
    socket activation's (create only, as runc: when LISTEN_PID names us, as
    systemd's sd_listen_fds checks) then --preserve-fds more.  Checked
    before the runtime opens any fd of its own, so none of ours can sit at
    one of those numbers.  -> the number of socket-activation fds."""
    listen = 0
    if socket_activation and os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") == str(os.getpid()):
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
