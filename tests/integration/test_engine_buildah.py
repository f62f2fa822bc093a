"""pyrunc as the runtime of buildah 1.28's RUN steps, then podman runs the
built image: the build-then-run story, in a private store.

Everything runs in a sandbox (engines.netns_sandbox): even with `--network
none` a build must not be able to reach the machine's network namespace.
"""
import os
import tempfile

import pytest

from conftest import PYRUNC, needs_root
from engines import procs
from engines.buildah import Buildah
from engines.fixtures import IMAGE_NAME, image_archive, require
from engines.netns_sandbox import Sandbox, host_network_snapshot
from engines.podman import Podman

pytestmark = [needs_root, pytest.mark.integration]

CONTAINERFILE = """\
FROM {base}
RUN echo step1 > /layers.txt && ip -o link | wc -l > /links.txt
RUN test -f /layers.txt && echo step2 >> /layers.txt
RUN grep -qx step2 /layers.txt && echo step3 >> /layers.txt && echo "built in $(cat /proc/1/cmdline | tr '\\0' ' ')"
CMD ["cat", "/layers.txt"]
"""

FAILING = """\
FROM {base}
RUN echo before > /before.txt
RUN test -f /before.txt && exit 3
RUN echo never-here
"""


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    require("podman", package="podman")
    require("conmon", package="conmon")
    require("buildah", package="buildah")
    require("unshare", "nsenter", package="util-linux")
    archive = image_archive(tmp_path_factory.mktemp("buildah-image"))
    host_before = host_network_snapshot()
    parent = "/pyrunc-engines-buildah-%d" % os.getpid()
    sandbox = Sandbox()
    sandbox.start()
    # A short base: see test_engine_podman (conmon's timeout with long paths).
    base = tempfile.mkdtemp(prefix="pyrunc-bd-", dir="/tmp")
    pm = Podman(base, PYRUNC, archive, IMAGE_NAME, parent, sandbox=sandbox)
    try:
        pm.start()
        yield pm, Buildah(pm, parent + "/buildah")
    finally:
        pm.stop()
        sandbox.stop()
    assert [p for p in procs.pids_with_args(b"conmon") if pm._is_ours(p)] == []
    assert not os.path.exists(base)
    assert procs.cgroup_dirs(parent) == []
    assert host_network_snapshot() == host_before


def runtime_containers(pm):
    """What the runtime's default root (/run/pyrunc in the sandbox) holds:
    buildah and podman pass no --root."""
    return pm.sandbox.run(PYRUNC, "list", "--quiet").stdout.split()


def calls_since(pm, n):
    return pm.runtime_calls()[n:]


def test_buildah_bud_run_steps_then_podman_run(engines, tmp_path):
    pm, bd = engines
    (tmp_path / "Containerfile").write_text(CONTAINERFILE.format(base=IMAGE_NAME))
    before = len(pm.runtime_calls())
    p = bd.bud(str(tmp_path), "localhost/pyrunc-built:1")
    # The last RUN saw the first two steps' file; the step ran as the
    # container's pid 1 (buildah's RUN is `sh -c`).
    assert "built in /bin/sh -c grep -qx step2" in p.stdout, p.stdout + p.stderr
    assert "localhost/pyrunc-built:1" in bd.images()
    assert IMAGE_NAME in bd.images()
    assert bd.containers() == []  # buildah removed its working containers

    # pyrunc really ran every step: create/start/state/delete per RUN, one
    # bundle each, under the TMPDIR the test gave buildah.
    calls = calls_since(pm, before)
    creates = [argv for argv in calls if "create" in argv]
    assert len(creates) == 3, calls
    bundles = [argv[argv.index("--bundle") + 1] for argv in creates]
    assert len(set(bundles)) == 3 and all(b.startswith(bd.tmpdir + "/") for b in bundles), bundles
    for argv in creates:
        cid = argv[-1]
        verbs = [a[0] for a in calls if a[-1] == cid and a[0] in ("create", "start", "state", "delete")]
        assert verbs[:2] == ["create", "start"] and verbs[-1] == "delete" and "state" in verbs, (cid, calls)
    assert runtime_containers(pm) == []
    assert procs.cgroup_dirs(bd.cgroup_parent) == []  # each step's cgroup went with its delete

    # podman runs the image buildah built, with pyrunc, from the same store.
    run = pm.podman("run", "--rm", *pm.run_args(), "localhost/pyrunc-built:1", check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["step1", "step2", "step3"]
    links = pm.podman("run", "--rm", *pm.run_args(), "localhost/pyrunc-built:1", "cat", "/links.txt")
    assert links.stdout.strip() == "1"  # --network none: the step saw only lo
    assert runtime_containers(pm) == []


def test_buildah_failing_run_step_fails_the_build(engines, tmp_path):
    pm, bd = engines
    (tmp_path / "Containerfile").write_text(FAILING.format(base=IMAGE_NAME))
    before = len(pm.runtime_calls())
    p = bd.bud(str(tmp_path), "localhost/pyrunc-broken:1", check=False)
    assert p.returncode != 0, p.stdout
    assert "exit status 3" in p.stderr, p.stderr
    assert "never-here" not in p.stdout
    assert "localhost/pyrunc-broken:1" not in bd.images()
    # The two steps that ran went through pyrunc, and neither is left in
    # the runtime; the third never started.
    creates = [argv for argv in calls_since(pm, before) if "create" in argv]
    assert len(creates) == 2
    assert runtime_containers(pm) == []
    for cid in bd.containers():  # buildah keeps a failed build's working container
        bd.buildah("rm", cid)
    assert bd.containers() == []
