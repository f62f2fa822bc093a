"""`run`: create + start, then (in the foreground) wait for the container,
forward signals to it, and delete it when it exits.

In the foreground pyrunc is a child subreaper: the init is orphaned when
stage 1 exits and comes back to us, so its exit status is ours to read.
With process.terminal and no --console-socket, the init sends its pty
master over a socketpair and pyrunc proxies the user's terminal.
"""
import os

from . import linux
from .container import CreateOptions


class RunOptions(CreateOptions):
    """CreateOptions plus the container end of a foreground run's console
    socketpair (create reads it as it would --console-socket)."""

    __slots__ = ("console_fd",)

    def __init__(self, base, console_fd=None):
        super().__init__(**{k: getattr(base, k) for k in CreateOptions.__slots__})
        self.console_fd = console_fd


def run(cid, bundle, root, opts, detach=False, keep=False):
    from .container import Container

    if detach:
        c = Container.create(cid, bundle, root, opts)
        _start_or_delete(c, cid, root)
        return 0
    # The init is orphaned when stage 1 exits; as a subreaper we get it
    # back and can wait for its exit status.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    from .signals import SignalForwarder, wait_forwarding_signals

    forwarder = SignalForwarder()  # signals before the start are held, not fatal
    ours = theirs = None
    if _wants_terminal(bundle, opts):
        from .console import socket_pair

        ours, theirs = socket_pair()
        opts = RunOptions(opts, console_fd=theirs)
    try:
        c = Container.create(cid, bundle, root, opts)
    finally:
        if theirs is not None:
            os.close(theirs)
    master = None
    try:
        if ours is not None:
            from .console import recv_fd

            master = recv_fd(ours)  # sent by the init before create returned
            os.close(ours)
            ours = None
        _start_or_delete(c, cid, root)
        c.dir.unlock()
        forwarder.target(c.pid)
        if master is not None:
            from .console import TerminalProxy

            with TerminalProxy(master) as proxy:
                status = proxy.run(c.pid)
        else:
            status = wait_forwarding_signals(c.pid)
    finally:
        for fd in (ours, master):
            if fd is not None:
                os.close(fd)
    if not keep:
        _delete(cid, root)
    return status


def _wants_terminal(bundle, opts):
    """process.terminal in the bundle's config, with runc's checks for a
    foreground run (a console socket only makes sense when detaching)."""
    from .validate import load_spec

    try:
        _, spec = load_spec(os.path.abspath(bundle or "."))  # memoized for create
    except Exception:  # noqa: BLE001 - create reports a bad config in its own words
        return False
    terminal = bool(spec.process is not None and spec.process.terminal)
    if terminal or opts.console_socket:
        from .console import check_terminal

        check_terminal(terminal, False, opts.console_socket)
    return terminal


def _start_or_delete(c, cid, root):
    try:
        c.start()
    except BaseException:
        c.dir.unlock()
        _delete(cid, root)
        raise


def _delete(cid, root):
    from .container import Container
    from .errors import ContainerNotFound

    try:
        Container.load(cid, root, damaged=True).delete(force=True)
    except ContainerNotFound:
        pass
