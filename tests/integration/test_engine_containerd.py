"""pyrunc as runc under containerd 1.6: a private daemon, the ctr workflow.

Every flow checks what the user sees (output, exit codes, task status) and
what the kernel shows (freezer state, cgroup files, pids), plus which
runtime binary containerd really called.
"""
import json
import os
import subprocess
import time

import pytest

from conftest import PYRUNC, needs_root
from engines import procs
from engines.containerd import RUNC_ROOT, Containerd
from engines.fixtures import IMAGE_NAME, image_archive, require
from engines.pty_run import run_on_pty

pytestmark = [needs_root, pytest.mark.integration]


@pytest.fixture(scope="module")
def ctd(tmp_path_factory):
    require("containerd", "ctr", package="containerd")
    base = tmp_path_factory.mktemp("containerd")
    archive = image_archive(base)
    daemon = Containerd(base / "daemon", PYRUNC, archive, IMAGE_NAME)
    try:
        daemon.start()
    except Exception:
        daemon.stop()
        raise
    yield daemon
    daemon.stop()
    # Nothing may survive: shims, mounts, cgroups, runc state.
    assert procs.pids_with_args(b"-address", daemon.sock.encode()) == []
    assert procs.mounts_under(daemon.base) == []
    assert procs.cgroup_dirs(daemon.namespace) == []
    assert not os.path.exists(os.path.join(RUNC_ROOT, daemon.namespace))


def new_id(prefix):
    return prefix + os.urandom(3).hex()


def verbs_for(ctd, cid):
    """Verb of each call for cid (the word after the global flags)."""
    verbs = []
    for argv in ctd.runtime_calls():
        if cid in argv:
            verbs.append(argv[6])  # --root R --log F --log-format json VERB ...
    return verbs


def _memory_hierarchy():
    with open("/proc/self/cgroup") as f:
        return [line.split(":")[0] for line in f if line.split(":")[1] == "memory"][0]


def test_ctr_run_rm_output_and_exit_code(ctd):
    cid = new_id("rm-")
    p = ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, IMAGE_NAME, cid,
                "sh", "-c", "echo hello; echo $$; grep memory /proc/self/cgroup; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    # pid 1 of its own pid namespace, in the cgroup /<namespace>/<id>.
    assert p.stdout.splitlines() == ["hello", "1", "%s:memory:/%s/%s" % (_memory_hierarchy(), ctd.namespace, cid)]
    assert verbs_for(ctd, cid)[:3] == ["create", "start", "delete"]
    assert cid not in ctd.container_ids()
    assert not os.path.exists(os.path.join(RUNC_ROOT, ctd.namespace, cid))
    assert procs.cgroup_dirs("%s/%s" % (ctd.namespace, cid)) == []


def test_ctr_run_error_reaches_user_through_log_json(ctd):
    cid = new_id("err-")
    p = ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, IMAGE_NAME, cid, "/no/such/binary", check=False)
    assert p.returncode != 0
    # containerd reads the error from --log log.json; it must name the path.
    assert "/no/such/binary" in p.stderr, p.stderr
    assert "unable to retrieve OCI runtime error" not in p.stderr, p.stderr
    ctd.ctr("containers", "delete", cid, check=False)
    assert cid not in ctd.container_ids()


def _freezer_state(ctd, cid):
    with open("/sys/fs/cgroup/freezer/%s/%s/freezer.state" % (ctd.namespace, cid)) as f:
        return f.read().strip()


def test_ctr_detached_exec_ps_pause_resume_kill_delete(ctd):
    cid = new_id("d-")
    ctd.ctr("run", "-d", "--fifo-dir", ctd.fifo_dir, "--memory-limit", str(96 << 20), IMAGE_NAME, cid,
            "sh", "-c", "trap 'exit 7' TERM; sleep 300 & wait")
    try:
        pid, status = ctd.tasks()[cid]
        assert status == "RUNNING"
        assert os.readlink("/proc/%d/ns/pid" % pid) != os.readlink("/proc/self/ns/pid")
        # cgroupsPath /<namespace>/<id>, with the limit containerd asked for.
        with open("/sys/fs/cgroup/memory/%s/%s/memory.limit_in_bytes" % (ctd.namespace, cid)) as f:
            assert int(f.read()) == 96 << 20
        with open("/sys/fs/cgroup/memory/%s/%s/cgroup.procs" % (ctd.namespace, cid)) as f:
            assert str(pid) in f.read().split()

        p = ctd.ctr("task", "exec", "--fifo-dir", ctd.fifo_dir, "--exec-id", "e1", cid,
                    "sh", "-c", "echo exec-out; cat /proc/1/cmdline | tr '\\0' ' '; exit 5", check=False)
        assert p.returncode == 5, p.stderr
        assert p.stdout.splitlines() == ["exec-out", "sh -c trap 'exit 7' TERM; sleep 300 & wait "]

        rows = ctd.ctr("task", "ps", cid).stdout.splitlines()[1:]
        pids = {int(r.split()[0]) for r in rows}
        assert pid in pids and len(pids) == 2  # sh and its sleep

        ctd.ctr("task", "pause", cid)
        assert ctd.tasks()[cid][1] == "PAUSED"
        assert _freezer_state(ctd, cid) == "FROZEN"
        ctd.ctr("task", "resume", cid)
        assert ctd.tasks()[cid][1] == "RUNNING"
        assert _freezer_state(ctd, cid) == "THAWED"

        ctd.ctr("task", "kill", cid)  # SIGTERM: the trap exits 7
        _wait_status(ctd, cid, "STOPPED")
        p = ctd.ctr("task", "delete", cid)
        assert "exit code 7" in p.stderr, p.stderr
        assert cid not in ctd.tasks()
        assert not os.path.exists("/proc/%d" % pid) or procs.cmdline(pid) == []
        assert procs.cgroup_dirs("%s/%s" % (ctd.namespace, cid)) == []
        assert verbs_for(ctd, cid) == ["create", "start", "exec", "ps", "pause", "resume", "kill",
                                       "delete", "delete"]
    finally:
        ctd.ctr("task", "delete", "--force", cid, check=False)
        ctd.ctr("containers", "delete", cid, check=False)


def _wait_status(ctd, cid, want, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctd.tasks().get(cid, (0, None))[1] == want:
            return
        time.sleep(0.1)
    raise AssertionError("task %s not %s after %ds: %s" % (cid, want, timeout, ctd.tasks().get(cid)))


def test_ctr_run_with_runc_binary_flag(ctd, tmp_path):
    """`--runc-binary` (the default runtime io.containerd.runc.v2) with a
    private --runc-root: the state pyrunc writes there matches the task."""
    cid = new_id("rb-")
    runc_root = str(tmp_path / "runc-root")
    cgroup = "/pyrunc-engines-cg-%d/%s" % (os.getpid(), cid)
    ctd.ctr("run", "-d", "--fifo-dir", ctd.fifo_dir, "--runc-binary", PYRUNC, "--runc-root", runc_root,
            "--cgroup", cgroup, IMAGE_NAME, cid, "sleep", "300")
    try:
        pid, status = ctd.tasks()[cid]
        assert status == "RUNNING"
        state = subprocess.run([PYRUNC, "--root", os.path.join(runc_root, ctd.namespace), "state", cid],
                               capture_output=True, text=True, check=True).stdout
        state = json.loads(state)
        assert state["status"] == "running" and state["pid"] == pid
        assert state["bundle"] == ctd.bundle(cid)
        with open("/sys/fs/cgroup/pids%s/cgroup.procs" % cgroup) as f:
            assert str(pid) in f.read().split()
        assert verbs_for(ctd, cid) == []  # the PATH runc was never asked
        ctd.ctr("task", "kill", "--signal", "SIGKILL", cid)
        _wait_status(ctd, cid, "STOPPED")
        ctd.ctr("task", "delete", cid)
        assert not os.path.exists(os.path.join(runc_root, ctd.namespace, cid))
        assert procs.cgroup_dirs(cgroup) == []
    finally:
        ctd.ctr("task", "delete", "--force", cid, check=False)
        ctd.ctr("containers", "delete", cid, check=False)
        for path in procs.cgroup_dirs(os.path.dirname(cgroup)):
            procs.remove_cgroup_tree(path)


def test_ctr_run_tty(ctd):
    cid = new_id("t-")
    rc, out = run_on_pty(ctd.ctr_argv("run", "-t", "--rm", "--fifo-dir", ctd.fifo_dir, IMAGE_NAME, cid,
                                      "sh", "-c", "tty; test -t 0 && test -t 1 && echo both-tty; exit 4"),
                         rows=33, cols=101)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert rc == 4, out
    assert lines[:2] == ["/dev/pts/0", "both-tty"], out
    create = [argv for argv in ctd.runtime_calls() if cid in argv and "create" in argv][0]
    assert "--console-socket" in create
    assert cid not in ctd.container_ids()
