"""A stopped container whose cgroup still holds processes (issue 15).

When a container has no pid namespace of its own (or joins another's),
its init may exit while a child it started lives on, still in the
container's cgroup: the Kubernetes pod whose container shares the pod's
pid namespace.  As runc does, `kill --all ID 9` kills them and exits 0,
and `delete` / `delete --force` kill what is left and remove the cgroups
at once.  Checked from the kernel: /proc/<pid>/cgroup and the hierarchies.
"""
import os
import time

import pytest

from conftest import needs_root
from hostcheck import cgroup_dirs, is_alive, leftovers, member_pids

pytestmark = needs_root


def _without_pid_ns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]


def _wait(fn, timeout=10):
    deadline = time.time() + timeout
    while not fn() and time.time() < deadline:
        time.sleep(0.02)
    return fn()


def _orphaning_container(runtime, bundle, configure):
    """A started container whose init exits at once, leaving a sleeping
    child in its cgroup; -> (id, cgroupsPath, the child's pids)."""
    bundle.update(configure)
    bundle.set_args("sh", "-c", "sleep 1005 & exit 0")
    cg = bundle.config["linux"]["cgroupsPath"]
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    assert _wait(lambda: runtime.state(cid)["status"] == "stopped")
    # the init may linger as a zombie for a moment until the host reaps it
    assert _wait(lambda: len(member_pids(cg)) == 1)
    children = member_pids(cg)
    assert len(children) == 1 and is_alive(children[0]), children
    return cid, cg, children


@pytest.mark.parametrize("verb", [("delete",), ("delete", "--force")])
def test_delete_kills_what_the_init_left(verb, bundle, runtime):
    cid, cg, children = _orphaning_container(runtime, bundle, _without_pid_ns)
    started = time.monotonic()
    p = runtime(*verb, cid, check=False)
    took = time.monotonic() - started
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == ""
    assert took < 2, took  # runc: ~10 ms; before the fix ~30 s, EBUSY, process and cgroup left
    assert not any(is_alive(pid) for pid in children)
    assert leftovers(runtime.root, cid, cg) == []


def test_kill_all_on_stopped_container_reaches_its_cgroup(bundle, runtime):
    cid, cg, children = _orphaning_container(runtime, bundle, _without_pid_ns)
    p = runtime("kill", "--all", cid, "9", check=False)
    assert p.returncode == 0, p.stderr  # runc: 0 (containerd's killall before delete)
    assert _wait(lambda: not any(is_alive(pid) for pid in children))
    assert _wait(lambda: member_pids(cg) == [])
    # without --all a stopped container is still "not running"
    p = runtime("kill", cid, "9", check=False)
    assert p.returncode == 1 and "container not running" in p.stderr
    runtime("delete", cid)
    assert leftovers(runtime.root, cid, cg) == []


def test_joined_pid_namespace(bundle, runtime):
    """A second container joined to the first one's pid namespace (a pod's
    sandbox and container): its init exits, its child stays; delete kills
    the child, the sandbox lives on."""
    bundle.set_args("sleep", "1006")
    sandbox = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, sandbox)
    sandbox_cg = bundle.config["linux"]["cgroupsPath"]
    sandbox_pid = runtime.state(sandbox)["pid"]

    def join(cfg):
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = "/proc/%d/ns/pid" % sandbox_pid
        cfg["linux"]["cgroupsPath"] = sandbox_cg + "-member"

    cid, cg, children = _orphaning_container(runtime, bundle, join)
    p = runtime("delete", cid, check=False)
    assert p.returncode == 0, p.stderr
    assert not any(is_alive(pid) for pid in children)
    assert leftovers(runtime.root, cid, cg) == []
    assert runtime.state(sandbox)["status"] == "running" and is_alive(sandbox_pid)
    runtime("delete", "--force", sandbox)
    assert cgroup_dirs(sandbox_cg) == []


@pytest.mark.parametrize("joined", [False, True], ids=["own-cgroup", "joined-cgroup"])
def test_delete_force_of_a_paused_container(joined, bundle, runtime):
    """A paused (frozen) container dies at once on delete --force, also
    in a cgroup that existed before it (joined: left in place, as runc)."""
    bundle.set_args("sh", "-c", "sleep 1011 & exec sleep 1012")
    cg = bundle.config["linux"]["cgroupsPath"]
    made = []
    if joined:  # every hierarchy's directory made beforehand (pyrunc fills an empty cpuset)
        for base in ("/sys/fs/cgroup/" + d for d in sorted(os.listdir("/sys/fs/cgroup"))):
            if os.path.isdir(base) and not os.path.islink(base):
                os.makedirs(base + cg)
                made.append(base + cg)
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    assert _wait(lambda: len(member_pids(cg)) == 2)
    pids = member_pids(cg)
    runtime("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    started = time.monotonic()
    runtime("delete", "--force", cid)
    assert time.monotonic() - started < 3
    assert _wait(lambda: not any(is_alive(p) for p in pids))
    if joined:
        assert cgroup_dirs(cg) == sorted(made)  # not ours to remove
        for d in made:
            os.rmdir(d)
    assert leftovers(runtime.root, cid, cg) == []
