"""seccomp filters on the real kernel: each test forks a child that compiles
a filter, sets no_new_privs (so no privilege is needed), loads it and tries
syscalls; the result comes back as the child's exit status."""
import errno
import os
import signal
import socket
import threading

import pytest

from pyrunc import linux
from pyrunc.errors import PyruncError
from pyrunc.security import seccomp_notify
from pyrunc.security.seccomp import Seccomp, fetch_fd, recv_fd, send_fd, send_to_listener
from pyrunc.security.seccomp_filter import flag_supported

BAD = 251  # the child raised


def start_filtered(doc, probe, nnp=True, before_load=None):
    """Fork a child that loads `doc` then exits with probe(notify_fd).
    Fork before starting any thread: a child forked beside a thread can
    inherit a lock that thread holds."""
    pid = os.fork()
    if pid == 0:
        code = 250
        try:
            prepared = Seccomp.from_dict(doc).compile()
            if before_load is not None:
                before_load()
            if nnp:
                linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            code = probe(prepared.load())
        except BaseException as e:  # noqa: B902 (reported through the status)
            try:
                os.write(2, ("seccomp child: %r\n" % (e,)).encode())
            except OSError:
                pass
            code = BAD
        finally:
            os._exit(code)
    return pid


def exit_code(pid):
    """The child's exit status; negative for a signal (-SIGSYS for a seccomp kill)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_filtered(doc, probe, nnp=True, before_load=None):
    return exit_code(start_filtered(doc, probe, nnp, before_load))


def errno_of(fn, *args):
    """0 when fn(*args) works, else its errno."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def allowing(*rules, **extra):
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules)}
    doc.update(extra)
    return doc


def block(names, action="SCMP_ACT_ERRNO", errno_ret=None, args=None):
    rule = {"names": list(names), "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    if args is not None:
        rule["args"] = args
    return rule


# -- ERRNO and the default action ------------------------------------------

def test_errno_with_chosen_value(tmp_path):
    target = str(tmp_path / "d")
    doc = allowing(block(["mkdir", "mkdirat"], errno_ret=errno.EXDEV))
    assert run_filtered(doc, lambda fd: errno_of(os.mkdir, target)) == errno.EXDEV
    assert not os.path.exists(target)
    # the same mkdir without the filter works: the errno came from the filter
    assert errno_of(os.mkdir, target) == 0


def test_errno_defaults_to_eperm():
    doc = allowing(block(["uname"]))
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.EPERM


def test_getcwd_blocked_and_other_syscalls_untouched():
    doc = allowing(block(["getcwd"], errno_ret=errno.ENOTTY))

    def probe(fd):
        if errno_of(os.getpid) or errno_of(os.uname):
            return 1
        return errno_of(os.getcwd)
    assert run_filtered(doc, probe) == errno.ENOTTY


def test_default_action_with_default_errno_ret():
    # Only what Python needs to run and exit is allowed; uname falls to the default.
    allow = ["exit_group", "exit", "write", "brk", "mmap", "munmap", "mprotect", "rt_sigprocmask",
             "rt_sigaction", "futex", "madvise", "mremap", "close", "getpid"]
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EDOM,
           "syscalls": [block(allow, "SCMP_ACT_ALLOW")]}

    def probe(fd):
        if errno_of(os.getpid):
            return 1
        return errno_of(os.uname)
    assert run_filtered(doc, probe) == errno.EDOM


def test_rule_with_the_default_action_is_skipped():
    doc = allowing(block(["getpid"], "SCMP_ACT_ALLOW"), block(["uname"], errno_ret=errno.ENOSPC))
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ENOSPC


def test_unknown_syscall_names_are_ignored():
    doc = allowing(block(["no_such_syscall_xyz", "uname"], errno_ret=errno.ESRCH))
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ESRCH


def test_syscall_of_another_arch_only_is_accepted():
    # socketcall exists on x86 but not x86_64: libseccomp gives it a pseudo number
    doc = allowing(block(["socketcall", "uname"], errno_ret=errno.ESRCH),
                   architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"])
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ESRCH


# -- argument conditions ----------------------------------------------------

OFFSETS = (0o000, 0o022, 0o077, 0o100, 0o777)


def blocked_offsets(conds):
    """Bit i of the result: lseek(fd, OFFSETS[i], SEEK_SET) on /dev/null was
    refused by a filter with `conds` on lseek's offset (arg 1).  lseek
    works for any offset, so only the filter can refuse one."""
    args = [dict(c, index=1) for c in conds]
    doc = allowing(block(["lseek"], errno_ret=errno.EBADE, args=args))

    def probe(fd):
        f = os.open("/dev/null", os.O_RDONLY)
        bits = 0
        for i, off in enumerate(OFFSETS):
            e = errno_of(os.lseek, f, off, os.SEEK_SET)
            if e == errno.EBADE:
                bits |= 1 << i
            elif e:
                return 200
        return bits
    return run_filtered(doc, probe)


def expected_bits(pred):
    return sum(1 << i for i, m in enumerate(OFFSETS) if pred(m))


@pytest.mark.parametrize("op,pred", [
    ("SCMP_CMP_NE", lambda m: m != 0o077),
    ("SCMP_CMP_LT", lambda m: m < 0o077),
    ("SCMP_CMP_LE", lambda m: m <= 0o077),
    ("SCMP_CMP_EQ", lambda m: m == 0o077),
    ("SCMP_CMP_GE", lambda m: m >= 0o077),
    ("SCMP_CMP_GT", lambda m: m > 0o077),
])
def test_operator(op, pred):
    got = blocked_offsets([{"value": 0o077, "op": op}])
    want = expected_bits(pred)
    assert 0 < want < 31  # the probe set tells the operator apart from always/never
    assert got == want


def test_masked_eq_uses_value_as_mask_and_value_two_as_result():
    # (arg & 0o070) == 0o020: only 0o022 among the probes
    got = blocked_offsets([{"value": 0o070, "valueTwo": 0o020, "op": "SCMP_CMP_MASKED_EQ"}])
    assert got == expected_bits(lambda m: m & 0o070 == 0o020) == 0b10


def test_conditions_on_distinct_args_are_anded(tmp_path):
    path = str(tmp_path / "f")
    with open(path, "wb") as f:
        f.write(b"x" * 64)
    # lseek(fd, 5, SEEK_SET) is refused; offset 5 with SEEK_CUR or offset 6 are not
    args = [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": os.SEEK_SET, "op": "SCMP_CMP_EQ"}]
    doc = allowing(block(["lseek"], errno_ret=errno.EBADE, args=args))

    def probe(fd):
        f = os.open(path, os.O_RDONLY)
        results = (errno_of(os.lseek, f, 5, os.SEEK_SET), errno_of(os.lseek, f, 5, os.SEEK_CUR),
                   errno_of(os.lseek, f, 6, os.SEEK_SET))
        return {(errno.EBADE, 0, 0): 0}.get(results, 1)
    assert run_filtered(doc, probe) == 0


def test_conditions_on_the_same_arg_become_separate_rules():
    # runc's split: two EQ on one arg would never both hold; as separate rules either matches
    got = blocked_offsets([{"value": 0o022, "op": "SCMP_CMP_EQ"}, {"value": 0o777, "op": "SCMP_CMP_EQ"}])
    assert got == expected_bits(lambda m: m in (0o022, 0o777))


def test_64bit_argument_values(tmp_path):
    path = str(tmp_path / "f")
    open(path, "wb").close()
    big = (1 << 40) + 7
    args = [{"index": 1, "value": big, "op": "SCMP_CMP_GE"}]
    doc = allowing(block(["lseek"], errno_ret=errno.EBADE, args=args))

    def probe(fd):
        f = os.open(path, os.O_RDONLY)
        results = (errno_of(os.lseek, f, big, os.SEEK_SET), errno_of(os.lseek, f, big - 1, os.SEEK_SET),
                   errno_of(os.lseek, f, 7, os.SEEK_SET))
        return {(errno.EBADE, 0, 0): 0}.get(results, 1)
    assert run_filtered(doc, probe) == 0


# -- the other actions ------------------------------------------------------

@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"])
def test_kill_actions_end_the_child_with_sigsys(action):
    doc = allowing(block(["uname"], action))
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == -signal.SIGSYS


def test_trap_raises_a_catchable_sigsys():
    doc = allowing(block(["uname"], "SCMP_ACT_TRAP"))
    caught = []

    def probe(fd):
        signal.signal(signal.SIGSYS, lambda *a: caught.append(1))
        errno_of(os.uname)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # let the handler run now
        return 7 if caught else 1
    assert run_filtered(doc, probe) == 7


def test_trace_without_a_tracer_fails_with_enosys():
    doc = allowing(block(["uname"], "SCMP_ACT_TRACE", errno_ret=errno.EBADE))
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ENOSYS


def test_trace_and_log_actions_are_in_the_program():
    """The exported BPF returns exactly the actions asked for (TRACE's
    errnoRet as its data, LOG as LOG)."""
    doc = allowing(block(["uname"], "SCMP_ACT_TRACE", errno_ret=0x2A), block(["getcwd"], "SCMP_ACT_LOG"))
    rets = bpf_return_values(doc)
    assert 0x7FF0002A in rets and 0x7FFC0000 in rets


def test_log_lets_the_syscall_run():
    doc = allowing(block(["uname", "getcwd"], "SCMP_ACT_LOG"))

    def probe(fd):
        return 0 if os.uname().sysname == "Linux" and os.getcwd() else 1
    assert run_filtered(doc, probe) == 0


def bpf_return_values(doc):
    """K values of the BPF_RET|BPF_K instructions of the compiled program."""
    prepared = Seccomp.from_dict(doc).compile()
    r, w = os.pipe()
    try:
        prepared.export_bpf(w)
        os.close(w)
        w = -1
        prog = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            prog += chunk
    finally:
        prepared.release()
        os.close(r)
        if w >= 0:
            os.close(w)
    rets = set()
    for i in range(0, len(prog), 8):
        code = int.from_bytes(prog[i:i + 2], "little")
        if code == 0x06:  # BPF_RET | BPF_K
            rets.add(int.from_bytes(prog[i + 4:i + 8], "little"))
    return rets


# -- architectures and flags ------------------------------------------------

def test_architectures_are_added():
    doc = allowing(block(["uname"], errno_ret=errno.ENOSPC),
                   architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"])
    from pyrunc._native_seccomp import lib

    prepared = Seccomp.from_dict(doc).compile()
    try:
        for name in (b"x86", b"x32", b"aarch64"):
            assert lib.seccomp_arch_exist(prepared._ctx, lib.seccomp_arch_resolve_name(name)) == 0
        assert lib.seccomp_arch_exist(prepared._ctx, lib.seccomp_arch_resolve_name(b"s390x")) != 0
    finally:
        prepared.release()
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ENOSPC


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_TSYNC"])
def test_supported_flags_load(flag):
    if not flag_supported(flag):
        pytest.skip("%s: not supported by this libseccomp/kernel" % flag)
    doc = allowing(block(["uname"], errno_ret=errno.ENOSPC), flags=[flag])
    assert run_filtered(doc, lambda fd: errno_of(os.uname)) == errno.ENOSPC


def ssb_state():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Speculation_Store_Bypass:"):
                return line.split(":", 1)[1].strip()
    return None


def test_spec_allow_leaves_speculative_store_bypass_alone():
    """seccomp forces the SSB mitigation on unless SPEC_ALLOW: with flags
    absent pyrunc (like runc) sets SPEC_ALLOW; an explicit [] does not."""
    if ssb_state() != "thread vulnerable":
        pytest.skip("Speculation_Store_Bypass is %r here: seccomp cannot change it" % ssb_state())
    r, w = os.pipe()

    def probe(fd):
        os.write(w, (ssb_state() + "\n").encode())
        return 0
    assert run_filtered(allowing(block(["uname"])), probe) == 0
    assert run_filtered(allowing(block(["uname"]), flags=[]), probe) == 0
    os.close(w)
    default, explicit_none = os.read(r, 4096).decode().splitlines()
    os.close(r)
    assert default == "thread vulnerable"
    assert explicit_none == "thread force mitigated"


# -- no_new_privs -----------------------------------------------------------

def test_filter_never_sets_no_new_privs():
    if os.geteuid() != 0:
        pytest.skip("loading without no_new_privs needs CAP_SYS_ADMIN (run as root)")

    def probe(fd):
        with open("/proc/self/status") as f:
            nnp = [ln for ln in f if ln.startswith("NoNewPrivs:")][0].split()[1]
        return 10 + int(nnp) if errno_of(os.uname) == errno.EPERM else 1
    assert run_filtered(allowing(block(["uname"])), probe, nnp=False) == 10


def test_load_without_no_new_privs_or_cap_sys_admin_fails():
    def drop_privileges():
        if os.geteuid() == 0:
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)  # all capabilities gone
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            prepared = Seccomp.from_dict(allowing(block(["uname"]))).compile()
            drop_privileges()
            try:
                prepared.load()
            except PyruncError as e:
                code = 0 if "Permission denied" in str(e) and "no_new_privs" in str(e) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- notify -----------------------------------------------------------------

NOTIFY_DOC = allowing(block(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"), listenerPath="/nonexistent/agent.sock")


def answer(fd, answers, seen):
    """A test agent: answer len(answers) notifications in turn."""
    for kind, value in answers:
        n = seccomp_notify.receive(fd)
        seen.append((n.pid, n.syscall_name))
        if kind == "error":
            seccomp_notify.respond(fd, n.id, error=value)
        elif kind == "val":
            seccomp_notify.respond(fd, n.id, val=value)
        else:
            seccomp_notify.respond(fd, n.id, continue_syscall=True)


def test_notify_answered_by_an_agent_over_a_socketpair(tmp_path):
    """The child hands its notify fd over with send_fd; the agent
    answers each mkdir: an errno, a fake success, then the real thing."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    real = str(tmp_path / "real")
    fake = str(tmp_path / "missing" / "fake")

    def probe(fd):
        if fd is None:
            return 1
        send_fd(child_sock.fileno(), fd)
        results = (errno_of(os.mkdir, real), errno_of(os.mkdir, fake), errno_of(os.mkdir, real))
        return {(errno.EXDEV, 0, 0): 0}.get(results, 2)

    pid = start_filtered(NOTIFY_DOC, probe)
    child_sock.close()  # the agent sees EOF if the child dies before sending
    seen = []
    fd = None
    try:
        fd, _ = recv_fd(parent_sock.fileno())
        assert fd is not None, "the child sent no fd"
        assert os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:seccomp notify"
        answer(fd, [("error", errno.EXDEV), ("val", 0), ("continue", None)], seen)
    finally:
        if fd is not None:
            os.close(fd)  # a child still waiting gets ENOSYS instead of hanging
        parent_sock.close()
        code = exit_code(pid)
    assert code == 0
    assert len(seen) == 3 and {name for _, name in seen} <= {"mkdir", "mkdirat"}
    assert os.path.isdir(real) and not os.path.exists(os.path.dirname(fake))


def test_notify_fd_fetched_with_pidfd_getfd_and_sent_to_listener(tmp_path):
    """runc's path: the child writes its fd number, the parent copies the fd
    (pidfd_getfd) and sends it with the container state to listenerPath; the
    agent listening there answers the child's mkdir."""
    listener_path = str(tmp_path / "agent.sock")
    doc = allowing(block(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"), listenerPath=listener_path,
                   listenerMetadata="MKDIR=answer")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listener_path)
    srv.listen(1)
    got = {}

    def agent():
        from pyrunc import jsonio

        conn, _ = srv.accept()
        try:
            fd, data = recv_fd(conn.fileno())
            got["msg"] = jsonio.loads(data)
            try:
                seen = []
                answer(fd, [("error", errno.ENOTSUP)], seen)
                got["seen"] = seen
            finally:
                os.close(fd)
        except Exception as e:  # noqa: B902
            got["error"] = e
        finally:
            conn.close()

    num_r, num_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()  # before the agent thread exists
    if pid == 0:
        code = 1
        try:
            prepared = Seccomp.from_dict(doc).compile()
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            fd = prepared.load()
            os.write(num_w, b"%d" % fd)
            os.read(go_r, 1)
            os.close(fd)
            code = errno_of(os.mkdir, str(tmp_path / "d"))
        finally:
            os._exit(code)
    os.close(num_w)
    os.close(go_r)
    t = threading.Thread(target=agent)
    t.start()
    try:
        child_fd = int(os.read(num_r, 32))
        fd = fetch_fd(pid, child_fd)
        os.write(go_w, b"g")
        state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": pid, "bundle": "/b"}
        send_to_listener(fd, listener_path, state, "MKDIR=answer")
        os.close(fd)
    finally:
        _, status = os.waitpid(pid, 0)
        t.join(10)
        srv.close()
        for f in (num_r, go_w):
            os.close(f)
    assert "error" not in got, got.get("error")
    assert os.waitstatus_to_exitcode(status) == errno.ENOTSUP
    msg = got["msg"]
    assert msg["fds"] == ["seccompFd"] and msg["pid"] == pid and msg["metadata"] == "MKDIR=answer"
    assert msg["state"]["id"] == "c1" and msg["ociVersion"]
    assert got["seen"][0][0] == pid
    assert not os.path.exists(tmp_path / "d")


def test_send_to_listener_without_an_agent_is_a_one_line_error(tmp_path):
    r, w = os.pipe()
    try:
        with pytest.raises(PyruncError, match=r"linux\.seccomp\.listenerPath: failed to connect with seccomp agent .*No such file"):
            send_to_listener(r, str(tmp_path / "none.sock"), {"pid": 1})
    finally:
        os.close(r)
        os.close(w)


def test_no_notify_fd_without_notify_rules():
    assert run_filtered(allowing(block(["uname"])), lambda fd: 0 if fd is None else 1) == 0
