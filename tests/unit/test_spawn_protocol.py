"""The spawn path on the recording fake kernel: namespace join order, the
create and exec message sequences (both fork modes) end to end through
real forks and pipes but no namespace, mount or credential change, and the
undo paths.  No root needed; a few seconds."""
import json
import os
import subprocess
import time

import pytest

from fakekernel import FakeKernel
from pyrunc import linux as L
from pyrunc.channel import (CHILD_PID, COMMIT, EOF, ERROR, GO, HOOKS_DONE, MOUNTS_READY, READY, STATE,
                            USERNS_READY, Channel, ChildError)
from pyrunc.child import Entry, ExecJob, InitJob, _enter_direct, _stage1
from pyrunc.container import Container
from pyrunc.errors import ExecError
from pyrunc.namespaces import JOIN_ORDER, NamespacePlan
from pyrunc.spec import Spec
from pyrunc.state import CREATED, StateDir

ROOT = "/b/rootfs"


@pytest.fixture(autouse=True)
def no_trace():
    yield
    Channel.trace = None


class ScriptedChannel:
    """The child's end of the channel, answering from a script; sends and
    expects go into the kernel's record so the order is one list."""

    def __init__(self, k, replies):
        self.k = k
        self.replies = list(replies)

    def send(self, tag, payload=""):
        self.k.calls.append(("send", tag))

    def expect(self, tag):
        self.k.calls.append(("expect", tag))
        assert self.replies.pop(0) == tag
        return ""


class NoFork(FakeKernel):
    def fork(self):
        self._record("fork")
        return 0  # take the forked process's path: stage 1 would exit


class Job:
    notify_by_fd = False

    def __init__(self, k):
        self.k = k

    def prepare(self):
        self.k.calls.append(("prepare",))

    def entered(self, entry):
        self.k.calls.append(("entered",))


def ns_spec(*namespaces):
    return Spec({"ociVersion": "1.0.2", "linux": {"namespaces": [dict(n) for n in namespaces]}})


# -- namespaces ---------------------------------------------------------------------

def test_paths_are_joined_in_one_order_whatever_the_config_says():
    plan = NamespacePlan(ns_spec({"type": "mount", "path": "/m"}, {"type": "network", "path": "/n"},
                                 {"type": "user", "path": "/u"}, {"type": "pid"}, {"type": "ipc", "path": "/i"}).linux)
    assert [t for t, _ in plan.join] == ["user", "ipc", "network", "mount"]
    assert [t for t, _ in plan.join] == [t for t in JOIN_ORDER if t in dict(plan.join)]
    assert plan.new_types == {"pid"} and plan.needs_stage1()


def test_stage1_new_user_namespace_then_joins_then_unshares_then_forks():
    k = NoFork()
    entry = Entry(True, [("ipc", 11), ("network", 12), ("mount", 13)],
                  new_flags=L.CLONE_NEWUSER | L.CLONE_NEWPID | L.CLONE_NEWUTS, new_user=True, user_ns=True)
    _stage1(entry, Job(k), ScriptedChannel(k, [GO]), k)
    steps = [c for c in k.calls if c[0] not in ("close",)]
    assert steps == [
        ("unshare", L.CLONE_NEWUSER), ("send", USERNS_READY),  # the runtime writes the id maps now
        ("expect", GO), ("prepare",),
        ("set_dumpable", False),
        ("setns", L.CLONE_NEWIPC), ("setns", L.CLONE_NEWNET), ("setns", L.CLONE_NEWNS),  # mount last
        ("unshare", L.CLONE_NEWPID | L.CLONE_NEWUTS), ("entered",),
        ("setresgid", 0, 0, 0), ("setresuid", 0, 0, 0),
        ("fork",),
    ]


def test_direct_fork_skips_the_pid_namespace_it_was_forked_into():
    k = FakeKernel()

    class Cgroup:
        def join_self(self):
            k.calls.append(("join_self",))

    entry = Entry(False, [("ipc", 11), ("pid", 12), ("mount", 13)],
                  new_flags=L.CLONE_NEWPID | L.CLONE_NEWUTS, cgroup=Cgroup())
    _enter_direct(entry, Job(k), ScriptedChannel(k, [GO]), k)
    assert k.calls == [
        ("expect", GO), ("join_self",), ("prepare",), ("set_dumpable", False),
        ("setns", L.CLONE_NEWIPC), ("setns", L.CLONE_NEWNS),  # pid: entered by the fork already
        ("unshare", L.CLONE_NEWUTS),
    ]


# -- create: spawn + the init's side + the runtime's side ------------------------------

def init_spec(args=("/bin/true",), mounts=True):
    return Spec({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "hostname": "box",
        "process": {"args": list(args), "cwd": "/", "env": ["PATH=/bin"]},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}] if mounts else [],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]},
    })


def fake_kernel(tmp_path):
    k = FakeKernel(dirs=[ROOT + "/proc", ROOT + "/dev"], files=["/proc/self/ns/pid"],
                   log_path=str(tmp_path / "child.json"))
    Channel.trace = k.calls  # one ordered record: messages and syscalls (each process its own copy)
    return k


def new_container(tmp_path):
    sd = StateDir(str(tmp_path / "state"), "c1")
    sd.make()
    c = Container(sd, {"id": "c1", "status": "creating", "pid": 0, "bundle": "/b", "rootfs": ROOT,
                       "created": "", "owner": "", "hook_kinds": []})
    os.mkfifo(sd.fifo, 0o600)
    return c


def messages(calls):
    return [c[1] for c in calls if c[0] in ("send", "recv")]


@pytest.mark.parametrize("two_stage", [False, True], ids=["direct", "two-stage"])
def test_create_message_sequence_then_start(two_stage, tmp_path):
    from pyrunc.create import _finish_spawn, _Undo
    from pyrunc.spawn import reap, spawn

    k = fake_kernel(tmp_path)
    c = new_container(tmp_path)
    spec = init_spec()
    plan = NamespacePlan(spec.linux)
    fifo_fd = os.open(c.dir.fifo, L.O_PATH | os.O_CLOEXEC)
    job = InitJob(spec, ROOT, plan, fifo_fd, "c1", no_new_keyring=True)
    entry = Entry(two_stage, [], new_flags=plan.new_flags)
    spawned = spawn(entry, job, pidns=(None, True), kernel=k)
    os.close(fifo_fd)
    assert spawned.ours == (not two_stage)
    made = _Undo()
    _finish_spawn(c, spec, spawned, made)
    spawned.channel.send(COMMIT)
    spawned.channel.close()
    c.record["status"] = CREATED
    c.save()
    c.start()  # opens the fifo: the init execs (the fake execve writes its record and exits 0)
    if spawned.ours:
        reap(spawned.pid)
    parent = messages(k.calls)
    assert parent == [GO] + ([CHILD_PID] if two_stage else []) + [MOUNTS_READY, HOOKS_DONE, STATE, READY, COMMIT]
    if not two_stage:  # into a new pid namespace for the fork only, and back
        assert [c[0] for c in k.calls[:5]] == ["set_dumpable", "open", "unshare", "fork", "setns"]
    child = [tuple(x) for x in json.load(open(tmp_path / "child.json"))]
    child_msgs = messages(child)
    assert child_msgs[-6:] == [GO, MOUNTS_READY, HOOKS_DONE, STATE, READY, COMMIT]
    steps = [x[0] for x in child if x[0] in ("unshare", "fork", "setsid", "mount", "pivot_root", "sethostname",
                                              "setgroups", "setresgid", "setresuid", "chdir", "execve")]
    expected_entry = ["unshare", "fork"] if two_stage else ["unshare"]
    assert steps[steps.index("setsid") - len(expected_entry):steps.index("setsid")] == expected_entry
    rest = steps[steps.index("setsid"):]
    assert rest[0] == "setsid" and rest.index("mount") < rest.index("pivot_root") < rest.index("sethostname")
    # the cwd while still root (runc), then the user switch, then execve
    assert rest[-5:] == ["chdir", "setgroups", "setresgid", "setresuid", "execve"]
    assert child[-1] == ("execve", "/bin/true", ["/bin/true"])


def test_create_failure_in_the_init_is_raised_in_its_words(tmp_path):
    from pyrunc.create import _finish_spawn, _Undo
    from pyrunc.spawn import reap, spawn

    k = fake_kernel(tmp_path)
    k.fail["mount"] = OSError(1, "Operation not permitted")  # the first mount in the child fails
    c = new_container(tmp_path)
    spec = init_spec()
    plan = NamespacePlan(spec.linux)
    fifo_fd = os.open(c.dir.fifo, L.O_PATH | os.O_CLOEXEC)
    spawned = spawn(Entry(False, [], new_flags=plan.new_flags),
                    InitJob(spec, ROOT, plan, fifo_fd, "c1", no_new_keyring=True), kernel=k)
    os.close(fifo_fd)
    with pytest.raises(ChildError, match="Operation not permitted"):
        _finish_spawn(c, spec, spawned, _Undo())
    reap(spawned.pid)
    assert messages(k.calls)[-1] == ERROR


# -- exec ---------------------------------------------------------------------------

class Stub:
    id = "c1"
    record = {}


def exec_opts():
    from pyrunc.execute import ExecRequest

    return ExecRequest(detach=True, no_new_keyring=True)


@pytest.mark.parametrize("two_stage", [False, True], ids=["direct", "two-stage"])
def test_exec_message_sequence(two_stage, tmp_path):
    from pyrunc.execute import spawn_process
    from pyrunc.spec import Process
    from pyrunc.spawn import reap

    k = fake_kernel(tmp_path)
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(2)]
    ns_fds = [("user", held[0]), ("mount", held[1])] if two_stage else [("mount", held[1])]
    proc = Process({"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"]})
    try:
        pid = spawn_process(Stub(), proc, init_spec(), ns_fds, None, None, None, exec_opts(), subreaper=False,
                            kernel=k)
    finally:
        for fd in held:
            os.close(fd)
    if not two_stage:
        reap(pid)
    assert messages(k.calls) == [GO] + ([CHILD_PID] if two_stage else []) + [EOF]  # EOF: execve done
    child = [tuple(x) for x in json.load(open(tmp_path / "child.json"))]
    joins = [x for x in child if x[0] in ("setns", "setresuid", "fork", "setsid", "execve")]
    assert joins.pop(0) == ("fork",)  # the runtime's
    if two_stage:
        assert joins[:5] == [("setns", L.CLONE_NEWUSER), ("setns", L.CLONE_NEWNS), ("setresuid", 0, 0, 0),
                             ("fork",), ("setsid",)]
    else:
        assert joins[:2] == [("setns", L.CLONE_NEWNS), ("setsid",)]
    assert joins[-1] == ("execve", "/bin/true", ["/bin/true"])


def test_exec_failure_carries_the_exit_code(tmp_path):
    from pyrunc.execute import spawn_process
    from pyrunc.spec import Process

    k = fake_kernel(tmp_path)
    proc = Process({"args": ["/no/such/binary"], "cwd": "/"})
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ExecError) as e:
        spawn_process(Stub(), proc, init_spec(), [], None, None, None, exec_opts(), subreaper=True, kernel=k)
    assert e.value.exit_code == 127
    assert str(e.value) == 'unable to start container process: exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
    assert set(os.listdir("/proc/self/fd")) == before  # the channel is closed
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the failed process was reaped already (subreaper)


# -- undo paths ------------------------------------------------------------------------

def test_spawn_kills_and_reaps_the_child_when_the_cgroup_join_fails(tmp_path):
    from pyrunc.spawn import spawn

    k = fake_kernel(tmp_path)
    forked = []

    def join(pid):
        forked.append(pid)
        raise OSError(28, "No space left on device")

    before = set(os.listdir("/proc/self/fd"))
    for two_stage in (False, True):
        with pytest.raises(OSError, match="No space left"):
            spawn(Entry(two_stage, []), Job(k), join_cgroup=join, kernel=k)
    assert set(os.listdir("/proc/self/fd")) == before
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # killed (it waited for GO) and reaped


def test_create_undo_kills_destroys_and_runs_poststop(tmp_path):
    from pyrunc.create import _Undo
    from pyrunc.procfs import start_time

    marker = tmp_path / "poststop-ran"
    sd = StateDir(str(tmp_path / "state"), "c2")
    sd.make()
    sd.write_json("config.json", {"ociVersion": "1.0.2", "hooks": {"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null; touch %s" % marker]}]}})
    c = Container(sd, {"id": "c2", "status": "creating", "hook_kinds": ["poststop"]})
    sleeper = subprocess.Popen(["sleep", "60"])
    destroyed = []

    class Cgroup:
        def destroy(self):
            destroyed.append(True)

    made = _Undo()
    made.cgroup = Cgroup()
    made.pids.append((sleeper.pid, start_time(sleeper.pid)))
    made.channel = Channel(*os.pipe())
    made.hooks_ran = True
    t0 = time.monotonic()
    made.undo(c)
    assert sleeper.wait(timeout=5) == -9 and time.monotonic() - t0 < 5
    assert destroyed == [True]
    assert made.channel.rfd == made.channel.wfd == -1
    assert marker.exists()


# -- the seccomp notify fd: NOTIFY_FD ... NOTIFY_TAKEN, then the agent ------------------

class NotifyJob(Job):
    """Stands for a process that loaded a notify filter: the "notify fd"
    is /dev/null's, handed over as the real one is."""

    def __init__(self, k, by_fd):
        super().__init__(k)
        self.notify_by_fd = by_fd

    def become(self, ch, kernel):
        fd = os.open("/dev/null", os.O_RDONLY)
        ch.send_notify_fd(fd)
        ch.expect("n")  # NOTIFY_TAKEN: the runtime holds its copy
        os._exit(0)


@pytest.mark.parametrize("by_fd", [True, False], ids=["fd-on-socket", "pidfd_getfd"])
def test_notify_fd_goes_to_the_agent_with_the_state(by_fd, tmp_path):
    import socket
    import threading
    import types

    from pyrunc.channel import NOTIFY_FD, NOTIFY_TAKEN
    from pyrunc.spawn import reap, spawn, to_listener

    if not by_fd and os.geteuid() != 0:
        pytest.skip("pidfd_getfd of a non-dumpable child needs root (an unprivileged runtime gets the fd on the socket)")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(str(tmp_path / "agent.sock"))
    agent.listen(1)
    got = {}

    def serve():
        conn, _ = agent.accept()
        data, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4))
        got["doc"] = json.loads(data)
        got["fd"] = int.from_bytes(anc[0][2][:4], "little")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    k = fake_kernel(tmp_path)
    spawned = spawn(Entry(False, []), NotifyJob(k, by_fd), kernel=k)
    tag, payload = spawned.channel.recv()
    assert tag == NOTIFY_FD and (payload == "" if by_fd else payload.isdigit())
    sec = types.SimpleNamespace(listener_path=str(tmp_path / "agent.sock"), listener_metadata="meta")
    to_listener(spawned, payload, sec, {"id": "c1", "pid": 0}, pid=spawned.pid)
    assert spawned.channel.recv()[0] == EOF
    reap(spawned.pid)
    t.join(5)
    agent.close()
    doc, fd = got["doc"], got["fd"]
    try:
        assert doc["fds"] == ["seccompFd"] and doc["pid"] == spawned.pid and doc["metadata"] == "meta"
        assert doc["state"] == {"id": "c1", "pid": 0}
        assert os.fstat(fd).st_rdev == os.makedev(1, 3)  # the child's fd itself reached the agent
    finally:
        os.close(fd)
    assert messages(k.calls)[-3:] == [NOTIFY_FD, NOTIFY_TAKEN, EOF]
