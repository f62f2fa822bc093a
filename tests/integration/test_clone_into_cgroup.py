"""A child forked by namespaces.fork_in_cgroup is born in the container's
cgroup2 directory (clone3 CLONE_INTO_CGROUP): no write to cgroup.procs,
whose global lock costs the first writer an RCU grace period.  Checked from
the kernel's side: the child reads its own /proc/self/cgroup before it does
anything else.  And the child is an ordinary Python process afterwards
(os.fork()'s interpreter bookkeeping ran): threads, signals, fork."""
import os
import uuid

import pytest

from conftest import TEST_CGROUP_PARENT, is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root (makes cgroups)")


def _has_cgroup2():
    with open("/proc/self/mountinfo") as f:
        return any(line.partition(" - ")[2].startswith("cgroup2 ") for line in f)


@pytest.fixture
def mgr():
    if not _has_cgroup2():
        pytest.skip("no cgroup2 hierarchy mounted on this host (CLONE_INTO_CGROUP needs one)")
    from pyrunc.cgroups import manager_for

    m = manager_for("%s/%s" % (TEST_CGROUP_PARENT, uuid.uuid4().hex[:12]), "t")
    m.create()
    assert m.v2_dir() is not None
    yield m
    m.wait_empty()
    m.destroy()


def _fork_and_report(mgr, child_fn):
    from pyrunc.namespaces import fork_in_cgroup

    r, w = os.pipe()
    pid = fork_in_cgroup(mgr)
    if pid == 0:
        try:
            os.close(r)
            os.write(w, child_fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid, data.decode()


def _v2_line(text):
    return next(l for l in text.splitlines() if l.startswith("0::"))


def test_child_is_born_in_the_v2_cgroup(mgr):
    with open("/proc/self/cgroup") as f:
        ours = f.read()

    def child():
        with open("/proc/self/cgroup") as f:  # first thing: nobody has moved us
            return "%s\n%s" % (mgr.v2_placed, f.read())

    _, out = _fork_and_report(mgr, child)
    placed, theirs = out.split("\n", 1)
    assert placed == "True"
    assert not mgr.v2_placed  # the parent's copy: it was not born there
    rel = mgr.v2_dir().split("/sys/fs/cgroup", 1)[1]
    rel = rel[len("/unified"):] if rel.startswith("/unified/") else rel
    assert _v2_line(theirs) == "0::" + rel
    # v1 hierarchies (hybrid host): still the parent's until join_self
    assert [l for l in theirs.splitlines() if not l.startswith("0::")] == \
        [l for l in ours.splitlines() if not l.startswith("0::")]


def test_join_self_after_it_completes_the_placement(mgr):
    """join_self() in the born-placed child joins the rest (v1 `tasks`),
    without touching the v2 directory again."""
    def child():
        mgr.join_self()
        with open("/proc/self/cgroup") as f:
            return f.read()

    _, theirs = _fork_and_report(mgr, child)
    inner = TEST_CGROUP_PARENT + mgr.v2_dir().split(TEST_CGROUP_PARENT, 1)[1]
    placed = [l for l in theirs.splitlines() if l.endswith(":" + inner)]
    assert len(placed) == len(mgr.dirs()), theirs


def test_child_is_a_whole_python_process(mgr):
    def child():
        import signal
        import threading

        got = []
        signal.signal(signal.SIGUSR1, lambda *_: got.append("signal"))
        os.kill(os.getpid(), signal.SIGUSR1)
        t = threading.Thread(target=lambda: got.append("thread"))
        t.start()
        t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        got.append("fork %d" % os.waitstatus_to_exitcode(status))
        return "%d %s" % (os.getpid(), ",".join(got))

    pid, out = _fork_and_report(mgr, child)
    assert out == "%d signal,thread,fork 7" % pid


def test_a_directory_that_is_not_cgroup2_falls_back_to_fork(mgr, tmp_path):
    """EBADF from clone3 (not a cgroup2 directory): a plain fork, and the
    child knows it must join by writing."""
    from pyrunc.cgroups.v2 import V2Manager

    fake = V2Manager(str(tmp_path))
    with open("/proc/self/cgroup") as f:
        ours = _v2_line(f.read())

    def child():
        with open("/proc/self/cgroup") as f:
            return "%s %s" % (fake.v2_placed, _v2_line(f.read()))

    _, out = _fork_and_report(fake, child)
    assert out == "False " + ours
