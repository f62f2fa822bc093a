"""Run by test_init_preload.py in a fresh interpreter (python -I):
create + start, or exec, on the fake kernel, with imports shut where the
container's filesystem replaces the host's.  Prints the child's last call
(execve) and exits 0, or exits non-zero with the failure."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]  # tests/: fakekernel

from fakekernel import FakeKernel  # noqa: E402
from pyrunc import linux as L  # noqa: E402

ROOT = "/b/rootfs"


class AfterSwitch:
    """Any import from now on fails, builtin or not, as a library import would."""

    def find_spec(self, name, path=None, target=None):
        raise ImportError("%s imported after the host's library went out of reach" % name)


class ShutAtSwitch(FakeKernel):
    def pivot_root(self, new_root, put_old):
        super().pivot_root(new_root, put_old)
        sys.meta_path.insert(0, AfterSwitch())

    def setns(self, fd, nstype=0):
        super().setns(fd, nstype)
        if nstype == L.CLONE_NEWNS:
            sys.meta_path.insert(0, AfterSwitch())


def process_doc():
    return {"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"], "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}], "user": {"uid": 0, "umask": 18}}


def init(tmp):
    """What `pyrunc create` then `start` import, and no more."""
    from pyrunc.child import Entry, InitJob
    from pyrunc.container import Container
    from pyrunc.create import _finish_spawn, _Undo
    from pyrunc.namespaces import NamespacePlan
    from pyrunc.validate import typed_spec
    from pyrunc.spawn import reap, spawn
    from pyrunc.state import StateDir

    k = ShutAtSwitch(dirs=[ROOT + "/proc", ROOT + "/dev", ROOT + "/proc/acpi", "/host"],
                     files=["/proc/self/ns/pid", ROOT + "/proc/kcore"], log_path=os.path.join(tmp, "child.json"))
    sd = StateDir(os.path.join(tmp, "state"), "c1")
    sd.make()
    os.mkfifo(sd.fifo, 0o600)
    c = Container(sd, {"id": "c1", "status": "creating", "pid": 0, "hook_kinds": []})
    spec = typed_spec({
        "ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": True}, "hostname": "box",
        "process": process_doc(),
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/data", "type": "bind", "source": "/host", "options": ["rbind", "ro"]}],
        "hooks": {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null"]}]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}],
                  "maskedPaths": ["/proc/kcore", "/proc/acpi"], "readonlyPaths": ["/proc/sys"]}})
    plan = NamespacePlan(spec.linux)
    fifo_fd = os.open(sd.fifo, L.O_PATH | os.O_CLOEXEC)
    spawned = spawn(Entry(False, [], new_flags=plan.new_flags),
                    InitJob(spec, ROOT, plan, fifo_fd, "c1", no_new_keyring=True), pidns=(None, True), kernel=k)
    os.close(fifo_fd)
    _finish_spawn(c, spec, spawned, _Undo())  # an import failing before start: ChildError here
    spawned.channel.send("C")
    spawned.channel.close()
    c.record["status"] = "created"
    c.save()
    c.start()  # one failing after: start raises the init's words
    reap(spawned.pid)


def exec_(tmp, two_stage):
    """What `pyrunc exec` imports, and no more."""
    from pyrunc.execute import ExecRequest, spawn_process
    from pyrunc.spawn import reap
    from pyrunc.spec import Process

    class Stub:
        id = "c1"
        record = {}

    k = ShutAtSwitch(log_path=os.path.join(tmp, "child.json"))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(2)]
    ns_fds = ([("user", held[0])] if two_stage else []) + [("mount", held[1])]
    pid = spawn_process(Stub(), Process(process_doc()), None, ns_fds, None, None, None,
                        ExecRequest(detach=True, no_new_keyring=True), subreaper=False, kernel=k)
    if not two_stage:
        reap(pid)


if __name__ == "__main__":
    kind, tmp = sys.argv[1:3]
    if kind == "init":
        init(tmp)
    else:
        exec_(tmp, kind == "exec-two-stage")
    with open(os.path.join(tmp, "child.json")) as f:
        print(json.load(f)[-1][0])
