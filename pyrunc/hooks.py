"""OCI hooks: run with the container state on stdin, args, env and timeout.

Which hooks run where (runtime-spec "Lifecycle"):
  prestart, createRuntime  -- the runtime, runtime namespaces, during create
  createContainer          -- the init, container namespaces, before pivot_root
  startContainer           -- the init, container namespaces, before execve
  poststart                -- the runtime, after the user process started
  poststop                 -- the runtime, during delete
"""
from .errors import PyruncError

# Failure of these stops the operation; the others only warn.
FATAL_KINDS = frozenset(("prestart", "createRuntime", "createContainer", "startContainer"))


class HookError(PyruncError):
    pass


def run_hooks(kind, hooks, state_doc, warn=None):
    """Run every hook of one kind in order.  Fatal kinds raise HookError on
    the first failure; poststart/poststop failures are passed to `warn`."""
    if not hooks:
        return
    from .jsonio import dumps

    payload = dumps(state_doc).encode()
    for i, hook in enumerate(hooks):
        err = run_one(hook, payload)
        if err is None:
            continue
        msg = "%s hook #%d (%s): %s" % (kind, i, hook.path, err)
        if kind in FATAL_KINDS:
            raise HookError(msg)
        if warn is not None:
            warn(msg)


def run_one(hook, payload):
    """-> None on success, else a description of the failure."""
    import subprocess

    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        p = subprocess.run(hook.args, executable=hook.path, env=env, input=payload,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=hook.timeout, close_fds=True)
    except subprocess.TimeoutExpired:
        return "timed out after %ds (killed)" % hook.timeout
    except OSError as e:
        return "cannot execute: %s" % (e.strerror or e)
    if p.returncode != 0:
        what = "exit status %d" % p.returncode if p.returncode > 0 else "killed by signal %d" % -p.returncode
        out = p.stderr.decode(errors="replace").strip() or p.stdout.decode(errors="replace").strip()
        return what + (": " + out.replace("\n", " ") if out else "")
    return None
