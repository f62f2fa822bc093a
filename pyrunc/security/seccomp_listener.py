"""Handing the seccomp notify fd to the agent (runtime-spec "seccomp listener").

The init loads the filter and gets the notify fd; the runtime side takes a
copy of it (fetch_fd: pidfd_getfd, as runc does, needing only the fd number
over the existing sync pipe; or send_fd/recv_fd over a unix socket pair)
and sends it to `linux.seccomp.listenerPath` with send_to_listener(): one
SCM_RIGHTS message whose data is the container process state JSON

    {"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state": {...}}

`socket` is imported here only, never on a verb's hot path.
"""
import os
import socket
import sys

from .. import OCI_VERSION
from ..errors import PyruncError

SECCOMP_FD_NAME = "seccompFd"
MAX_MESSAGE = 1 << 16


def fetch_fd(pid, fd):
    """A close-on-exec copy of process `pid`'s fd number `fd`."""
    from .._native_seccomp import ffi, lib

    pidfd = os.pidfd_open(pid)
    try:
        got = lib.pyrunc_pidfd_getfd(pidfd, fd)
        if got < 0:
            err = ffi.errno
            raise OSError(err, "pidfd_getfd(pid %d, fd %d): %s" % (pid, fd, os.strerror(err)))
        return got
    finally:
        os.close(pidfd)


def _fd_bytes(fds):
    return b"".join(int(f).to_bytes(4, sys.byteorder, signed=True) for f in fds)


def send_fd(sock_fd, fd, data=b"\0"):
    """Send fd over the connected unix socket sock_fd (not closed) with
    `data` (channel.send_fd, the one SCM_RIGHTS sender)."""
    from ..channel import send_fd as send

    send(sock_fd, fd, data)


def recv_fd(sock_fd, bufsize=MAX_MESSAGE):
    """-> (fd, data) from one message on sock_fd (not closed); the fd is
    close-on-exec.  fd is None when the message carried none; any extra
    fds are closed (channel.recv_fd)."""
    from ..channel import recv_fd as recv

    return recv(sock_fd, bufsize)


def container_process_state(state, metadata="", pid=None):
    """runtime-spec's containerProcessState for the seccomp agent."""
    doc = {
        "ociVersion": OCI_VERSION,
        "fds": [SECCOMP_FD_NAME],
        "pid": state.get("pid") if pid is None else pid,
    }
    if metadata:
        doc["metadata"] = metadata
    doc["state"] = state
    return doc


def send_to_listener(fd, listener_path, state, metadata="", pid=None):
    """Connect to the agent's socket and send it `fd` with the container
    process state.  `state` is the container's state document; `pid` the
    process the filter belongs to (default: the state's pid, the init)."""
    from ..jsonio import dumps

    payload = dumps(container_process_state(state, metadata, pid)).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            s.connect(listener_path)
        except OSError as e:
            raise PyruncError("linux.seccomp.listenerPath: failed to connect with seccomp agent at %s: %s"
                              % (listener_path, e.strerror)) from None
        try:
            send_fd(s.fileno(), fd, payload)
        except OSError as e:
            raise PyruncError("linux.seccomp.listenerPath: sending the seccomp fd to %s: %s"
                              % (listener_path, e.strerror)) from None
    finally:
        s.close()
