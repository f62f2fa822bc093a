"""How the init is spawned: the CLI forks it straight into the container's
pid namespace when no user or time namespace needs stage 1 (and the runtime
must come back to its own pid namespace right after), a library caller gets
the two-stage spawn that orphans the init and keeps its working directory."""
import json
import os
import subprocess
import sys
import time

from conftest import needs_root

pytestmark = needs_root

HOST_PIDNS = os.readlink("/proc/self/ns/pid")


def pidns_hooks(bundle, logdir):
    """createRuntime runs in the runtime's namespaces, after the init was
    forked: if the runtime stayed in the container's pid namespace for its
    children, the hook (a child of the runtime) would land there."""
    script = "readlink /proc/self/ns/pid > %s/hook.pidns" % logdir
    bundle.update(lambda c: c.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", script]}]}))


def test_runtime_children_after_the_init_stay_in_the_runtime_pid_namespace(bundle, runtime, tmp_path):
    pidns_hooks(bundle, tmp_path)
    bundle.set_args("sh", "-c", "echo $$")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert p.stdout == "1\n"  # the init is pid 1 of a new pid namespace
    assert (tmp_path / "hook.pidns").read_text().strip() == HOST_PIDNS


def test_join_a_pid_namespace_by_path(bundle, runtime, tmp_path):
    first = runtime.new_id()
    bundle.set_args("sleep", "60")
    runtime("run", "-d", "-b", bundle.path, first)
    first_pid = runtime.state(first)["pid"]
    target = "/proc/%d/ns/pid" % first_pid

    def join(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = target
        c["linux"]["cgroupsPath"] += "-second"
    bundle.update(join)
    pidns_hooks(bundle, tmp_path)
    second = runtime.new_id()
    bundle.set_args("sleep", "60")
    runtime("create", "-b", bundle.path, second)
    pid = runtime.state(second)["pid"]
    assert os.readlink("/proc/%d/ns/pid" % pid) == os.readlink(target) != HOST_PIDNS
    # Seen from the joined namespace, the second init is not its pid 1.
    with open("/proc/%d/status" % pid) as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert len(nspid) == 2 and nspid[1] != "1"
    assert (tmp_path / "hook.pidns").read_text().strip() == HOST_PIDNS
    runtime("delete", "--force", second)
    runtime("delete", "--force", first)


LIBRARY_SCRIPT = r"""
import json, os, sys, time
from pyrunc import Container
from pyrunc.container import CreateOptions
bundle, root, cid = sys.argv[1:4]
cwd = os.getcwd()
c = Container.create(cid, bundle, root, CreateOptions())
out = {"cwd_kept": os.getcwd() == cwd, "created": c.state()["status"], "pid": c.pid}
with open("/proc/%d/status" % c.pid) as f:
    out["init_ppid"] = int([l.split()[1] for l in f if l.startswith("PPid:")][0])
out["me"] = os.getpid()
c.start()
out["running"] = c.state()["status"]
c.kill("KILL")
for _ in range(200):
    if c.state()["status"] == "stopped":
        break
    time.sleep(0.02)
out["stopped"] = c.state()["status"]
c.delete()
out["state_dir_gone"] = not os.path.exists(os.path.join(root, cid))
try:
    os.waitpid(-1, os.WNOHANG)
    out["has_children"] = True
except ChildProcessError:
    out["has_children"] = False
print(json.dumps(out))
"""


def test_library_create_start_kill_delete(bundle, runtime, tmp_path):
    """`from pyrunc import Container` in a long-lived process: the init is
    not the caller's child (no zombie to reap) and the caller's working
    directory is given back."""
    bundle.set_args("sleep", "60")
    cid = runtime.new_id()
    # Files, not pipes: a container left running by a failure would hold a pipe open.
    with open(tmp_path / "out", "w+") as out_f, open(tmp_path / "err", "w+") as err_f:
        p = subprocess.run([sys.executable, "-c", LIBRARY_SCRIPT, bundle.path, runtime.root, cid],
                           stdout=out_f, stderr=err_f, timeout=60, cwd=str(tmp_path))
    assert p.returncode == 0, (tmp_path / "err").read_text()
    out = json.loads((tmp_path / "out").read_text())
    assert out["cwd_kept"]
    assert out["created"] == "created" and out["running"] == "running" and out["stopped"] == "stopped"
    assert out["init_ppid"] != out["me"]
    assert not out["has_children"]
    assert out["state_dir_gone"]
    deadline = time.monotonic() + 10
    while os.path.exists("/proc/%d" % out["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists("/proc/%d" % out["pid"])
