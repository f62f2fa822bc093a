"""pyrunc.state: the one reader of state.json, the durable writer and the
write-ahead journal (issue 17).  Plain files in a temp dir: no kernel
feature is involved."""
import json
import os

import pytest

from pyrunc.errors import ContainerNotFound, StateDamaged
from pyrunc.state import INLINE_ANNOTATIONS_MAX, StateDir, record_problem, write_atomic

GOOD = {"id": "c1", "status": "created", "pid": 123, "init_start": 456, "bundle": "/b", "rootfs": "/b/rootfs",
        "created": "2026-01-01T00:00:00Z", "owner": "", "annotations": {"a": "b"},
        "cgroup": {"version": 1, "created": ["/sys/fs/cgroup/pids/x"], "paths": {"pids": "/sys/fs/cgroup/pids/x"},
                   "resources": None, "rootless": False},
        "hook_kinds": ["poststop"]}


@pytest.fixture
def sd(tmp_path):
    d = StateDir(str(tmp_path), "c1")
    os.mkdir(d.path)
    return d


def test_sound_record_reads_back(sd):
    sd.write_state(GOOD)
    assert sd.read_state() == GOOD


DAMAGE = [
    (b"", "empty file"),
    (json.dumps(GOOD).encode()[:30], "not JSON"),
    (b"\xff\xfe garbage", "not JSON"),
    (json.dumps([GOOD]).encode(), "not a JSON object (list)"),
    (b"null", "not a JSON object (null)"),
    (json.dumps(dict(GOOD, pid="x")).encode(), 'pid: must be a pid (a non-negative integer), not "x"'),
    (json.dumps(dict(GOOD, pid=True)).encode(), "pid: must be a pid"),
    (json.dumps(dict(GOOD, pid=-4)).encode(), "pid: must be a pid"),
    (json.dumps(dict(GOOD, init_start=None)).encode(), "pid: 123 without init_start"),
    (json.dumps(dict(GOOD, status="runnin")).encode(), "status: must be an OCI status"),
    (json.dumps(dict(GOOD, id="other")).encode(), "id: \"other\" is not this container's id"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "bundle"}).encode(), "bundle: missing"),
    (json.dumps(dict(GOOD, cgroup={"version": 1, "paths": {"pids": 7}})).encode(), "cgroup: must be"),
    (json.dumps(dict(GOOD, cgroup={"version": 1, "paths": {}, "created": ["relative"]})).encode(), "cgroup: must be"),
    (json.dumps(dict(GOOD, annotations=["x"])).encode(), "annotations: must be"),
    (json.dumps(dict(GOOD, hook_kinds="poststop")).encode(), "hook_kinds: must be"),
    (b"[" * 100000, "nested too deeply"),
]


@pytest.mark.parametrize("data,why", DAMAGE, ids=[w.split(":")[0] + str(i) for i, (_, w) in enumerate(DAMAGE)])
def test_damage_is_one_line(sd, data, why):
    with open(sd.file("state.json"), "wb") as f:
        f.write(data)
    with pytest.raises(StateDamaged) as e:
        sd.read_state()
    msg = str(e.value)
    assert msg.startswith("state.json of c1 is damaged: ") and "\n" not in msg, msg
    assert why in msg, msg


def test_missing_record(sd):
    with pytest.raises(StateDamaged, match="is damaged: missing"):
        sd.read_state()
    os.rmdir(sd.path)
    with pytest.raises(ContainerNotFound):
        sd.read_state()


def test_missing_record_while_create_holds_the_lock(sd):
    """A create between mkdir and its first record: not damage."""
    holder = StateDir(sd.root, "c1")
    holder.lock()
    try:
        assert sd.read_state() == {}
        # the lock's own holder reads the truth
        with pytest.raises(StateDamaged):
            holder.read_state()
    finally:
        holder.unlock()


def test_large_annotations_live_in_their_own_file(sd):
    big = {"big": "x" * (INLINE_ANNOTATIONS_MAX + 1)}
    rec = dict(GOOD, annotations=big)
    for _ in range(3):  # saved several times, written once
        sd.write_state(rec)
    with open(sd.file("state.json")) as f:
        assert len(f.read()) < 1000
    assert sd.read_state()["annotations"] == big
    with open(sd.file("annotations.json"), "w") as f:
        f.write("[1]")
    with pytest.raises(StateDamaged, match="annotations.json"):
        sd.read_state()


def test_record_problem_accepts_every_record_create_writes():
    creating = {"id": "c", "status": "creating", "pid": 0, "init_start": None, "bundle": "/b", "rootfs": "/r",
                "created": "t", "owner": "", "annotations": {}, "cgroup": None, "hook_kinds": []}
    assert record_problem(creating, "c") is None
    assert record_problem(dict(creating, no_new_keyring=True,
                               intel_rdt={"path": "/sys/fs/resctrl/c", "mon_path": None, "owned": []}), "c") is None
    v2 = dict(creating, cgroup={"version": 2, "path": "/sys/fs/cgroup/c", "created": [], "resources": {}})
    assert record_problem(v2, "c") is None


def test_journal_accumulates_durably(sd):
    sd.intend("cgroup", ["/sys/fs/cgroup/pids/a", "/sys/fs/cgroup/pids/a/b"], ["/sys/fs/cgroup/pids/a/b"])
    sd.intend("intel_rdt", ["/sys/fs/resctrl/c1"])
    sd.intend("cgroup", ["/sys/fs/cgroup/pids/a/b"])  # no duplicates
    again = StateDir(sd.root, "c1")
    assert again.read_journal() == {
        "cgroup": ["/sys/fs/cgroup/pids/a", "/sys/fs/cgroup/pids/a/b"],
        "cgroup_leaves": ["/sys/fs/cgroup/pids/a/b"],
        "intel_rdt": ["/sys/fs/resctrl/c1"],
    }


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"cgroup": "x", "y": ["rel", "/abs"]}'])
def test_damaged_journal_reads_as_what_is_usable(sd, data):
    with open(sd.file("journal.json"), "wb") as f:
        f.write(data)
    j = sd.read_journal()
    assert j in ({}, {"y": ["/abs"]})


def test_write_atomic_durable_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / "f")
    write_atomic(path, b"one", 0o600, durable=True)
    write_atomic(path, b"two", 0o600, durable=True)
    assert open(path, "rb").read() == b"two"
    assert os.listdir(str(tmp_path)) == ["f"]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_resaving_a_loaded_record_keeps_the_annotations_file(sd):
    big = {"big": "x" * (INLINE_ANNOTATIONS_MAX + 1)}
    sd.write_state(dict(GOOD, annotations=big))
    ino = os.stat(sd.file("annotations.json")).st_ino
    again = StateDir(sd.root, "c1")
    rec = again.read_state()
    rec["pid"] = 7
    again.write_state(rec)  # `update` saves the record it loaded
    assert os.stat(sd.file("annotations.json")).st_ino == ino  # not rewritten
    assert again.read_state()["pid"] == 7 and StateDir(sd.root, "c1").read_state()["annotations"] == big
