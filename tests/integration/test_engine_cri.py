"""The kubelet's CRI flow against a private containerd 1.6 (engines/cri.py)
with two runtime handlers, `runc` (the reference) and `pyrunc`, in one
run.  Each step (engines/cri_flow.py) is checked from the kernel (/proc,
cgroup files, mount tables) or from inside the container, not only from
containerd's answer, and the handler containerd really called is read
from its argv log.  The same flow with SystemdCgroup = true runs inside
the systemd node (test_systemd_cgroup.py).
"""
import os
import shutil

import pytest

from conftest import PYRUNC, TEST_CGROUP_PARENT, needs_root
from engines import procs
from engines.fixtures import require, require_basics

pytestmark = [needs_root, pytest.mark.integration]

HANDLERS = ("runc", "pyrunc")


def require_grpc():
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("CRI client needs grpcio and grpcio-tools: pip install '.[test]'")


@pytest.fixture(scope="module")
def cri(tmp_path_factory):
    busybox = require_basics()
    require("containerd", "ctr", package="containerd")
    require("runc", package="runc")
    require_grpc()
    from engines.cri import CriNode

    node = CriNode(tmp_path_factory.mktemp("cri"), {"runc": shutil.which("runc"), "pyrunc": PYRUNC}, busybox)
    try:
        node.start()
        yield node
    finally:
        node.stop()
    # Nothing may survive: shims, pods, mounts, the daemon's files.
    assert node.leftover_pids == [], "processes outlived their pods: %s" % node.leftover_pids
    assert procs.pids_with_args(b"-address", node.sock.encode()) == []
    assert procs.mounts_under(node.base) == []
    assert not os.path.exists(node.base)


@pytest.fixture
def layout():
    from engines.cri_flow import Layout

    return Layout(systemd=False, cgroupfs_root=TEST_CGROUP_PARENT + "/cri")


@pytest.mark.parametrize("handler", HANDLERS)
def test_kubelet_flow(cri, layout, handler):
    from engines.cri_flow import kubelet_flow

    kubelet_flow(cri, handler, layout)


@pytest.mark.parametrize("handler", HANDLERS)
def test_container_leaving_a_child_in_the_pod(cri, layout, handler):
    """issue 15's report: the child keeps the cgroup busy after the
    container's main process exits; Stop/RemoveContainer must still end
    it (runtime `kill --all` on a stopped container, then `delete`)."""
    from engines.cri_flow import orphan_flow

    orphan_flow(cri, handler, layout)


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize("propagation", ["PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"])
def test_volume_propagation(cri, layout, handler, propagation):
    """containerd asks for rootfsPropagation rslave (host-to-container) or
    rshared (bidirectional)."""
    from engines.cri_flow import propagation_flow

    propagation_flow(cri, handler, propagation, layout)
