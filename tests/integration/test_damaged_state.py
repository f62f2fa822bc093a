"""A damaged state.json never stops a verb (issue 17).

Eight kinds of damage: empty, truncated, garbage, a JSON list, wrong
types, the pid of another live process, missing, null.  Every verb
answers in one line (`state.json of ID is damaged: ...`, exit 1) or does
its job; `list` lists the other containers and marks the damaged one;
`delete --force` finds the container's processes by cgroup membership
(never by the recorded pid), kills them and removes every cgroup
directory.  Checked from the kernel: /proc/<pid>/cgroup, the cgroup
hierarchies, /proc/<pid>/stat.
"""
import json
import os
import subprocess
import time

import pytest

from conftest import needs_root
from hostcheck import cgroup_dirs, is_alive, leftovers, member_pids

pytestmark = needs_root


def _start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def damage(kind, state_path, other):
    """Damage state.json in one of the eight ways; `other` is a live
    process of the test's own (not in the container)."""
    with open(state_path) as f:
        rec = json.load(f)
    data = {
        "empty": b"",
        "truncated": json.dumps(rec).encode()[:37],
        "garbage": b"\x00\xff\xfe{{not json at all",
        "list": json.dumps([rec]).encode(),
        "wrong_types": json.dumps(dict(rec, pid="x")).encode(),
        "other_pid": json.dumps(dict(rec, pid=other.pid)).encode(),
        "other_pid_and_start": json.dumps(dict(rec, pid=other.pid, init_start=_start_time(other.pid))).encode(),
        "null": b"null",
        "missing": None,
        "missing_and_no_journal": None,  # only config.json's implied cgroups are left to go by
    }[kind]
    if kind == "missing_and_no_journal":
        os.unlink(os.path.join(os.path.dirname(state_path), "journal.json"))
    if data is None:
        os.unlink(state_path)
    else:
        with open(state_path, "wb") as f:
            f.write(data)


KINDS = ["empty", "truncated", "garbage", "list", "wrong_types", "other_pid", "other_pid_and_start",
         "null", "missing", "missing_and_no_journal"]
LYING = ("other_pid", "other_pid_and_start")  # well-formed, but the pid names another process


def one_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, p.stderr
    return lines[0]


def wait_members(cg, n, timeout=10):
    deadline = time.time() + timeout
    while len(member_pids(cg)) < n and time.time() < deadline:
        time.sleep(0.02)
    return member_pids(cg)


@pytest.fixture
def other_process():
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_state(kind, bundle, runtime, other_process, tmp_path):
    # A healthy neighbour (its own cgroup) that list must still show.
    bundle.set_args("sh", "-c", "sleep 1001 & exec sleep 1002")
    cg = bundle.config["linux"]["cgroupsPath"]
    bundle.update(lambda c: c["linux"].update(cgroupsPath=cg + "-neighbour"))
    neighbour = runtime.new_id()
    runtime("create", "-b", bundle.path, neighbour)
    # The container: an init with a background child, so that more than
    # the recorded pid must be found.
    bundle.update(lambda c: c["linux"].update(cgroupsPath=cg))
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    pids = wait_members(cg, 2)
    assert len(pids) == 2, pids

    damage(kind, os.path.join(runtime.root, cid, "state.json"), other_process)

    p = runtime("state", cid, check=False)
    if kind in LYING:
        if kind == "other_pid":
            assert p.returncode == 0 and json.loads(p.stdout)["status"] == "stopped", p.stdout + p.stderr
    else:
        assert p.returncode == 1
        assert "state.json of %s is damaged: " % cid in one_line(p)

    # Every other verb: one line or its job, never a traceback.
    for args in (("kill", cid, "KILL"), ("ps", cid), ("pause", cid), ("resume", cid),
                 ("events", "--stats", cid), ("update", "--pids-limit", "100", cid),
                 ("exec", cid, "true"), ("start", cid)):
        p = runtime(*args, check=False)
        assert "Traceback" not in p.stderr, (args, p.stderr)
        if p.returncode != 0:
            one_line(p)
            if kind not in LYING:
                assert "is damaged" in p.stderr, (args, p.stderr)
    assert is_alive(other_process.pid), "a verb signalled the process the state names"
    if kind not in LYING:
        assert sorted(member_pids(cg)) == sorted(pids), "a verb acted on a damaged state"

    p = runtime("list", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    rows = {line.split()[0]: line.split() for line in p.stdout.splitlines()[1:]}
    assert rows[neighbour][2] == "created", p.stdout
    if kind not in LYING:
        assert rows[cid][2] == "damaged", p.stdout
    p = runtime("list", "--format", "json", check=False)
    assert {s["id"] for s in json.loads(p.stdout)} == {cid, neighbour}

    if kind not in LYING:
        # without --force: a refusal in one line, nothing killed
        p = runtime("delete", cid, check=False)
        assert p.returncode == 1 and "delete --force" in one_line(p)
        assert sorted(member_pids(cg)) == sorted(pids)

    started = time.monotonic()
    p = runtime("delete", "--force", cid, check=False)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - started < 10
    assert is_alive(other_process.pid), "delete --force killed a process outside the container"
    # the neighbour shares the cgroup parent, not the container's cgroup
    assert runtime.state(neighbour)["status"] == "created"
    runtime("delete", "--force", neighbour)
    assert leftovers(runtime.root, cid, cg) == []
    assert cgroup_dirs(cg) == []


def test_init_moved_below_its_cgroup_still_runs(bundle, runtime):
    """state checks that the init is in the container's cgroup (a pid and
    start time alone could be forged), also when the init moved itself
    below it, as systemd does (init.scope)."""
    bundle.set_args("sleep", "1008")
    cg = bundle.config["linux"]["cgroupsPath"]
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    for d in cgroup_dirs(cg):
        os.mkdir(d + "/init.scope")
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset is empty
            if os.path.exists(d + "/" + name):
                with open(d + "/" + name) as src, open(d + "/init.scope/" + name, "w") as dst:
                    dst.write(src.read())
        with open(d + "/init.scope/cgroup.procs", "w") as f:
            f.write(str(pid))
    assert runtime.state(cid)["status"] == "running"
    runtime("delete", "--force", cid)
    assert not is_alive(pid)
    assert leftovers(runtime.root, cid, cg) == []


def test_record_naming_dirs_outside_cgroupfs_is_not_obeyed(bundle, runtime, tmp_path):
    """A state.json whose cgroup record names ordinary directories (with a
    cgroup.procs listing a process of ours): delete --force neither
    removes them nor signals that process; the container's real cgroups
    (from the journal) are still emptied and removed."""
    bundle.set_args("sleep", "1010")
    cg = bundle.config["linux"]["cgroupsPath"]
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    bait = tmp_path / "not-a-cgroup"
    (bait / "child").mkdir(parents=True)
    other = subprocess.Popen(["sleep", "300"])
    try:
        (bait / "cgroup.procs").write_text("%d\n" % other.pid)
        path = os.path.join(runtime.root, cid, "state.json")
        with open(path) as f:
            rec = json.load(f)
        rec["cgroup"] = dict(rec["cgroup"], paths={"pids": str(bait)}, created=[str(bait), str(bait / "child")])
        with open(path, "w") as f:
            json.dump(rec, f)
        runtime("delete", "--force", cid)
        assert bait.is_dir() and (bait / "child").is_dir()
        assert is_alive(other.pid)
        assert leftovers(runtime.root, cid, cg) == []
    finally:
        other.kill()
        other.wait()


def test_record_naming_resctrl_groups_outside_resctrl_is_not_obeyed(bundle, runtime, tmp_path):
    """A state.json or journal whose intel_rdt names ordinary (empty)
    directories: delete --force does not rmdir them."""
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    bait = tmp_path / "empty-dir"
    bait.mkdir()
    journal_bait = tmp_path / "empty-dir-2"
    journal_bait.mkdir()
    path = os.path.join(runtime.root, cid, "state.json")
    with open(path) as f:
        rec = json.load(f)
    rec["intel_rdt"] = {"path": str(bait), "owned": [str(bait)]}
    with open(path, "w") as f:
        json.dump(rec, f)
    jpath = os.path.join(runtime.root, cid, "journal.json")
    with open(jpath) as f:
        journal = json.load(f)
    journal["intel_rdt"] = [str(journal_bait)]
    with open(jpath, "w") as f:
        json.dump(journal, f)
    runtime("delete", "--force", cid)
    assert bait.is_dir() and journal_bait.is_dir()
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_journal_naming_mounts_outside_the_rootfs_is_not_obeyed(bundle, runtime, tmp_path):
    """journal.json's mounts_under (where a container without a mount
    namespace mounted) naming a host mount outside the container's rootfs:
    delete --force leaves that mount alone."""
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    point = tmp_path / "host-mount"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "bait", str(point)], check=True)
    try:
        jpath = os.path.join(runtime.root, cid, "journal.json")
        with open(jpath) as f:
            journal = json.load(f)
        journal["mounts_under"] = [str(point)]
        with open(jpath, "w") as f:
            json.dump(journal, f)
        runtime("delete", "--force", cid)
        assert os.path.ismount(str(point)), "delete unmounted a host mount outside the container"
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
