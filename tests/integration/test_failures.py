"""Failures: a clear one-line error, a non-zero exit, and nothing left
behind -- no state dir, process, mount or cgroup -- including after the
runtime itself is SIGKILLed half-way (then `delete --force` cleans up)."""
import glob
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import PYRUNC, needs_root

pytestmark = needs_root

SHARED_SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "oci-spec-v1.3.0")


def leftovers(runtime, bundle, cid):
    """Everything a container could leave on the host."""
    found = []
    if os.path.exists(os.path.join(runtime.root, cid)):
        found.append("state dir")
    with open("/proc/self/mountinfo") as f:
        found += ["mount: " + line.strip() for line in f if bundle.path in line]
    cg = json.loads(open(bundle.config_path).read())["linux"].get("cgroupsPath")
    if cg:
        found += ["cgroup: " + p for p in glob.glob("/sys/fs/cgroup/*" + cg)]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if bundle.path.encode() in f.read():
                        found.append("process %s" % pid)
            except OSError:
                pass
    return found


def assert_one_line_error(p, *needles):
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def bad_examples():
    d = os.path.join(SHARED_SPEC, "test", "config", "bad")
    return sorted(glob.glob(os.path.join(d, "*.json"))) if os.path.isdir(d) else []


@pytest.mark.skipif(not bad_examples(), reason="../shared/oci-spec-v1.3.0 not found beside the repository")
@pytest.mark.parametrize("example", bad_examples(), ids=os.path.basename)
def test_bad_spec_examples_rejected(example, bundle, runtime):
    with open(example, "rb") as f:
        raw = f.read()
    with open(bundle.config_path, "wb") as f:
        f.write(raw)
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert_one_line_error(p, "config.json")
    assert not os.path.exists(runtime.root) or os.listdir(runtime.root) == []


def test_bad_namespace_type_names_the_field(bundle, runtime):
    bundle.update(lambda c: c["linux"]["namespaces"].__setitem__(2, {"type": "pidd"}))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert_one_line_error(p, "config.json: linux.namespaces[2].type: 'pidd' is not one of")
    assert leftovers(runtime, bundle, cid) == []


def test_missing_rootfs(bundle, runtime):
    bundle.update(lambda c: c["root"].update(path="no-such-rootfs"))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert_one_line_error(p, "root.path")
    assert leftovers(runtime, bundle, cid) == []


def test_failing_mount_leaves_nothing(bundle, runtime):
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert_one_line_error(p, "mounts[7]", "/data")
    assert leftovers(runtime, bundle, cid) == []


def test_missing_executable(bundle, runtime):
    bundle.set_args("no-such-binary")
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert p.returncode != 0
    # stderr carries runc's logrus line: msg="..." with quotes escaped
    assert 'exec: "no-such-binary": executable file not found in $PATH' in p.stderr.replace('\\"', '"')
    assert leftovers(runtime, bundle, cid) == []


@pytest.mark.parametrize("bad_id", ["../escape", "/", "", "a/b", "..", "."])
def test_ids_cannot_escape_the_root(bad_id, bundle, runtime, tmp_path):
    p = runtime("create", "-b", bundle.path, bad_id, check=False)
    assert p.returncode == 1
    assert "container id" in p.stderr or "ID format" in p.stderr
    assert not os.path.exists(os.path.join(os.path.dirname(runtime.root), "escape"))
    assert not os.path.exists(runtime.root) or os.listdir(runtime.root) == []


def test_runtime_sigkilled_during_create_then_delete_force(bundle, runtime, tmp_path):
    """pyrunc SIGKILLed while a createRuntime hook runs (namespaces, cgroup
    and init exist): the init notices and exits; delete --force removes the
    rest."""
    gate = tmp_path / "hook-started"
    bundle.update(lambda c: c.setdefault("hooks", {}).update(createRuntime=[
        {"path": "/bin/sh", "args": ["sh", "-c", "touch %s; sleep 30" % gate]}]))
    cid = runtime.new_id()
    proc = subprocess.Popen(runtime.cmd("create", "-b", bundle.path, cid),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert gate.exists(), "hook never started"
    with open(os.path.join(runtime.root, cid, "state.json")) as f:
        init_pid = json.load(f)["pid"]
    assert init_pid > 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the init sees its sync pipe close and exits by itself
    deadline = time.time() + 10
    while os.path.exists("/proc/%d" % init_pid) and time.time() < deadline:
        try:
            with open("/proc/%d/stat" % init_pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    assert runtime("delete", "--force", cid, check=False).returncode == 0
    # the hook (sleep 30) is the test's own leftover child of the dead runtime: end it
    assert [x for x in leftovers(runtime, bundle, cid) if not x.startswith("process")] == []
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_unknown_rlimit_refused_at_create(bundle, runtime):
    bundle.update(lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_TEST", "soft": 1, "hard": 1}))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert_one_line_error(p, "process.rlimits[1].type", "RLIMIT_TEST")
    assert leftovers(runtime, bundle, cid) == []


def test_capability_outside_runtime_bounding_set_refused(bundle, runtime):
    with open("/proc/self/status") as f:
        bnd = int([line for line in f if line.startswith("CapBnd:")][0].split()[1], 16)
    from pyrunc.security.capabilities import CAP_NAMES, last_cap
    absent = [CAP_NAMES[i] for i in range(last_cap() + 1) if not bnd & (1 << i)]
    if not absent:
        pytest.skip("this runtime's bounding set holds every capability")
    bundle.update(lambda c: c["process"]["capabilities"]["bounding"].append(absent[0]))
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert_one_line_error(p, "process.capabilities.bounding", absent[0])


REFUSE_CGROUP_JOIN = """\
import sys
from pyrunc.cgroups.base import Manager
from pyrunc.cgroups.fs import CgroupError


def refuse(self, d, name, value):
    raise CgroupError("join cgroup: refused by the test", 28)


Manager._join = refuse  # under add_pid (stage 1) and join_self (the direct init)
from pyrunc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_failed_cgroup_join_is_an_error_not_a_hang(bundle, runtime):
    """The runtime fails between forking stage 1 and releasing it (here: the
    cgroup join, as cpuset's ENOSPC did under concurrent creates): create
    must report it, not wait forever for a stage 1 that waits for it."""
    import sys

    for userns in (False, True):  # the direct init joins itself; stage 1 is joined by the parent
        if userns:
            bundle.update(lambda c: (c["linux"]["namespaces"].append({"type": "user"}), c["linux"].update(
                uidMappings=[{"containerID": 0, "hostID": 0, "size": 65536}],
                gidMappings=[{"containerID": 0, "hostID": 0, "size": 65536}])))
        cid = runtime.new_id()
        with tempfile.TemporaryFile("w+") as out:  # a file: a created container would hold a pipe
            # -I: the installed package, not the checkout's ./pyrunc
            p = subprocess.run([sys.executable, "-I", "-c", REFUSE_CGROUP_JOIN, "--root", runtime.root, "create",
                                "--bundle", bundle.path, cid], stdout=out, stderr=out, timeout=60,
                               stdin=subprocess.DEVNULL)
            out.seek(0)
            text = out.read()
        assert p.returncode != 0, text
        assert "refused by the test" in text, text
        assert leftovers(runtime, bundle, cid) == []
