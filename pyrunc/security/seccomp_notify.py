"""The agent's side of a seccomp notify fd: receive a notification, answer it.

For seccomp agents written with pyrunc and for the tests.  receive()
blocks in the kernel with the GIL released (cffi), so a listener thread
does not stall the rest of the process.
"""
import os

from .._native_seccomp import ffi, lib

# SECCOMP_USER_NOTIF_FLAG_CONTINUE: let the syscall run as if allowed.
FLAG_CONTINUE = 1
ECANCELED = 125


class Notification:
    __slots__ = ("id", "pid", "flags", "nr", "arch", "instruction_pointer", "args")

    def __init__(self, req):
        self.id = req.id
        self.pid = req.pid
        self.flags = req.flags
        self.nr = req.data.nr
        self.arch = req.data.arch
        self.instruction_pointer = req.data.instruction_pointer
        self.args = tuple(req.data.args)

    @property
    def syscall_name(self):
        """The syscall's name for the notification's arch ('' if unknown)."""
        p = lib.seccomp_syscall_resolve_num_arch(self.arch, self.nr)
        if p == ffi.NULL:
            return ""
        try:
            return ffi.string(p).decode()
        finally:
            lib.free(p)

    def __repr__(self):
        return "Notification(id=%d, pid=%d, nr=%d %s)" % (self.id, self.pid, self.nr, self.syscall_name)


def _fail(rc, what):
    # libseccomp reports ECANCELED for every failed ioctl; errno has the cause.
    err = ffi.errno if rc == -ECANCELED and ffi.errno else -rc
    raise OSError(err, "%s: %s" % (what, os.strerror(err)))


_probed = []


def _probe():
    """libseccomp answers the notify calls with EOPNOTSUPP until it has
    probed the kernel, which seccomp_api_get() does: an agent process that
    never built a filter itself must ask once."""
    if not _probed:
        lib.seccomp_api_get()
        _probed.append(True)


def receive(fd):
    """Block until a notification arrives on fd -> Notification."""
    _probe()
    req = ffi.new("struct seccomp_notif *")  # zeroed, as the kernel demands
    ffi.errno = 0
    rc = lib.seccomp_notify_receive(fd, req)
    if rc < 0:
        _fail(rc, "seccomp notify receive")
    return Notification(req)


def respond(fd, notif_id, val=0, error=0, continue_syscall=False):
    """Answer notification notif_id: the syscall returns `val`, or fails
    with errno `error` (positive), or runs for real (continue_syscall)."""
    _probe()
    resp = ffi.new("struct seccomp_notif_resp *")
    resp.id = notif_id
    resp.val = 0 if continue_syscall else val
    resp.error = 0 if continue_syscall else -abs(error)
    resp.flags = FLAG_CONTINUE if continue_syscall else 0
    ffi.errno = 0
    rc = lib.seccomp_notify_respond(fd, resp)
    if rc < 0:
        _fail(rc, "seccomp notify respond")


def id_valid(fd, notif_id):
    """Whether the notified process is still waiting on notif_id (the
    TOCTOU check an agent makes after reading the target's memory)."""
    _probe()
    return lib.seccomp_notify_id_valid(fd, notif_id) == 0
