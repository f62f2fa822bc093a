"""The kubelet's CRI flow against a private containerd 1.6 (engines/cri.py)
with two runtime handlers, `runc` (the reference) and `pyrunc`, in one
run.  Each step is checked from the kernel (/proc, cgroup files, mount
tables) or from inside the container, not only from containerd's answer,
and the handler containerd really called is read from its argv log.
"""
import os
import shutil
import time
import uuid

import pytest

from conftest import PYRUNC, TEST_CGROUP_PARENT, needs_root
from engines import procs
from engines.fixtures import require, require_basics

pytestmark = [needs_root, pytest.mark.integration]

HANDLERS = ("runc", "pyrunc")
CG = "/sys/fs/cgroup"


@pytest.fixture(scope="module")
def cri(tmp_path_factory):
    busybox = require_basics()
    require("containerd", "ctr", package="containerd")
    require("runc", package="runc")
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("CRI client needs grpcio and grpcio-tools: pip install '.[test]'")
    from engines.cri import CriNode

    node = CriNode(tmp_path_factory.mktemp("cri"), {"runc": shutil.which("runc"), "pyrunc": PYRUNC}, busybox)
    try:
        node.start()
        yield node
    finally:
        node.stop()
    # Nothing may survive: shims, mounts, the daemon's files.
    assert procs.pids_with_args(b"-address", node.sock.encode()) == []
    assert procs.mounts_under(node.base) == []
    assert not os.path.exists(node.base)


def ns(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


def cgroup_of(pid, controller="memory"):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    return None


def read(path):
    with open(path) as f:
        return f.read().strip()


def gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid) or procs._zombie(pid):
            return True
        time.sleep(0.05)
    return False


def wait_for(fn, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    return fn()


def run_pod(cri, handler, name):
    parent = "%s/cri-%s" % (TEST_CGROUP_PARENT, uuid.uuid4().hex[:8])
    config = cri.pod_config(name, parent)
    pod = cri.rpc("RunPodSandbox", config=config, runtime_handler=handler).pod_sandbox_id
    return pod, config, parent


def start_container(cri, pod, config, name, args, **kw):
    cid = cri.rpc("CreateContainer", pod_sandbox_id=pod, sandbox_config=config,
                  config=cri.container_config(name, args, **kw)).container_id
    cri.rpc("StartContainer", container_id=cid)
    status = cri.rpc("ContainerStatus", container_id=cid, verbose=True)
    return cid, status, cri.info_pid(status)


TRAP = "echo started; trap 'echo got TERM; exit 43' TERM; while true; do sleep 0.1; done"


@pytest.mark.parametrize("handler", HANDLERS)
def test_kubelet_flow(cri, handler):
    pb = cri.pb
    pod, config, parent = run_pod(cri, handler, "flow-" + handler)

    # RunPodSandbox / PodSandboxStatus: ready, in cgroup_parent/<pod id>,
    # run by the handler asked for
    status = cri.rpc("PodSandboxStatus", pod_sandbox_id=pod, verbose=True)
    assert status.status.state == pb.SANDBOX_READY and status.status.runtime_handler == handler
    sandbox_pid = cri.info_pid(status)
    assert cgroup_of(sandbox_pid) == "%s/%s" % (parent, pod)
    assert ns(sandbox_pid, "net") == cri.sandbox.net_inode()  # host network = the test's netns
    assert cri.handlers_called(pod) == {handler}

    # CreateContainer / StartContainer / ContainerStatus
    cid, cstatus, pid = start_container(cri, pod, config, "main", ["sh", "-c", TRAP])
    assert cstatus.status.state == pb.CONTAINER_RUNNING
    assert cgroup_of(pid) == "%s/%s" % (parent, cid)
    for kind in ("pid", "ipc", "uts", "net"):  # the pod's namespaces
        assert ns(pid, kind) == ns(sandbox_pid, kind), kind
    assert ns(pid, "mnt") != ns(sandbox_pid, "mnt")
    assert cri.handlers_called(cid) == {handler}
    assert cri.verbs_called(cid)[:2] == ["create", "start"]

    # ExecSync: output, exit code; it runs in the container (pause is pid 1)
    r = cri.rpc("ExecSync", container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=20)
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    r = cri.rpc("ExecSync", container_id=cid, cmd=["cat", "/proc/1/cmdline"], timeout=20)
    assert r.stdout.split(b"\0")[:2] == [b"sleep", b"2147483647"] and r.exit_code == 0

    # the log file containerd writes from the container's stdout (CRI format)
    log = os.path.join(cri.logs, "flow-" + handler, "main.log")
    assert wait_for(lambda: os.path.exists(log) and "stdout F started" in read(log)), log

    # ContainerStats: what the cgroup shows
    stats = cri.rpc("ContainerStats", container_id=cid).stats
    assert stats.attributes.id == cid and stats.memory.usage_bytes.value > 0
    assert stats.cpu.usage_core_nano_seconds.value > 0

    # UpdateContainerResources: seen in the cgroup files
    cri.rpc("UpdateContainerResources", container_id=cid,
            linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_shares=300,
                                             cpu_period=100000, cpu_quota=50000))
    assert read("%s/memory%s/%s/memory.limit_in_bytes" % (CG, parent, cid)) == str(96 << 20)
    assert read("%s/cpu%s/%s/cpu.shares" % (CG, parent, cid)) == "300"
    assert read("%s/cpu%s/%s/cpu.cfs_quota_us" % (CG, parent, cid)) == "50000"

    # a second container in the same pod: the pod's pid/ipc/uts/net
    cid2, _, pid2 = start_container(cri, pod, config, "side", ["sleep", "1000"])
    for kind in ("pid", "ipc", "uts", "net"):
        assert ns(pid2, kind) == ns(pid, kind), kind
    r = cri.rpc("ExecSync", container_id=cid2, cmd=["ps", "-o", "args"], timeout=20)
    assert b"while true" in r.stdout or b"trap" in r.stdout or b"sh -c" in r.stdout, r.stdout

    # StopContainer with a grace period: the TERM trap's exit code, in time
    t0 = time.monotonic()
    cri.rpc("StopContainer", container_id=cid, timeout=20)
    assert time.monotonic() - t0 < 10  # TERM was enough, no KILL after the grace period
    cstatus = cri.rpc("ContainerStatus", container_id=cid).status
    assert cstatus.state == pb.CONTAINER_EXITED and cstatus.exit_code == 43
    assert "got TERM" in read(log) and gone(pid)
    cri.rpc("StopContainer", container_id=cid2, timeout=2)
    assert cri.rpc("ContainerStatus", container_id=cid2).status.state == pb.CONTAINER_EXITED

    # RemoveContainer: processes, cgroups and the runtime's state go
    for c in (cid, cid2):
        cri.rpc("RemoveContainer", container_id=c)
        assert procs.cgroup_dirs("%s/%s" % (parent, c)) == []
        assert cri.sandbox.run("test", "-e", "/run/containerd/runc/k8s.io/" + c, check=False).returncode != 0
    assert gone(pid2)

    # StopPodSandbox / RemovePodSandbox: nothing of the pod is left
    cri.rpc("StopPodSandbox", pod_sandbox_id=pod)
    assert gone(sandbox_pid)
    cri.rpc("RemovePodSandbox", pod_sandbox_id=pod)
    assert procs.cgroup_dirs("%s/%s" % (parent, pod)) == []
    assert cri.sandbox.run("test", "-e", "/run/containerd/runc/k8s.io/" + pod, check=False).returncode != 0
    assert [m for m in cri.sandbox.mounts_under(cri.base) if pod in m] == []
    assert pod not in cri.pod_ids()
    assert "delete" in cri.verbs_called(pod)


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize("propagation", ["PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"])
def test_volume_propagation(cri, handler, propagation):
    """containerd asks for rootfsPropagation rslave (host-to-container) or
    rshared (bidirectional): a mount made on the node after the start
    reaches the container through the volume."""
    pb = cri.pb
    vol = os.path.join(cri.base, "vol-%s-%s" % (handler, propagation[12:16].lower()))
    os.makedirs(os.path.join(vol, "late"))
    # the volume a shared mount on the node (the sandbox's mount namespace)
    cri.sandbox.run("mount", "--bind", vol, vol)
    cri.sandbox.run("mount", "--make-shared", vol)
    pod, config, parent = run_pod(cri, handler, "prop-%s-%s" % (handler, propagation[12:16].lower()))
    try:
        mount = pb.Mount(container_path="/vol", host_path=vol, propagation=getattr(pb, propagation))
        cid, _, pid = start_container(cri, pod, config, "c", ["sleep", "1000"], mounts=[mount])
        # the volume's own propagation inside: a slave of the node's mount
        # (rslave) or in its peer group (rshared)
        line = [ln for ln in read("/proc/%d/mountinfo" % pid).splitlines() if ln.split()[4] == "/vol"][0]
        want = "master:" if propagation == "PROPAGATION_HOST_TO_CONTAINER" else "shared:"
        assert want in line, line
        cri.sandbox.run("mount", "-t", "tmpfs", "late", os.path.join(vol, "late"))
        r = cri.rpc("ExecSync", container_id=cid, cmd=["grep", " /vol/late ", "/proc/self/mountinfo"], timeout=20)
        assert r.exit_code == 0, (r.stdout, r.stderr)
    finally:
        cri.rpc("StopPodSandbox", pod_sandbox_id=pod, check=False)
        cri.rpc("RemovePodSandbox", pod_sandbox_id=pod, check=False)
        for point in cri.sandbox.mounts_under(vol):
            cri.sandbox.run("umount", "-l", point, check=False)
    assert procs.cgroup_dirs("%s/%s" % (parent, pod)) == []
