"""linux.seccomp in real containers, checked from inside."""
import errno
import json
import os
import select
import socket
import threading

import pytest

from conftest import needs_root

pytestmark = needs_root

EXDEV_TEXT = os.strerror(errno.EXDEV)  # busybox is glibc-static here: same text


def mkdir_blocked(errno_ret=errno.EXDEV, **extra):
    sec = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}]}
    sec.update(extra)
    return sec


def run_inside(runtime, bundle, script, seccomp, nnp=True, check=True):
    def cfg(c):
        c["linux"]["seccomp"] = seccomp
        c["process"]["noNewPrivileges"] = nnp
        c["root"]["readonly"] = False  # so only the filter can stop mkdir
    bundle.update(cfg)
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged_load"])
def test_mkdir_fails_with_the_configured_errno(bundle, runtime, nnp):
    p = run_inside(runtime, bundle, "mkdir /tmp/x; echo rc=$?; test -d /tmp/x && echo made; "
                                    "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status", mkdir_blocked(), nnp)
    assert "rc=1" in p.stdout and "made" not in p.stdout
    assert "can't create directory '/tmp/x': %s" % EXDEV_TEXT in p.stderr
    assert "Seccomp:\t2" in p.stdout  # SECCOMP_MODE_FILTER
    assert ("NoNewPrivs:\t%d" % nnp) in p.stdout  # the filter does not set it behind the config's back
    assert not os.path.exists(os.path.join(bundle.rootfs, "tmp", "x"))


def test_without_the_filter_mkdir_works(bundle, runtime):
    # the control for the test above: the same script, no seccomp
    bundle.update(lambda c: c["root"].update(readonly=False))
    bundle.set_args("sh", "-c", "mkdir /tmp/x; echo rc=$?; grep ^Seccomp: /proc/self/status")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert "rc=0" in p.stdout and "Seccomp:\t0" in p.stdout


def test_default_action_and_errno_ret(bundle, runtime):
    """Default ERRNO(EXDEV); every syscall this libseccomp knows is allowed
    except mkdir/mkdirat, which fall to the default."""
    from pyrunc._native_seccomp import lib, ffi

    native = lib.seccomp_arch_native()
    names = set()
    for nr in range(0, 1024):
        ptr = lib.seccomp_syscall_resolve_num_arch(native, nr)
        if ptr != ffi.NULL:
            names.add(ffi.string(ptr).decode())
            lib.free(ptr)
    names -= {"mkdir", "mkdirat"}
    sec = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EXDEV,
           "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}
    p = run_inside(runtime, bundle, "mkdir /tmp/x; echo rc=$?; echo alive", sec)
    assert "rc=1" in p.stdout and "alive" in p.stdout
    assert EXDEV_TEXT in p.stderr


def test_runtime_needs_nothing_after_the_filter_with_no_new_privs(bundle, runtime):
    """With noNewPrivileges the filter goes in just before execve: a filter
    refusing every privilege-dropping syscall still lets the container start."""
    runtime_only = ["capset", "setgroups", "setresuid", "setresgid", "setuid", "setgid", "prctl", "chdir",
                    "sched_setaffinity", "setrlimit", "prlimit64", "close_range"]
    sec = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": runtime_only, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    p = run_inside(runtime, bundle, "cd /tmp; echo rc=$?", sec)
    # the container started, and the filter is there for it
    assert "rc=" in p.stdout and "rc=0" not in p.stdout and EXDEV_TEXT in p.stderr


def test_argument_conditions(bundle, runtime):
    """`kill -0 1` allowed, `kill -0 <bad pid>` refused by the args rule (arg1 == 0, arg0 != 1)."""
    sec = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV,
                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NE"},
                                  {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    p = run_inside(runtime, bundle, "kill -0 1; echo self=$?; kill -0 99999; echo other=$?", sec)
    assert "self=0" in p.stdout and "other=1" in p.stdout
    assert EXDEV_TEXT in p.stderr


def test_kill_process_ends_the_container_with_sigsys(bundle, runtime):
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    p = run_inside(runtime, bundle, "mkdir /tmp/x", sec, check=False)
    assert p.returncode == 128 + 31  # SIGSYS


def test_unknown_syscall_names_are_ignored(bundle, runtime):
    sec = mkdir_blocked(syscalls=[{"names": ["no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": errno.EXDEV}])
    p = run_inside(runtime, bundle, "mkdir /tmp/x; echo rc=$?", sec)
    assert "rc=1" in p.stdout


def test_exec_process_gets_the_filter(bundle, runtime):
    def cfg(c):
        c["linux"]["seccomp"] = mkdir_blocked()
    bundle.update(cfg)
    bundle.set_args("sleep", "60")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    p = runtime("exec", cid, "sh", "-c", "mkdir /tmp/y; echo rc=$?", check=False)
    runtime("delete", "--force", cid)
    assert "rc=1" in p.stdout and EXDEV_TEXT in p.stderr


@pytest.mark.parametrize("sec,field", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]},
     "linux.seccomp.syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]},
     "linux.seccomp.architectures[0]"),
])
def test_bad_seccomp_is_a_one_line_error_naming_the_field(bundle, runtime, sec, field):
    bundle.update(lambda c: c["linux"].update(seccomp=sec))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode != 0
    assert field in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert runtime("state", cid, check=False).returncode != 0  # nothing left behind


def test_features_lists_what_libseccomp_supports(runtime):
    from pyrunc.security.seccomp import features

    doc = json.loads(runtime("features").stdout)
    assert doc["linux"]["seccomp"] == features()
    assert "SCMP_ACT_NOTIFY" in doc["linux"]["seccomp"]["actions"]


# -- notify ---------------------------------------------------------------

class Agent:
    """A seccomp agent on a unix socket: takes `connections` notify fds with
    their container process states, answers every notification on each with
    answer(notification) until the processes under that filter are gone."""

    def __init__(self, path, answer, connections=1):
        self.path = path
        self.answer = answer
        self.connections = connections
        self.states = []
        self.seen = []
        self.errors = []
        self.servers = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(60)
        self.thread = threading.Thread(target=self._accept)
        self.thread.start()

    @property
    def state(self):
        return self.states[0] if self.states else None

    @property
    def error(self):
        return self.errors[0] if self.errors else None

    def _accept(self):
        from pyrunc import jsonio
        from pyrunc.security.seccomp import recv_fd

        try:
            for _ in range(self.connections):
                conn, _ = self.srv.accept()
                try:
                    fd, data = recv_fd(conn.fileno())
                finally:
                    conn.close()
                if fd is None:
                    raise AssertionError("no seccomp fd came to the listener")
                self.states.append(jsonio.loads(data))
                t = threading.Thread(target=self._serve, args=(fd,))
                t.start()
                self.servers.append(t)
        except Exception as e:  # noqa: B902
            self.errors.append(e)

    def _serve(self, fd):
        from pyrunc.security import seccomp_notify

        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while True:
                events = poller.poll(60000)
                if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                    break  # every process under the filter is gone
                n = seccomp_notify.receive(fd)
                self.seen.append((n.pid, n.syscall_name))
                kind, value = self.answer(n)
                if kind == "error":
                    seccomp_notify.respond(fd, n.id, error=value)
                elif kind == "val":
                    seccomp_notify.respond(fd, n.id, val=value)
                else:
                    seccomp_notify.respond(fd, n.id, continue_syscall=True)
        except Exception as e:  # noqa: B902
            self.errors.append(e)
        finally:
            os.close(fd)

    def stop(self):
        self.thread.join(1)  # the runtime has connected by now if it ever will
        while self.thread.is_alive():
            # nobody (more) came: wake accept() with an empty connection
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(self.path)
                except OSError:
                    pass
            self.thread.join(1)
        for t in self.servers:
            t.join(60)
        self.srv.close()


def test_notify_answered_by_the_listener(bundle, runtime, tmp_path):
    """mkdir under SCMP_ACT_NOTIFY: the agent at listenerPath gets the fd and
    the container state, and makes mkdir "succeed" without creating anything."""
    path = str(tmp_path / "agent.sock")
    agent = Agent(path, lambda n: ("val", 0) if n.syscall_name in ("mkdir", "mkdirat") else ("continue", None))
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "answer=mkdir",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    try:
        p = run_inside(runtime, bundle, "mkdir /nonexistent/x; echo rc=$?; test -e /nonexistent && echo made || echo clean",
                       sec, check=False)
    finally:
        agent.stop()
    assert agent.error is None, agent.error
    assert p.returncode == 0, p.stderr
    assert "rc=0" in p.stdout and "clean" in p.stdout
    assert agent.seen and {name for _, name in agent.seen} <= {"mkdir", "mkdirat"}
    st = agent.state
    assert st["fds"] == ["seccompFd"] and st["metadata"] == "answer=mkdir"
    assert st["pid"] == st["state"]["pid"] > 0  # the init is the process under the filter
    assert st["state"]["bundle"] == bundle.path


def test_exec_process_notify_goes_to_the_listener(bundle, runtime, tmp_path):
    """An exec'd process gets its own notify fd, sent with state "running"
    and its own pid; the agent answers its mkdir with a chosen errno."""
    path = str(tmp_path / "agent.sock")
    agent = Agent(path, lambda n: ("error", errno.EXDEV), connections=2)
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}

    def cfg(c):
        c["linux"]["seccomp"] = sec
        c["root"]["readonly"] = False
    bundle.update(cfg)
    bundle.set_args("sleep", "60")
    cid = runtime.new_id()
    try:
        runtime("run", "-d", "-b", bundle.path, cid)
        p = runtime("exec", cid, "sh", "-c", "mkdir /tmp/e; echo rc=$?", check=False)
        runtime("delete", "--force", cid)
    finally:
        agent.stop()
    assert not agent.errors, agent.errors
    assert "rc=1" in p.stdout and EXDEV_TEXT in p.stderr
    assert [st["state"]["status"] for st in agent.states] == ["creating", "running"]
    init_state, exec_state = agent.states
    assert exec_state["pid"] != exec_state["state"]["pid"] == init_state["pid"]
    assert not os.path.exists(os.path.join(bundle.rootfs, "tmp", "e"))
