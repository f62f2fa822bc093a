"""The runtime side of forking a process into a container: one routine for
the init (create) and for exec's processes.  The child side is child.py,
the messages channel.py.

spawn() forks either straight into the container's pid namespace (no user
or time namespace: `unshare`/`setns(CLONE_NEWPID)` change the runtime's
pid_for_children only, and it returns to its own namespace right after the
fork) or through stage 1 (exec: the middle process), writes the id maps
of a new user namespace, joins the cgroup for the child where the child
does not join it itself, says GO, learns the pid, and reaps stage 1.  The
caller goes on with the kind's own messages on the returned channel;
take_notify_fd()/to_listener() are the seccomp notify handoff of both.
"""
import os

from . import linux
from .channel import CHILD_PID, GO, NOTIFY_TAKEN, USERNS_READY, Pair


class Spawned:
    """A forked container process: its host pid, the runtime's end of the
    channel, and whether it is the runtime's own child (direct fork)."""

    __slots__ = ("pid", "channel", "ours")

    def __init__(self, pid, channel, ours):
        self.pid = pid
        self.channel = channel
        self.ours = ours


def spawn(entry, job, id_maps=None, join_cgroup=None, pidns=(None, False), kernel=linux):
    """Fork `job` into the container as `entry` says.  `id_maps`: (uid
    mappings, gid mappings) for a new user namespace; `join_cgroup(pid)`:
    what the runtime joins for the child before GO; `pidns`: (fd of a pid
    namespace to fork into, or a new one) for the direct fork.  -> Spawned
    once the child was told GO (and, two-stage, stage 1 reported the pid)."""
    from .child import child_main

    pair = Pair(with_fd_socket=job.notify_by_fd)
    # The runtime must not be dumpable (ptrace-able, /proc/pid/exe readable)
    # by anything in the container (CVE-2019-5736).  Unprivileged, it can
    # only write the child's id maps while the child is dumpable: then
    # both drop it right after the maps (stage 1 has only an empty user
    # namespace by then).
    maps_first = os.geteuid() != 0 and entry.new_user
    if not maps_first:
        kernel.set_dumpable(False)
    pid = _fork(entry, pidns, kernel)
    if pid == 0:
        child_main(entry, job, pair.child(), kernel)  # never returns
        os._exit(1)
    ch = pair.parent()
    try:
        if entry.new_user:
            from .namespaces import write_id_maps

            ch.expect(USERNS_READY)
            write_id_maps(pid, id_maps[0], id_maps[1], deny_setgroups=os.geteuid() != 0)
        if maps_first:
            kernel.set_dumpable(False)
        if join_cgroup is not None:
            join_cgroup(pid)
        ch.send(GO)
        child = int(ch.expect(CHILD_PID)) if entry.two_stage else pid
    except BaseException:
        # The child may be blocked waiting for GO: reaping it without this
        # would wait forever (a failed cgroup join hung create).
        _kill(pid)
        if not entry.two_stage:
            reap(pid)
        ch.close()
        raise
    finally:
        if entry.two_stage:
            reap(pid)  # stage 1 / the middle
    return Spawned(child, ch, ours=not entry.two_stage)


def _fork(entry, pidns, kernel):
    if entry.two_stage:
        return kernel.fork()
    from .namespaces import fork_into_pid_ns

    # the child joins its cgroup itself: born in its v2 directory where it can be
    return fork_into_pid_ns(pidns[0], new=pidns[1], cgroup=entry.cgroup, kernel=kernel)


def _kill(pid):
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def reap(pid):
    """Wait for our child `pid` (gone already: nothing to do)."""
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


# -- the seccomp notify handoff (both kinds) ----------------------------------

def take_notify_fd(spawned, payload):
    """The process loaded a notify filter and said NOTIFY_FD: our copy of
    the fd, taken with pidfd_getfd (`payload` is its number; runc's way) or
    received on the fd socket (an unprivileged runtime, which may not
    pidfd_getfd its non-dumpable child)."""
    if not payload:
        return spawned.channel.received_fd()
    from .security.seccomp_listener import fetch_fd

    return fetch_fd(spawned.pid, int(payload))


def to_listener(spawned, payload, seccomp, state, pid=None):
    """Take the notify fd, let the process go on (NOTIFY_TAKEN), hand the
    fd (closed here) to linux.seccomp.listenerPath with the state (runc's
    order)."""
    from .security.seccomp_listener import send_to_listener

    fd = take_notify_fd(spawned, payload)
    try:
        spawned.channel.send(NOTIFY_TAKEN)
        send_to_listener(fd, seccomp.listener_path, state, seccomp.listener_metadata, pid=pid)
    finally:
        os.close(fd)
