"""`run`: create + start, then (in the foreground) wait for the container,
forward signals to it, and delete it when it exits."""
import os

from . import linux


def run(cid, bundle, root, opts, detach=False, keep=False):
    from .container import Container

    if not detach:
        # The init is orphaned when stage 1 exits; as a subreaper we get it
        # back and can wait for its exit status.
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    c = Container.create(cid, bundle, root, opts)
    try:
        c.start()
    except BaseException:
        c.dir.unlock()
        _delete(cid, root)
        raise
    if detach:
        return 0
    c.dir.unlock()
    status = wait_forwarding_signals(c.pid)
    if not keep:
        _delete(cid, root)
    return status


def _delete(cid, root):
    from .container import Container
    from .errors import ContainerNotFound

    try:
        Container.load(cid, root).delete(force=True)
    except ContainerNotFound:
        pass


FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def wait_forwarding_signals(pid):
    """Reap children until `pid` exits; return its code (128+sig if killed)."""
    import _signal as signal

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in FORWARDED:
        signal.signal(getattr(signal, name), forward)
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if wpid == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
