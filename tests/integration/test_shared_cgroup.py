"""A container placed in a cgroup that already held other processes
(runc warns "container's cgroup is not empty" and goes on): a config's
cgroupsPath may name a populated host cgroup ("/system.slice").

`delete`, `delete --force` and `kill --all` must never kill those host
processes: in such a cgroup only the container's own processes are
signalled (its init's session, or its init's pid namespace).  runc 1.1.5
kills every member there; pyrunc deliberately does not (README).
Checked from the kernel: the host process is alive, the container's dead.
"""
import os
import subprocess
import time

import pytest

from conftest import needs_root
from hostcheck import is_alive, member_pids

pytestmark = needs_root


def _wait(fn, timeout=10):
    deadline = time.time() + timeout
    while not fn() and time.time() < deadline:
        time.sleep(0.02)
    return fn()


@pytest.fixture
def host_cgroup(bundle):
    """`cgroupsPath` made beforehand in every hierarchy, holding a process
    of the test's own (the "host" service) -> (cgroupsPath, its Popen)."""
    cg = bundle.config["linux"]["cgroupsPath"]
    made = []
    for base in ("/sys/fs/cgroup/" + d for d in sorted(os.listdir("/sys/fs/cgroup"))):
        if os.path.isdir(base) and not os.path.islink(base):
            os.makedirs(base + cg)
            made.append(base + cg)
    host = subprocess.Popen(["sleep", "1040"])
    for d in made:
        if not os.path.exists(d + "/cpuset.cpus"):  # an empty cpuset (pyrunc fills it) holds no task
            with open(d + "/cgroup.procs", "w") as f:
                f.write(str(host.pid))
    assert member_pids(cg) == [host.pid]
    yield cg, host
    host.kill()
    host.wait()
    for d in made:
        _wait(lambda: _rmdir(d))


def _rmdir(d):
    try:
        os.rmdir(d)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _without_pid_ns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]


@pytest.mark.parametrize("verb", [("delete",), ("delete", "--force")])
def test_delete_spares_the_host_process_in_a_shared_cgroup(verb, host_cgroup, bundle, runtime):
    cg, host = host_cgroup
    bundle.update(_without_pid_ns)
    bundle.set_args("sh", "-c", "sleep 1041 & exit 0")
    cid = runtime.new_id()
    p = runtime("run", "-d", "-b", bundle.path, cid, check=False)
    assert p.returncode == 0 and "cgroup is not empty" in p.stderr, p.stderr
    assert _wait(lambda: runtime.state(cid)["status"] == "stopped")
    assert _wait(lambda: len(member_pids(cg)) == 2)
    child = [pid for pid in member_pids(cg) if pid != host.pid]
    p = runtime(*verb, cid, check=False)
    assert p.returncode == 0, p.stderr
    assert is_alive(host.pid), "delete killed a process that was in the cgroup before the container"
    assert _wait(lambda: not any(is_alive(pid) for pid in child)), "the container's own child lives on"
    assert member_pids(cg) == [host.pid]
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_kill_all_spares_the_host_process_in_a_shared_cgroup(host_cgroup, bundle, runtime):
    cg, host = host_cgroup
    bundle.set_args("sh", "-c", "sleep 1042 & exec sleep 1043")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    assert _wait(lambda: len(member_pids(cg)) == 3)
    ours = [pid for pid in member_pids(cg) if pid != host.pid]
    p = runtime("kill", "--all", cid, "KILL", check=False)
    assert p.returncode == 0, p.stderr
    assert _wait(lambda: not any(is_alive(pid) for pid in ours)), "kill --all missed the container's processes"
    assert is_alive(host.pid), "kill --all killed a process that was in the cgroup before the container"
    runtime("delete", "--force", cid)
    assert is_alive(host.pid)


def test_delete_force_of_a_running_container_spares_the_host_process(host_cgroup, bundle, runtime):
    cg, host = host_cgroup
    bundle.update(_without_pid_ns)
    bundle.set_args("sh", "-c", "sleep 1044 & exec sleep 1045")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    assert _wait(lambda: len(member_pids(cg)) == 3)
    ours = [pid for pid in member_pids(cg) if pid != host.pid]
    p = runtime("delete", "--force", cid, check=False)
    assert p.returncode == 0, p.stderr
    assert _wait(lambda: not any(is_alive(pid) for pid in ours))
    assert is_alive(host.pid), "delete --force killed a process that was in the cgroup before the container"


CRIU = os.environ.get("PYRUNC_TEST_CRIU") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared", "tools", "criu", "criu")


@pytest.mark.skipif(not os.path.exists(CRIU), reason="no criu at %s (set PYRUNC_TEST_CRIU)" % CRIU)
def test_failed_restore_spares_the_host_process(host_cgroup, bundle, runtime, tmp_path):
    """A restore that fails after placing its cgroup (here: a --work-path
    it cannot make) takes back only what it made."""
    cg, host = host_cgroup
    images = tmp_path / "images"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"")
    (images / "descriptors.json").write_text('["/dev/null", "/dev/null", "/dev/null"]')
    cid = runtime.new_id()
    p = runtime("--criu", CRIU, "restore", "-d", "--image-path", str(images),
                "--work-path", str(tmp_path / "no" / "such"), "-b", bundle.path, cid, check=False)
    assert p.returncode != 0 and "--work-path" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    time.sleep(0.2)
    assert is_alive(host.pid), "a failed restore killed a process that was in the cgroup before it"
    assert not os.path.exists(os.path.join(runtime.root, cid))


@pytest.mark.skipif(not os.path.exists(CRIU), reason="no criu at %s (set PYRUNC_TEST_CRIU)" % CRIU)
@pytest.mark.parametrize("meta", ['[]', '{"external_mounts": 5}', '{"external_files": {"k": {"fds": ["x"]}}}',
                                  '{"external_files": {"k": {"path": "/x", "fds": [3]}}}'])
def test_restore_of_an_image_with_bad_metadata_is_one_line(meta, bundle, runtime, tmp_path):
    """pyrunc-checkpoint.json in an image directory is input: anything
    but what checkpoint writes is one error line, nothing left behind."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"")
    (images / "descriptors.json").write_text('["/dev/null", "/dev/null", "/dev/null"]')
    (images / "pyrunc-checkpoint.json").write_text(meta)
    cid = runtime.new_id()
    p = runtime("--criu", CRIU, "restore", "-d", "--image-path", str(images), "-b", bundle.path, cid, check=False)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "pyrunc-checkpoint.json" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))
