"""OCI hooks: run with the container state on stdin, args, env and timeout.

Which hooks run where (runtime-spec "Lifecycle" and config.md "hooks"):
  prestart, createRuntime  -- the runtime, runtime namespaces, during create
  createContainer          -- the init, container namespaces, before pivot_root
  startContainer           -- the init, container namespaces, before execve
  poststart                -- the runtime, after the user process started
  poststop                 -- the runtime, during delete

A hook is a plain fork + execve (no subprocess: this also runs in the init
after pivot_root, where only modules imported beforehand are available).
It gets its own process group, so a timeout kills whatever it spawned too.
"""
import os

from .errors import PyruncError

# Failure of these stops the operation; the others only warn and go on with
# the next hook (runtime-tools poststart_fail / poststop_fail).
FATAL_KINDS = frozenset(("prestart", "createRuntime", "createContainer", "startContainer"))

# The `status` each kind sees on stdin.  The create-time hooks run after
# the environment exists and before the user process ran: "created" (what
# runtime-tools' hooks_stdin expects of prestart).
STATUS_FOR_KIND = {
    "prestart": "created", "createRuntime": "created", "createContainer": "created",
    "startContainer": "created", "poststart": "running", "poststop": "stopped",
}


class HookError(PyruncError):
    pass


def run_hooks(kind, hooks, state_doc, warn=None):
    """Run every hook of one kind in order.  Fatal kinds raise HookError on
    the first failure; poststart/poststop failures are passed to `warn`."""
    if not hooks:
        return
    from .jsonio import dumps

    doc = dict(state_doc)
    doc["status"] = STATUS_FOR_KIND.get(kind, doc.get("status"))
    payload = dumps(doc).encode()
    for i, hook in enumerate(hooks):
        err = run_one(hook, payload)
        if err is None:
            continue
        # "error running hook #N" is runc's (tools match on it); then which kind
        msg = "error running hook #%d (%s, %s): %s" % (i, kind, hook.path, err)
        if kind in FATAL_KINDS:
            raise HookError(msg)
        if warn is not None:
            warn(msg)


def run_one(hook, payload):
    """-> None on success, else a one-line description of the failure."""
    import select

    if hook.env is None:
        env = os.environ  # no `env` given: the runtime's own, as runc and crun do
    else:
        env = {}
        for item in hook.env:
            k, sep, v = item.partition("=")
            if sep:
                env[k] = v
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
        raise
    if pid == 0:  # the hook
        _exec_hook(hook, env, in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    os.set_blocking(in_w, False)
    stdin = [in_w]  # closed (and set to -1) once the state is written
    pidfd = os.pidfd_open(pid)
    try:
        out, timed_out = _feed_and_collect(select, pidfd, stdin, out_r, payload, hook.timeout)
        if timed_out:
            _kill_group(pid)  # still unreaped: the group id cannot be reused yet
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
        os.close(out_r)
        if stdin[0] >= 0:
            os.close(stdin[0])
    if timed_out:
        return "timed out after %ss (killed)" % hook.timeout
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    if os.WIFSIGNALED(status):
        import _signal

        sig = os.WTERMSIG(status)
        # Go's words as well ("signal: bad system call"): tools match on runc's
        what = "killed by signal %d (signal: %s)" % (sig, (_signal.strsignal(sig) or "?").lower())
    else:
        what = "exit status %d" % os.WEXITSTATUS(status)
    text = out.decode(errors="replace").strip().replace("\n", " ")
    return what + (": " + text[-400:] if text else "")


def _exec_hook(hook, env, in_r, out_w):
    try:
        os.setpgid(0, 0)
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.closerange(3, 1 << 20)  # no runtime fd (preserved fds included) reaches a hook
        os.execve(hook.path, hook.args, env)
    except OSError as e:
        try:
            os.write(2, ("cannot execute %s: %s" % (hook.path, e.strerror)).encode())
        except OSError:
            pass
    finally:
        os._exit(127)


def _feed_and_collect(select, pidfd, stdin, out_r, payload, timeout):
    """Write the state to the hook's stdin and read its output until it
    exits (or the deadline passes).  -> (output, timed_out)."""
    import time

    in_w = stdin[0]
    deadline = time.monotonic() + timeout if timeout else None
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_r, select.POLLIN)
    poller.register(in_w, select.POLLOUT)
    out = b""
    sent = 0
    out_open = True
    while True:
        wait_ms = -1
        if deadline is not None:
            wait_ms = int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                return out, True
        try:
            events = poller.poll(wait_ms)
        except InterruptedError:
            continue
        exited = False
        for fd, ev in events:
            if fd == pidfd:
                exited = True
            elif fd == out_r:
                chunk = os.read(out_r, 65536)
                if chunk:
                    out = (out + chunk)[-8192:]
                else:
                    poller.unregister(out_r)
                    out_open = False
            elif fd == in_w:
                try:
                    sent += os.write(in_w, payload[sent:]) if not ev & select.POLLERR else len(payload)
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    sent = len(payload)  # the hook closed its stdin unread
                if sent >= len(payload):
                    poller.unregister(in_w)
                    os.close(in_w)  # EOF for hooks that read to the end
                    stdin[0] = -1
        if exited:
            if out_open:
                out += _read_available(out_r)
            return out, False


def _read_available(fd):
    """What the exited hook wrote; a child it left running may hold the
    pipe open, so never wait for EOF."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
