"""pyrunc as the OCI runtime of podman 4.3 + conmon: the everyday workflow
in a private store, checked through podman and through the kernel."""
import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import PYRUNC, make_rootfs, needs_root
from engines import procs
from engines.fixtures import IMAGE_NAME, image_archive, require
from engines.podman import Podman
from engines.pty_run import run_on_pty

pytestmark = [needs_root, pytest.mark.integration]


@pytest.fixture(scope="module")
def pm(tmp_path_factory):
    require("podman", package="podman")
    require("conmon", package="conmon")
    # A short base: with a store path as long as pytest's temp dirs, podman
    # 4.3 waits its 20 s conmon timeout after every container exit (runc too).
    base = tempfile.mkdtemp(prefix="pyrunc-pm-", dir="/tmp")
    archive = image_archive(tmp_path_factory.mktemp("podman-image"))
    engine = Podman(base, PYRUNC, archive, IMAGE_NAME, "/pyrunc-engines-podman-%d" % os.getpid())
    try:
        engine.start()
    except Exception:
        engine.stop()
        raise
    yield engine
    engine.stop_and_check()


def name(prefix):
    return prefix + os.urandom(3).hex()


def cgroup_file(pm, cid, controller, fname):
    with open("/sys/fs/cgroup/%s%s/libpod-%s/%s" % (controller, pm.cgroup_parent, cid, fname)) as f:
        return f.read().strip()


def calls_for(pm, cid):
    return [argv for argv in pm.runtime_calls() if cid in argv]


VERBS = {"create", "start", "exec", "pause", "resume", "update", "kill", "delete", "state", "ps"}


def verb_of(argv):
    return next((a for a in argv if a in VERBS), None)


def test_podman_run_rm_output_and_exit_code(pm):
    n = name("rm-")
    p = pm.podman("run", "--rm", "--name", n, *pm.run_args(), IMAGE_NAME,
                  "sh", "-c", "echo hello; echo $$; ulimit -n; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout.splitlines() == ["hello", "1", "20000"]  # pid 1; containers.conf rlimit
    assert pm.podman("ps", "-a", "--filter", "name=" + n, "--quiet").stdout.strip() == ""
    create = [argv for argv in pm.runtime_calls() if "create" in argv][-1]
    # runc's argv: the JSON log pair (runtime_supports_json has pyrunc).
    assert "--log-format=json" in create and "--log" in create


def test_podman_detached_exec_logs_ps_top_pause_update_stop(pm):
    n = name("d-")
    cid = pm.podman("run", "-d", "--name", n, *pm.run_args(), IMAGE_NAME,
                    "sh", "-c", "echo started; trap 'echo got-term; exit 7' TERM; sleep 300 & wait").stdout.strip()
    try:
        assert pm.podman("ps", "--filter", "name=" + n, "--format", "{{.Names}}").stdout.split() == [n]
        assert pm.inspect(n, "{{.State.Status}}") == "running"
        pid = int(pm.inspect(n, "{{.State.Pid}}"))
        assert str(pid) in cgroup_file(pm, cid, "pids", "cgroup.procs").split()

        p = pm.podman("exec", n, "sh", "-c", "echo exec-out; cat /proc/1/cmdline | tr '\\0' ' '; exit 5",
                      check=False)
        assert p.returncode == 5, p.stderr
        assert p.stdout.splitlines() == ["exec-out", "sh -c echo started; trap 'echo got-term; exit 7' TERM; "
                                                     "sleep 300 & wait "]
        assert pm.podman("logs", n).stdout.splitlines() == ["started"]
        top = pm.podman("top", n, "pid", "args").stdout.splitlines()[1:]
        assert [line.split(None, 1)[0] for line in top] == ["1", "2"]

        pm.podman("pause", n)
        assert pm.inspect(n, "{{.State.Status}}") == "paused"
        assert cgroup_file(pm, cid, "freezer", "freezer.state") == "FROZEN"
        pm.podman("unpause", n)
        assert pm.inspect(n, "{{.State.Status}}") == "running"
        assert cgroup_file(pm, cid, "freezer", "freezer.state") == "THAWED"

        pm.podman("update", "--memory", "64m", n)
        assert int(cgroup_file(pm, cid, "memory", "memory.limit_in_bytes")) == 64 << 20

        pm.podman("stop", "--time", "10", n)  # TERM: the trap exits 7
        assert pm.inspect(n, "{{.State.Status}}") == "exited"
        assert pm.inspect(n, "{{.State.ExitCode}}") == "7"
        assert pm.podman("logs", n).stdout.splitlines() == ["started", "got-term"]
        verbs = [verb_of(argv) for argv in calls_for(pm, cid)]
        assert verbs[:2] == ["create", "start"]
        assert {"exec", "pause", "resume", "update", "kill"} <= set(verbs)
    finally:
        pm.podman("rm", "--force", n, check=False)
    assert procs.cgroup_dirs("%s/libpod-%s" % (pm.cgroup_parent, cid)) == []


def test_podman_stop_kills_after_timeout_and_kill_and_rm_force(pm):
    n = name("s-")
    pm.podman("run", "-d", "--name", n, *pm.run_args(), IMAGE_NAME, "sleep", "300")
    try:
        started = time.monotonic()
        pm.podman("stop", "--time", "1", n)  # pid 1 ignores TERM: KILL after 1 s
        assert time.monotonic() - started >= 1
        assert pm.inspect(n, "{{.State.ExitCode}}") == "137"
        pm.podman("start", n)
        assert pm.inspect(n, "{{.State.Status}}") == "running"
        pm.podman("kill", "--signal", "KILL", n)
        pm.podman("wait", n)
        assert pm.inspect(n, "{{.State.ExitCode}}") == "137"
        pm.podman("start", n)
        pid = int(pm.inspect(n, "{{.State.Pid}}"))
        pm.podman("rm", "--force", "--time", "0", n)  # a running container
        assert pm.podman("ps", "-a", "--filter", "name=" + n, "--quiet").stdout.strip() == ""
        assert procs.cmdline(pid) == [] or not os.path.exists("/proc/%d" % pid)
    finally:
        pm.podman("rm", "--force", n, check=False)


def test_podman_run_tty_and_exec_it(pm):
    n = name("t-")
    rc, out = run_on_pty(pm.argv("run", "--rm", "-t", "--name", n, *pm.run_args(), IMAGE_NAME,
                                 "sh", "-c", "tty; test -t 0 && test -t 1 && echo both-tty; exit 4"), env=pm.env)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert rc == 4, out
    assert lines == ["/dev/pts/0", "both-tty"], out
    pm.podman("run", "-d", "--name", n, *pm.run_args(), IMAGE_NAME, "sleep", "300")
    try:
        rc, out = run_on_pty(pm.argv("exec", "-it", n, "sh", "-c", "test -t 0 && test -t 1 && echo exec-tty; exit 6"), env=pm.env)
        assert rc == 6, out
        assert [line.strip() for line in out.splitlines() if line.strip()] == ["exec-tty"], out
    finally:
        pm.podman("rm", "--force", "--time", "0", n, check=False)


def test_a_container_podman_lost_is_deleted_with_the_store(pm):
    """podman runs the runtime without --root, so its state lives in the
    runtime's default root.  One podman no longer knows (as after a failed
    restore) survived `podman rm --all` there; the store's cleanup now
    deletes what the runtime holds for bundles in the store."""
    bundle = os.path.join(pm.base, "lost-bundle")
    os.makedirs(os.path.join(bundle, "rootfs"))
    make_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run([PYRUNC, "spec", "--bundle", bundle], check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"].update(terminal=False, args=["sleep", "300"])
    cfg["linux"]["cgroupsPath"] = "%s/lost-%s" % (pm.cgroup_parent, os.urandom(3).hex())
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    cid = "pyrunc-lost-" + os.urandom(4).hex()
    subprocess.run([PYRUNC, "create", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert pm.runtime_leftovers() == [cid]
        pm.delete_runtime_leftovers()
        assert pm.runtime_leftovers() == []
        assert subprocess.run([PYRUNC, "state", cid], capture_output=True).returncode != 0
    finally:
        subprocess.run([PYRUNC, "delete", "--force", cid], capture_output=True)
