"""linux.intelRdt (runtime-spec 1.3), checked from the files pyrunc leaves
in resctrl.

This host has no RDT-capable CPU, so its kernel has no resctrl filesystem
at all (not even in /proc/filesystems) and the real one cannot be used.
Each test runs pyrunc in a private mount namespace (`unshare --mount`)
with a stand-in at /sys/fs/resctrl: a small FUSE filesystem with
resctrl's rules (resctrl_standin.py: groups made by mkdir get their
`tasks`/`schemata`/`mon_groups`, rmdir takes a whole group, a MON group
takes only its parent's tasks, schemata read back normalized).  pyrunc
finds resctrl by fstype in the mount table, else at that conventional
mount point when it holds `info/`; the stand-in can only be the latter.
Nothing is mounted outside the test's namespace.
"""
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import needs_root

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="/dev/fuse is missing: the resctrl stand-in needs FUSE (this host has no Intel RDT, so the kernel's resctrl cannot be mounted)")]

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resctrl_standin.py")


def in_standin(steps, preset=None, info=None):
    """Run shell steps with the stand-in mounted (`info`: the resources its
    "hardware" has, default all); -> (per-step results with the tree after
    each, schemata writes in order)."""
    doc = {"preset": preset or {}, "steps": steps}
    if info is not None:
        doc["info"] = info
    doc = json.dumps(doc)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-I", STANDIN],
                       input=doc, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    return out["steps"], out["writes"]


def pyrunc(runtime, *args):
    return shlex.join(runtime.cmd(*args))


def tasks(tree, group):
    return [int(x) for x in tree[os.path.join(group, "tasks")].split()]


def groups(tree):
    """Every group directory (top level and MON groups), as paths."""
    return sorted(p.rstrip("/") for p in tree
                  if p.endswith("/") and not p.endswith("mon_groups/") and p != "info/"
                  and (p.count("/") == 1 or p.split("/")[1] == "mon_groups"))


def set_rdt(bundle, rdt, *args):
    bundle.update(lambda c: c["linux"].update(intelRdt=rdt))
    if args:
        bundle.set_args(*args)


def test_group_named_after_the_container(bundle, runtime):
    set_rdt(bundle, {"l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20", "schemata": ["L2:0=f", "L3:0=3f"],
                     "enableMonitoring": True}, "sleep", "1000")
    cid = runtime.new_id()
    steps, writes = in_standin([
        pyrunc(runtime, "create", "-b", bundle.path, cid),
        pyrunc(runtime, "state", cid),
        pyrunc(runtime, "start", cid) + " && " + pyrunc(runtime, "ps", "--format", "json", cid),
        pyrunc(runtime, "delete", "--force", cid),
    ])
    assert [s["rc"] for s in steps] == [0, 0, 0, 0], steps
    created = steps[0]["tree"]
    pid = json.loads(steps[1]["stdout"])["pid"]
    # The init (pyrunc state's pid) went in before start; the process running
    # inside (its host pid, from the container's cgroup) is that same task.
    assert tasks(created, cid) == [pid]
    assert tasks(created, "%s/mon_groups/%s" % (cid, cid)) == [pid]
    assert json.loads(steps[2]["stdout"]) == [pid]
    assert tasks(steps[2]["tree"], cid) == [pid]
    # l3CacheSchema, memBwSchema, then schemata: one write, in that order.
    assert writes == [["%s/schemata" % cid, "L3:0=f0\nMB:0=20\nL2:0=f\nL3:0=3f\n"]]
    assert created["%s/schemata" % cid].split() == ["L3:0=3f", "L2:0=f", "MB:0=20"]
    assert groups(steps[3]["tree"]) == []  # delete removed the group it made, MON group with it


def test_exec_process_joins_the_group(bundle, runtime, tmp_path):
    """exec'd processes share the container's resctrl group (as runc): the
    exec'd process's host pid (its --pid-file) is in the group's tasks."""
    set_rdt(bundle, {"l3CacheSchema": "L3:0=f0", "enableMonitoring": True}, "sleep", "1000")
    cid = runtime.new_id()
    pid_file = tmp_path / "exec.pid"
    steps, _ = in_standin([
        pyrunc(runtime, "run", "-d", "-b", bundle.path, cid),
        pyrunc(runtime, "exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "999")
        + " && cat " + shlex.quote(str(pid_file)),
        pyrunc(runtime, "delete", "--force", cid),
    ])
    assert [s["rc"] for s in steps] == [0, 0, 0], steps
    exec_pid = int(steps[1]["stdout"].strip())
    assert exec_pid in tasks(steps[1]["tree"], cid)
    assert exec_pid in tasks(steps[1]["tree"], "%s/mon_groups/%s" % (cid, cid))


def test_existing_clos_id_is_joined_and_kept(bundle, runtime):
    # "0f0" reads back as "f0": the same schema.
    set_rdt(bundle, {"closID": "shared", "l3CacheSchema": "L3:0=0f0", "enableMonitoring": True})
    cid = runtime.new_id()
    steps, writes = in_standin([
        pyrunc(runtime, "create", "-b", bundle.path, cid),
        pyrunc(runtime, "state", cid),
        pyrunc(runtime, "delete", "--force", cid),
    ], preset={"shared": {"schemata": "L3:0=f0", "mon_groups": ["other"]}})
    assert [s["rc"] for s in steps] == [0, 0, 0], steps
    pid = json.loads(steps[1]["stdout"])["pid"]
    assert tasks(steps[0]["tree"], "shared") == [pid]
    assert tasks(steps[0]["tree"], "shared/mon_groups/" + cid) == [pid]
    assert writes == []  # an existing group's schemata are compared, not written
    assert groups(steps[2]["tree"]) == ["shared", "shared/mon_groups/other"]


@pytest.mark.parametrize("field,rdt", [
    ("l3CacheSchema", {"l3CacheSchema": "L3:0=ff"}),
    ("memBwSchema", {"l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=50"}),
    ("schemata[1]", {"schemata": ["L3:0=f0", "L2:0=3"]}),
])
def test_existing_clos_id_with_another_schema_is_an_error(bundle, runtime, field, rdt):
    set_rdt(bundle, dict(rdt, closID="shared", enableMonitoring=True))
    cid = runtime.new_id()
    steps, writes = in_standin([pyrunc(runtime, "create", "-b", bundle.path, cid)],
                               preset={"shared": {"schemata": "L3:0=f0"}})
    err = steps[0]["stderr"]
    assert steps[0]["rc"] == 1 and err.count("\n") == 1, err
    assert "linux.intelRdt.%s" % field in err and "shared" in err
    assert groups(steps[0]["tree"]) == ["shared"] and tasks(steps[0]["tree"], "shared") == []
    assert writes == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


@pytest.mark.parametrize("clos_id", [None, "fresh"])
def test_refused_schema_leaves_no_group(bundle, runtime, clos_id):
    """resctrl refuses the schemata write (an unknown resource): the group
    create made for it goes too, closID or not -- a closID group left
    behind would fail the next create "with another schema"."""
    rdt = {"schemata": ["ZZ:0=1"]}
    if clos_id:
        rdt["closID"] = clos_id
    set_rdt(bundle, rdt)
    cid = runtime.new_id()
    steps, _ = in_standin([pyrunc(runtime, "create", "-b", bundle.path, cid)])
    err = steps[0]["stderr"]
    assert steps[0]["rc"] == 1 and "linux.intelRdt" in err and err.count("\n") == 1, err
    assert groups(steps[0]["tree"]) == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_clos_id_without_schema_must_exist(bundle, runtime):
    set_rdt(bundle, {"closID": "missing"})
    cid = runtime.new_id()
    steps, _ = in_standin([pyrunc(runtime, "create", "-b", bundle.path, cid)])
    err = steps[0]["stderr"]
    assert steps[0]["rc"] == 1 and "linux.intelRdt.closID" in err and "missing" in err, err
    assert groups(steps[0]["tree"]) == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_clos_id_slash_is_the_root_group(bundle, runtime):
    set_rdt(bundle, {"closID": "/"})
    cid = runtime.new_id()
    steps, writes = in_standin([
        pyrunc(runtime, "create", "-b", bundle.path, cid),
        pyrunc(runtime, "state", cid),
        pyrunc(runtime, "delete", "--force", cid),
    ])
    assert [s["rc"] for s in steps] == [0, 0, 0], steps
    assert tasks(steps[0]["tree"], "") == [json.loads(steps[1]["stdout"])["pid"]]
    assert groups(steps[2]["tree"]) == [] and writes == []


def test_failed_create_removes_its_group(bundle, runtime, tmp_path):
    """A createRuntime hook sees the groups, then fails the create."""
    seen = tmp_path / "seen"
    set_rdt(bundle, {"enableMonitoring": True})
    bundle.update(lambda c: c.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "ls /sys/fs/resctrl/*/mon_groups > %s; exit 1" % seen]}]}))
    cid = runtime.new_id()
    steps, _ = in_standin([pyrunc(runtime, "create", "-b", bundle.path, cid)])
    assert steps[0]["rc"] == 1
    assert cid in seen.read_text().split()
    assert groups(steps[0]["tree"]) == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_delete_after_create_was_killed(bundle, runtime, tmp_path):
    """pyrunc killed (SIGKILL) while a createRuntime hook runs: the pid was
    already in the group (written before the hooks), and delete --force
    removes the groups the state recorded."""
    flag = tmp_path / "hook-pid"
    set_rdt(bundle, {"enableMonitoring": True})
    bundle.update(lambda c: c.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 100"
                                     % (flag, flag, flag)]}]}))
    cid = runtime.new_id()
    create = pyrunc(runtime, "create", "-b", bundle.path, cid)
    steps, _ = in_standin([
        "%s & P=$!; while [ ! -s %s ]; do sleep 0.05; done; kill -9 $P; wait $P; kill -9 $(cat %s)"
        % (create, flag, flag),
        pyrunc(runtime, "delete", "--force", cid),
    ])
    killed = steps[0]["tree"]
    assert tasks(killed, cid) and tasks(killed, "%s/mon_groups/%s" % (cid, cid)) == tasks(killed, cid)
    assert steps[1]["rc"] == 0, steps[1]
    assert groups(steps[1]["tree"]) == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_features_claim_intel_rdt(runtime):
    # schemata and enableMonitoring are exercised by test_group_named_after_the_container
    assert json.loads(runtime("features").stdout)["linux"]["intelRdt"] == {
        "enabled": True, "schemata": True, "monitoring": True}


def test_update_writes_the_new_schemata(bundle, runtime):
    """runc's `update --l3-cache-schema/--mem-bw-schema`: the lines go to the
    container's group, L3 first; the group's tasks are untouched."""
    set_rdt(bundle, {"l3CacheSchema": "L3:0=f0"}, "sleep", "1000")
    cid = runtime.new_id()
    steps, writes = in_standin([
        pyrunc(runtime, "run", "-d", "-b", bundle.path, cid),
        pyrunc(runtime, "update", "--l3-cache-schema", "L3:0=3", "--mem-bw-schema", "MB:0=40", cid),
        pyrunc(runtime, "delete", "--force", cid),
    ])
    assert [s["rc"] for s in steps] == [0, 0, 0], steps
    assert writes == [["%s/schemata" % cid, "L3:0=f0\n"], ["%s/schemata" % cid, "L3:0=3\nMB:0=40\n"]]
    assert steps[1]["tree"]["%s/schemata" % cid].split() == ["L3:0=3", "L2:0=ff", "MB:0=40"], steps[1]["tree"]


@pytest.mark.parametrize("rdt,info,args,message", [
    (None, None, ["--l3-cache-schema", "L3:0=3"], "updating a non-existent Intel RDT configuration"),
    ({"l3CacheSchema": "L3:0=f0"}, ["L3"], ["--mem-bw-schema", "MB:0=40"],
     "--mem-bw-schema: Intel RDT MB is not enabled"),
])
def test_update_refusals(bundle, runtime, rdt, info, args, message):
    if rdt:
        set_rdt(bundle, rdt)
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    doc_info = {"info": info} if info else {}
    steps, writes = in_standin([
        pyrunc(runtime, "run", "-d", "-b", bundle.path, cid),
        pyrunc(runtime, "update", *args, cid),
        pyrunc(runtime, "delete", "--force", cid),
    ], **doc_info)
    assert steps[0]["rc"] == 0 and steps[2]["rc"] == 0, steps
    assert steps[1]["rc"] == 1 and message in steps[1]["stderr"], steps[1]
    assert all("MB:0=40" not in w[1] for w in writes), writes


def test_sigkill_the_instant_a_group_appears(bundle, runtime):
    """create killed the moment its resctrl group (or MON group) directory
    exists, before state.json could record it: the write-ahead journal
    named it first, so delete --force removes it (issue 17)."""
    set_rdt(bundle, {"enableMonitoring": True})
    steps = []
    for i in range(6):
        cid = "rdt%d" % i
        path = "/sys/fs/resctrl/%s" % cid + ("/mon_groups/%s" % cid if i % 2 else "")
        create = pyrunc(runtime, "create", "-b", bundle.path, cid)
        steps.append("%s >/dev/null 2>&1 & P=$!; while [ ! -d %s ] && kill -0 $P 2>/dev/null; do :; done; "
                     "kill -9 $P; wait $P; true" % (create, path))
        steps.append(pyrunc(runtime, "delete", "--force", cid))
    out, _ = in_standin(steps)
    for step in out[1::2]:
        assert step["rc"] == 0, step
    assert groups(out[-1]["tree"]) == []
    assert os.listdir(runtime.root) == []
