"""Scheduler, I/O priority, CPU affinity, personality and oom_score_adj,
read from inside the container."""
import os

from conftest import needs_root

pytestmark = needs_root


def run_inside(runtime, bundle, script):
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_scheduler_ioprio_affinity_oom(bundle, runtime):
    def cfg(c):
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
        c["process"]["execCPUAffinity"] = {"final": "0"}
        c["process"]["oomScoreAdj"] = 432
    bundle.update(cfg)
    out = run_inside(runtime, bundle, "cat /proc/self/stat; echo; grep Cpus_allowed_list /proc/self/status; "
                                      "cat /proc/self/oom_score_adj; grep -E '^policy' /proc/self/sched || true")
    stat_fields = out.split("\n")[0].rsplit(")", 1)[1].split()
    nice, policy = int(stat_fields[16]), int(stat_fields[38])
    assert nice == 7 and policy == 3  # SCHED_BATCH
    assert "Cpus_allowed_list:\t0\n" in out
    assert "\n432\n" in out


def test_ioprio_class_visible(bundle, runtime):
    # ionice isn't in busybox: read the I/O priority with the syscall from the host
    bundle.update(lambda c: c["process"].update(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6}))
    bundle.set_args("sleep", "30")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    value = libc.syscall(252, 1, pid)  # ioprio_get(IOPRIO_WHO_PROCESS, pid)
    runtime("delete", "--force", cid)
    assert value == (2 << 13) | 6


def test_personality_linux32(bundle, runtime):
    bundle.update(lambda c: c["linux"].update(personality={"domain": "LINUX32"}))
    out = run_inside(runtime, bundle, "uname -m")
    assert out.strip() in ("i686", "i386")


def test_unknown_scheduler_policy_refused(bundle, runtime):
    bundle.update(lambda c: c["process"].update(scheduler={"policy": "SCHED_FOO"}))
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "process.scheduler" in p.stderr
