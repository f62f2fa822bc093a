"""A create SIGKILLed at any instant leaves nothing `delete --force` does
not remove (issue 17).

`pyrunc create` is killed at >= 100 points: at times spread over the
whole create, and the moment each artefact appears (the state directory,
each of its files, the container's cgroup directory in each hierarchy,
the init's pid in state.json).  Then `delete --force`, then the host is
read from the kernel: no cgroup directory in any hierarchy (the hybrid
unified one included), no mount, no process in the container's cgroup
or forked by the dead create, no state entry.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import needs_root
from hostcheck import cgroup_dirs, leftovers

pytestmark = needs_root

TIME_POINTS_MS = [i * 0.75 for i in range(80)]  # 0 .. 59 ms, create takes ~35 ms here


def _pids_with_arg(arg):
    """Processes whose command line holds `arg` (a dead create's children
    keep its command line until they exec)."""
    out = []
    needle = arg.encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if needle in f.read().split(b"\0"):
                        out.append(int(pid))
            except OSError:
                pass
    return out


def _wait_none(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    found = fn()
    while found and time.monotonic() < deadline:
        time.sleep(0.01)
        found = fn()
    return found


def _artefacts(root, cid, cg):
    """(name, test) for everything create makes, in about the order it
    makes them."""
    sdir = os.path.join(root, cid)

    def has_pid():
        try:
            with open(os.path.join(sdir, "state.json")) as f:
                return json.load(f).get("pid", 0) > 0
        except (OSError, ValueError):
            return False

    out = [("state dir", lambda: os.path.isdir(sdir))]
    for name in ("state.json", "config.json", "exec.fifo", "journal.json"):
        out.append((name, lambda p=os.path.join(sdir, name): os.path.exists(p)))
    for d in sorted(os.listdir("/sys/fs/cgroup")):
        base = os.path.join("/sys/fs/cgroup", d)
        if os.path.isdir(base) and not os.path.islink(base):
            out.append(("cgroup " + d, lambda p=base + cg: os.path.isdir(p)))
    out.append(("init pid recorded", has_pid))
    return out


def _kill_create(runtime, bundle, cid, when):
    """Start create; SIGKILL it `when` = ("time", ms) or ("artefact", test)."""
    proc = subprocess.Popen(runtime.cmd("create", "-b", bundle.path, cid), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kind, arg = when
    if kind == "time":
        time.sleep(arg / 1000.0)
    else:
        deadline = time.monotonic() + 5
        while not arg() and proc.poll() is None and time.monotonic() < deadline:
            pass  # busy: the artefact may exist for a few microseconds only
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _no_mount_ns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    # runc's rule: masks need a mount namespace of the container's own
    cfg["linux"].pop("maskedPaths", None)
    cfg["linux"].pop("readonlyPaths", None)


@pytest.mark.parametrize("mount_ns", ["own", "none"])
def test_sigkill_create_anywhere_then_delete_force(mount_ns, bundle, runtime):
    """'own': >= 100 points.  'none': the container mounts in the host's
    mount namespace, under its rootfs (journalled as mounts_under)."""
    bundle.set_args("sleep", "1004")
    base_cg = bundle.config["linux"]["cgroupsPath"]
    probe = _artefacts(runtime.root, "probe", "/x")
    if mount_ns == "own":
        points = [("time", ms) for ms in TIME_POINTS_MS]
        points += [("artefact", i) for i in range(len(probe))] * 2
        assert len(points) >= 100
    else:
        bundle.update(_no_mount_ns)
        points = [("time", ms) for ms in TIME_POINTS_MS[::3]]
        points += [("artefact", i) for i in range(len(probe))]
    failures = []
    started = time.monotonic()
    for n, (kind, arg) in enumerate(points):
        cid = "c%03d" % n
        cg = "%s/%03d" % (base_cg, n)
        bundle.update(lambda c: c["linux"].update(cgroupsPath=cg))
        when = (kind, arg) if kind == "time" else ("artefact", _artefacts(runtime.root, cid, cg)[arg][1])
        _kill_create(runtime, bundle, cid, when)
        p = runtime("delete", "--force", cid, check=False)
        if p.returncode != 0:
            failures.append("%s %s: delete --force exited %d: %s" % (kind, arg, p.returncode, p.stderr.strip()))
        left = leftovers(runtime.root, cid, cg, bundle.path)
        left += ["process %d (forked by the killed create)" % pid
                 for pid in _wait_none(lambda: _pids_with_arg(cid))]
        if left:
            failures.append("%s %s: %s" % (kind, arg, left))
    assert failures == [], "\n".join(failures)
    # the parent every trial's cgroup hangs off: only the test harness's
    assert time.monotonic() - started < 120


def test_journal_names_dirs_before_they_exist(bundle, runtime):
    """The write-ahead journal is on disk before the first cgroup mkdir:
    killed the instant the first cgroup directory appears, the journal
    already lists every directory of every hierarchy."""
    bundle.set_args("true")
    cg = bundle.config["linux"]["cgroupsPath"]
    cid = runtime.new_id()
    journal = os.path.join(runtime.root, cid, "journal.json")
    first = [t for name, t in _artefacts(runtime.root, cid, cg) if name.startswith("cgroup ")]
    _kill_create(runtime, bundle, cid, ("artefact", lambda: any(t() for t in first)))
    with open(journal) as f:
        recorded = json.load(f)["cgroup"]
    assert set(cgroup_dirs(cg)) <= set(recorded)
    hierarchies = [d for d in os.listdir("/sys/fs/cgroup")
                   if os.path.isdir("/sys/fs/cgroup/" + d) and not os.path.islink("/sys/fs/cgroup/" + d)]
    assert {"/sys/fs/cgroup/%s%s" % (h, cg) for h in hierarchies} <= set(recorded)
    assert runtime("delete", "--force", cid, check=False).returncode == 0
    assert cgroup_dirs(cg) == []


def test_no_mount_namespace_mounts_are_detached(bundle, runtime):
    """Without a mount namespace the config's mounts land in the host's,
    under the rootfs: delete detaches them (runc 1.1.5 leaves them)."""
    bundle.update(_no_mount_ns)
    bundle.set_args("sleep", "1007")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    with open("/proc/self/mountinfo") as f:
        assert any(bundle.rootfs + "/proc" in line for line in f)
    runtime("delete", "--force", cid)
    assert leftovers(runtime.root, cid, bundle.config["linux"]["cgroupsPath"], bundle.path) == []


def test_no_mount_namespace_symlinked_destination_is_detached(bundle, runtime):
    """A destination through a symlink in the rootfs is mounted where the
    link leads: the journal names that place too, and delete detaches it
    (it recorded only rootfs/data before, and the tmpfs stayed)."""
    bundle.update(_no_mount_ns)
    os.makedirs(os.path.join(bundle.rootfs, "real", "data"))
    os.symlink("/real/data", os.path.join(bundle.rootfs, "data"))
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}))
    bundle.set_args("sleep", "1007")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    real = os.path.join(bundle.rootfs, "real", "data")
    with open("/proc/self/mountinfo") as f:
        assert any(" %s " % real in line for line in f)
    runtime("delete", "--force", cid)
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if bundle.rootfs + "/" in line]
    assert leftovers(runtime.root, cid, bundle.config["linux"]["cgroupsPath"], bundle.path) == []


def test_delete_is_bounded_and_says_what_stays(bundle, runtime, tmp_path):
    """A cgroup directory that cannot be removed (a mount on a sub-cgroup
    makes rmdir EBUSY): delete --force ends in bounded time with one line
    naming it, keeps the state entry, and a later delete --force finishes
    the job."""
    bundle.set_args("sleep", "1009")
    cg = bundle.config["linux"]["cgroupsPath"]
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    pinned = [d for d in cgroup_dirs(cg) if "/pids/" in d][0] + "/pinned"
    os.mkdir(pinned)
    (tmp_path / "empty").mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path / "empty"), pinned], check=True)
    try:
        started = time.monotonic()
        p = runtime("delete", "--force", cid, check=False)
        assert time.monotonic() - started < 5
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 1 and len(lines) == 1, p.stderr
        assert "left in place" in lines[0] and pinned in lines[0] and "busy" in lines[0], lines[0]
        assert not os.path.exists("/proc/%d" % pid) or not _alive(pid)
        assert runtime.state(cid)["status"] == "stopped"  # kept for another try
    finally:
        subprocess.run(["umount", pinned], check=True)
    runtime("delete", "--force", cid)
    assert leftovers(runtime.root, cid, cg, bundle.path) == []


def _alive(pid):
    from hostcheck import is_alive

    return is_alive(pid)


def test_sigkill_delete_anywhere_then_delete_force(bundle, runtime):
    """delete itself killed at any instant (while it kills, removes cgroups,
    or removes the state directory's files): the next delete --force
    finishes the job."""
    bundle.set_args("sh", "-c", "sleep 1013 & exec sleep 1014")
    base_cg = bundle.config["linux"]["cgroupsPath"]
    failures = []
    for n in range(24):
        cid = "d%03d" % n
        cg = "%s/%03d" % (base_cg, n)
        bundle.update(lambda c: c["linux"].update(cgroupsPath=cg))
        runtime("run", "-d", "-b", bundle.path, cid)
        proc = subprocess.Popen(runtime.cmd("delete", "--force", cid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(n * 0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        p = runtime("delete", "--force", cid, check=False)
        if p.returncode != 0:
            failures.append("%d ms: second delete --force exited %d: %s" % (n, p.returncode, p.stderr.strip()))
        left = leftovers(runtime.root, cid, cg, bundle.path)
        if left:
            failures.append("%d ms: %s" % (n, left))
    assert failures == [], "\n".join(failures)
