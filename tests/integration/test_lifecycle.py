"""The lifecycle on the real kernel: create -> start -> kill -> delete, with
the results checked on the host (processes, mounts, state dir)."""
import os
import signal
import subprocess
import time

import pytest

from conftest import needs_root

pytestmark = needs_root


def proc_exists(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def mounts_naming(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if path in line]


def wait_status(runtime, cid, want, timeout=5):
    deadline = time.time() + timeout
    while True:
        st = runtime.state(cid)
        if st["status"] == want or time.time() > deadline:
            return st
        time.sleep(0.02)


def test_create_start_kill_delete(bundle, runtime, tmp_path):
    bundle.set_args("sleep", "100")
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    runtime("create", "--bundle", bundle.path, "--pid-file", str(pid_file), cid)

    st = runtime.state(cid)
    assert st["status"] == "created"
    assert st["pid"] > 0 and proc_exists(st["pid"])
    assert st["id"] == cid and st["bundle"] == bundle.path
    assert st["rootfs"] == os.path.realpath(bundle.rootfs)
    assert st["ociVersion"] == "1.3.0" and st["created"].endswith("Z")
    assert pid_file.read_text() == str(st["pid"])  # bare number, no newline
    # The init waits before execve: it is not yet `sleep`.
    with open("/proc/%d/cmdline" % st["pid"], "rb") as f:
        assert b"sleep" not in f.read()

    runtime("start", cid)
    st = runtime.state(cid)
    assert st["status"] == "running"
    with open("/proc/%d/cmdline" % st["pid"], "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"

    runtime("kill", cid, "KILL")
    st = wait_status(runtime, cid, "stopped")
    assert st["status"] == "stopped" and st["pid"] == 0

    runtime("delete", cid)
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert not proc_exists(int(pid_file.read_text()))
    assert mounts_naming(bundle.path) == []
    assert runtime("state", cid, check=False).returncode == 1


def test_run_returns_exit_code_and_output(bundle, runtime):
    bundle.set_args("sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3")
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert p.returncode == 3
    assert p.stdout == "out-42\n" and "err" in p.stderr
    # run (foreground) deletes the container afterwards
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_run_detach(bundle, runtime):
    bundle.set_args("sleep", "100")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    assert runtime.state(cid)["status"] == "running"
    runtime("delete", "--force", cid)
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_delete_refuses_running_without_force(bundle, runtime):
    bundle.set_args("sleep", "100")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    p = runtime("delete", cid, check=False)
    assert p.returncode == 1
    assert "not stopped" in p.stderr
    assert proc_exists(pid)
    runtime("delete", "-f", cid)
    assert not proc_exists(pid)


def test_delete_created_container(bundle, runtime):
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    runtime("delete", cid)
    assert not proc_exists(pid)
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_delete_force_missing_is_ok(runtime):
    assert runtime("delete", "--force", "no-such-container", check=False).returncode == 0
    p = runtime("delete", "no-such-container", check=False)
    assert p.returncode == 1 and "container does not exist" in p.stderr


def test_kill_signal_forms(bundle, runtime):
    bundle.set_args("sh", "-c", "trap 'exit 0' USR1; while :; do sleep 0.1; done")
    for form in ("USR1", "SIGUSR1", str(int(signal.SIGUSR1))):
        cid = runtime.new_id()
        runtime("run", "-d", "-b", bundle.path, cid)
        time.sleep(0.2)  # let the trap be installed
        runtime("kill", cid, form)
        assert wait_status(runtime, cid, "stopped")["status"] == "stopped", form
        runtime("delete", cid)


def test_duplicate_id_refused(bundle, runtime):
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1 and "exists" in p.stderr
    assert runtime.state(cid)["status"] == "created"


def test_recycled_pid_reads_stopped(bundle, runtime):
    """A recorded pid now used by another process must not read as running:
    pyrunc compares the process start time."""
    import json

    bundle.set_args("sleep", "100")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    runtime("kill", cid, "KILL")
    wait_status(runtime, cid, "stopped")
    other = subprocess.Popen(["sleep", "30"])
    try:
        path = os.path.join(runtime.root, cid, "state.json")
        with open(path) as f:
            rec = json.load(f)
        rec["pid"] = other.pid  # pretend the pid was recycled
        with open(path, "w") as f:
            json.dump(rec, f)
        st = runtime.state(cid)
        assert st["status"] == "stopped"
        assert runtime("kill", cid, "KILL", check=False).returncode != 0
        assert other.poll() is None  # the innocent process was not signalled
    finally:
        other.kill()
        other.wait()


def test_list_formats(bundle, runtime):
    import json

    bundle.set_args("sleep", "100")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    table = runtime("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == [cid, str(runtime.state(cid)["pid"]), "running"]
    assert runtime("list", "-q").stdout.split() == [cid]
    docs = json.loads(runtime("list", "--format", "json").stdout)
    assert [d["id"] for d in docs] == [cid] and docs[0]["owner"] == "root"


def test_delete_leaves_sibling_cgroups_under_a_shared_parent(bundle, runtime):
    """The first container under /<parent>/ creates the parent; deleting it
    must not touch a sibling's cgroup (only an empty parent is removed)."""
    import glob
    import uuid

    parent = "/pyrunc-shared-%s" % uuid.uuid4().hex[:8]
    bundle.set_args("sleep", "100")
    first, second = runtime.new_id(), runtime.new_id()
    for cid in (first, second):
        bundle.update(lambda c, cid=cid: c["linux"].update(cgroupsPath="%s/%s" % (parent, cid)))
        runtime("run", "-d", "-b", bundle.path, cid)
    try:
        start = time.time()
        runtime("delete", "--force", first)
        assert time.time() - start < 5  # no retrying on a busy sibling
        assert runtime.state(second)["status"] == "running"
        assert glob.glob("/sys/fs/cgroup/memory%s/%s" % (parent, second))
        runtime("delete", "--force", second)
    finally:
        for d in glob.glob("/sys/fs/cgroup/*%s" % parent):
            try:
                os.rmdir(d)
            except OSError:
                pass
    assert glob.glob("/sys/fs/cgroup/*%s/*" % parent) == []
