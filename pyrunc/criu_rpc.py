"""CRIU's RPC as runc speaks it: `criu swrk 3` with one end of a
SOCK_SEQPACKET socket pair on its fd 3, one protobuf `criu_req` per
packet, `criu_resp` packets back (NOTIFY ones answered until the final one).

The messages are proto2 (CRIU's images/rpc.proto).  Only the fields pyrunc
sends or reads are described below, by field number, and encoded by hand:
about 60 lines against a generated module plus the `protobuf` package,
whose import alone costs ~40 ms here (see the commit adding this file).
Unknown fields in a response are skipped, as proto2 requires.
"""
import os

from .errors import PyruncError

# -- the schema: name -> (field number, kind); a dict kind is a sub-message --

EXT_MOUNT = {"key": (1, "str"), "val": (2, "str")}
JOIN_NS = {"ns": (1, "str"), "ns_file": (2, "str"), "extra_opt": (3, "str")}
INHERIT_FD = {"key": (1, "str"), "fd": (2, "int")}
CGROUP_ROOT = {"ctrl": (1, "str"), "path": (2, "str")}
FEATURES = {"mem_track": (1, "bool"), "lazy_pages": (2, "bool"), "pidfd_store": (3, "bool")}

OPTS = {
    "images_dir_fd": (1, "int"), "pid": (2, "int"), "leave_running": (3, "bool"),
    "ext_unix_sk": (4, "bool"), "tcp_established": (5, "bool"), "evasive_devices": (6, "bool"),
    "shell_job": (7, "bool"), "file_locks": (8, "bool"), "log_level": (9, "int"),
    "log_file": (10, "str"), "ps": (11, {"address": (1, "str"), "port": (2, "int")}),
    "notify_scripts": (12, "bool"), "root": (13, "str"),
    "parent_img": (14, "str"), "track_mem": (15, "bool"), "auto_dedup": (16, "bool"),
    "work_dir_fd": (17, "int"), "ext_mnt": (23, EXT_MOUNT), "manage_cgroups": (24, "bool"),
    "cg_root": (25, CGROUP_ROOT), "rst_sibling": (26, "bool"), "inherit_fd": (27, INHERIT_FD),
    "manage_cgroups_mode": (34, "int"), "external": (37, "str"), "empty_ns": (38, "int"),
    "join_ns": (39, JOIN_NS), "freeze_cgroup": (44, "str"), "lazy_pages": (48, "bool"),
    "status_fd": (49, "int"), "orphan_pts_master": (50, "bool"), "config_file": (51, "str"),
    "lsm_profile": (53, "str"), "cgroup_yard": (60, "str"), "lsm_mount_context": (63, "str"),
}
REQ = {"type": (1, "int"), "opts": (2, OPTS), "notify_success": (3, "bool"),
       "keep_open": (4, "bool"), "features": (5, FEATURES)}
RESP = {
    "type": (1, "int"), "success": (2, "bool"), "dump": (3, {"restored": (1, "bool")}),
    "restore": (4, {"pid": (1, "int")}), "notify": (5, {"script": (1, "str"), "pid": (2, "int")}),
    "cr_errno": (7, "int"), "features": (8, FEATURES), "cr_errmsg": (9, "str"),
    "version": (10, {"major_number": (1, "int"), "minor_number": (2, "int"), "gitid": (3, "str"),
                     "sublevel": (4, "int"), "extra": (5, "int"), "name": (6, "str")}),
    "status": (11, "int"),
}

# criu_req_type
DUMP, RESTORE, CHECK, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION = 1, 2, 3, 4, 6, 9, 10
TYPE_NAMES = {DUMP: "dump", RESTORE: "restore", CHECK: "check", PRE_DUMP: "pre-dump",
              NOTIFY: "notify", FEATURE_CHECK: "feature-check", VERSION: "version"}
# criu_cg_mode, by runc's --manage-cgroups-mode names
CG_MODES = {"soft": 3, "full": 4, "strict": 5}


# -- proto2 wire format -------------------------------------------------------

def _varint(n):
    n &= (1 << 64) - 1  # negative int32s go out as 10-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(schema, doc):
    out = []
    for name, value in doc.items():
        if value is None:
            continue
        num, kind = schema[name]
        for v in value if isinstance(value, list) else (value,):
            if isinstance(kind, dict) or kind == "str":
                data = encode(kind, v) if isinstance(kind, dict) else v.encode()
                out.append(_varint(num << 3 | 2) + _varint(len(data)) + data)
            else:
                out.append(_varint(num << 3) + _varint(int(v)))
    return b"".join(out)


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def decode(schema, data):
    by_num = {num: (name, kind) for name, (num, kind) in schema.items()}
    doc, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = data[i:i + size], i + size
        else:
            raise CriuError("criu sent a malformed message (wire type %d)" % wire)
        if num not in by_num:
            continue
        name, kind = by_num[num]
        if (wire == 2) != (isinstance(kind, dict) or kind == "str") or wire in (1, 5):
            continue  # not the wire type this schema has for it: skipped as unknown
        if isinstance(kind, dict):
            value = decode(kind, value)
        elif kind == "str":
            value = bytes(value).decode(errors="replace")
        elif kind == "bool":
            value = bool(value)
        elif value >= 1 << 63:
            value -= 1 << 64
        doc[name] = value
    return doc


# -- the swrk session -----------------------------------------------------------

class CriuError(PyruncError):
    pass


class CriuTimeout(CriuError):
    """criu said nothing for longer than answer_timeout()."""


def find_criu(path):
    """The binary `--criu` names (a bare name is looked up on PATH)."""
    if "/" not in path:
        for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
            cand = os.path.join(d or ".", path)
            if os.access(cand, os.X_OK) and os.path.isfile(cand):
                return cand
        raise CriuError("criu binary %r not found on PATH (install CRIU or give --criu PATH)" % path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise CriuError("criu binary %s: not an executable file (--criu)" % path)
    return path


class Swrk:
    """One `criu swrk` process.  `stdio`: the fds criu gets as 0, 1, 2 (a
    restored process may inherit them); `extra_fds` become 4, 5, ..."""

    def __init__(self, binary, stdio=None, extra_fds=(), prepare=None):
        """`prepare`: run in the child before criu is executed."""
        import _socket

        self.binary = binary
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            self.pid = _spawn(binary, theirs.fileno(), stdio, extra_fds, prepare)
        finally:
            theirs.close()  # criu dying must give us EOF, not a hang
        self.status = None

    def request(self, req_type, opts=None, on_notify=None, **extra):
        """Send one request; answer NOTIFYs with on_notify(script, pid,
        fds); -> the final response (raises CriuError if it failed)."""
        req = dict(extra, type=req_type)
        if opts is not None:
            req["opts"] = opts
        self._send(req)
        while True:
            resp, fds = self._recv(req_type)
            if not resp.get("success"):
                for fd in fds:
                    os.close(fd)
                raise CriuError(_failure_text(req_type, resp))
            if resp.get("type") != NOTIFY:
                return resp
            note = resp.get("notify") or {}
            try:
                if on_notify is not None:
                    on_notify(note.get("script", ""), note.get("pid", 0), fds)
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._send({"type": NOTIFY, "notify_success": True})

    def _send(self, req):
        try:
            self.sock.send(encode(REQ, req))
        except OSError as e:
            raise CriuError("criu swrk: %s" % (e.strerror or e)) from None

    def _recv(self, req_type):
        from .channel import recv_fds  # the one SCM_RIGHTS receiver

        self._await_answer(req_type)
        try:
            fds, data = recv_fds(self.sock.fileno(), 1 << 20, 16)
        except OSError as e:
            raise CriuError("criu swrk: %s" % (e.strerror or e)) from None
        if not data:
            code = self.wait(EXIT_GRACE)
            raise CriuError("criu %s: criu exited (%s) without an answer" % (TYPE_NAMES.get(req_type, req_type), status_text(code)))
        return decode(RESP, data), fds

    def _await_answer(self, req_type):
        """Wait, bounded, for criu's next message: a criu stuck (a lazy
        restore whose page source died, a dump nobody pulls pages from)
        is killed rather than waited for forever."""
        import select

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        if poller.poll(answer_timeout() * 1000):
            return
        self.kill()
        raise CriuTimeout("criu %s: no answer from criu in %d s (%s=SECONDS to wait longer); criu killed"
                        % (TYPE_NAMES.get(req_type, req_type), answer_timeout(), TIMEOUT_ENV))

    def close(self):
        """Close our end (criu exits on EOF) and reap criu, killing it if it
        has not exited within EXIT_GRACE seconds: -> its wait status."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        return self.wait(EXIT_GRACE)

    def kill(self):
        """SIGKILL criu (its restored children are the caller's to kill,
        by cgroup) and reap it."""
        if self.status is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
        self.wait()

    def wait(self, grace=None):
        """Reap criu; with `grace`, SIGKILL it after that many seconds."""
        import time

        deadline = None if grace is None else time.monotonic() + grace
        while self.status is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:
                self.status = 0
                break
            except InterruptedError:
                continue
            if pid:
                self.status = status
            elif time.monotonic() >= deadline:
                os.kill(self.pid, 9)
                deadline = None
            else:
                time.sleep(0.02)
        return self.status


TIMEOUT_ENV = "PYRUNC_CRIU_TIMEOUT"
DEFAULT_TIMEOUT = 600  # s of silence from criu: a dump writes GBs between messages
EXIT_GRACE = 30        # s for criu to exit once its socket is closed


def answer_timeout():
    try:
        value = int(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    except ValueError:
        raise PyruncError("%s: not a number of seconds" % TIMEOUT_ENV) from None
    return max(value, 1)


def _spawn(binary, sock_fd, stdio, extra_fds, prepare):
    """fork + exec criu with `sock_fd` as its fd 3 and `extra_fds` from 4."""
    wanted = list(stdio or (0, 1, 2)) + [sock_fd] + list(extra_fds)
    pid = os.fork()
    if pid:
        return pid
    try:
        if prepare is not None:
            prepare()
        # Lift every source above the targets first, then dup2 into place:
        # a source number may be another's target.
        high = [_dup_above(fd, len(wanted)) for fd in wanted]
        for target, src in enumerate(high):
            os.dup2(src, target, inheritable=True)
        _close_from(len(wanted))
        os.execv(binary, [binary, "swrk", "3"])
    except BaseException:  # noqa: BLE001 - the child must never return
        pass
    os._exit(127)


def _dup_above(fd, floor):
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _close_from(first):
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = []
    for name in names:
        fd = int(name)
        if fd >= first:
            try:
                os.close(fd)
            except OSError:
                pass


def status_text(status):
    if status is None:
        return "no status"
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    return "exit status %d" % os.WEXITSTATUS(status)


def _failure_text(req_type, resp):
    what = TYPE_NAMES.get(req_type, str(req_type))
    msg = resp.get("cr_errmsg") or ""
    errno_ = resp.get("cr_errno") or 0
    detail = msg or (os.strerror(errno_) if errno_ else "")
    return "criu %s failed%s" % (what, ": " + detail if detail else "")


def version_number(resp):
    """CRIU's version as runc compares it: major*10000 + minor*100 + sublevel."""
    v = resp.get("version") or {}
    return v.get("major_number", 0) * 10000 + v.get("minor_number", 0) * 100 + v.get("sublevel", 0)
