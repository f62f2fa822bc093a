"""The six OCI hook kinds at their moments and in their namespaces (the
mount namespace inode each hook sees), the state on their stdin, args and
env, timeouts (the hook and what it spawned are killed), and failure
semantics: create-time and startContainer failures are errors that leave
no container behind; poststart/poststop failures are warnings and the
remaining hooks still run."""
import json
import os
import time

from conftest import needs_root

pytestmark = needs_root

ORDER = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
# Records the hook's kind, its mount namespace and its stdin (the state).
RECORD = 'echo $1 >> $2/order; readlink /proc/self/ns/mnt > $2/$1.mnt; cat > $2/$1.json'


def record_hook(kind, logdir, in_container=False):
    # startContainer's path resolves in the container: its busybox sh
    return {"path": "/bin/sh", "args": ["sh", "-c", RECORD, "sh", kind,
                                        "/hooklog" if in_container else logdir]}


def with_logdir(bundle, tmp_path):
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    os.chmod(logdir, 0o777)

    def cfg(c):
        c["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(logdir),
                            "options": ["rbind", "rw"]})
    bundle.update(cfg)
    return str(logdir)


def set_hooks(bundle, hooks):
    bundle.update(lambda c: c.update(hooks=hooks))


def wait_stopped(runtime, cid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runtime.state(cid)["status"] == "stopped":
            return
        time.sleep(0.05)
    raise AssertionError("container %s did not stop" % cid)


def read(path):
    with open(path) as f:
        return f.read()


def test_all_six_kinds_order_namespaces_and_state(bundle, runtime, tmp_path):
    logdir = with_logdir(bundle, tmp_path)
    set_hooks(bundle, {k: [record_hook(k, logdir, in_container=(k == "startContainer"))] for k in ORDER})
    bundle.update(lambda c: c.update(annotations={"org.test.hooks": "six"}))
    bundle.set_args("sh", "-c", "readlink /proc/self/ns/mnt > /hooklog/process.mnt")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    host_pid = runtime.state(cid)["pid"]
    assert read(os.path.join(logdir, "order")).split() == ORDER[:3]  # create-time hooks only
    runtime("start", cid)
    wait_stopped(runtime, cid)
    runtime("delete", cid)

    assert read(os.path.join(logdir, "order")).split() == ORDER
    mnt = {k: read(os.path.join(logdir, k + ".mnt")).strip() for k in ORDER + ["process"]}
    host_mnt = os.readlink("/proc/self/ns/mnt")
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert mnt[kind] == host_mnt, kind  # the runtime's namespace
    for kind in ("createContainer", "startContainer"):
        assert mnt[kind] == mnt["process"] != host_mnt, kind  # the container's

    expect_status = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
                     "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for kind in ORDER:
        state = json.loads(read(os.path.join(logdir, kind + ".json")))
        assert state["id"] == cid, kind
        assert state["bundle"] == bundle.path, kind
        assert state["ociVersion"], kind
        assert state["annotations"] == {"org.test.hooks": "six"}, kind
        assert state["status"] == expect_status[kind], kind
        if kind in ("createContainer", "startContainer"):
            assert state["pid"] == 1, kind  # the pid as the container sees it
        elif kind != "poststop":
            assert state["pid"] == host_pid, kind  # as the runtime sees it


def test_hook_args_and_env_exactly_as_given(bundle, runtime, tmp_path):
    out = tmp_path / "env.out"
    script = 'exec > %s; echo "$0|$1|$FOO"; tr "\\0" " " < /proc/$$/cmdline; echo; env' % out
    set_hooks(bundle, {"prestart": [{
        "path": "/bin/sh", "args": ["my-argv0", "-c", script, "zero", "one"],
        "env": ["FOO=bar baz", "EMPTY="]}]})
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    lines = out.read_text().split("\n")
    assert lines[0] == "zero|one|bar baz"
    assert lines[1].split(" ")[:2] == ["my-argv0", "-c"]  # args[0] is argv[0]
    env = set(lines[2:])
    assert "FOO=bar baz" in env and "EMPTY=" in env
    assert not any(x.startswith("PATH=") for x in env)  # nothing inherited from the runtime


def test_timed_out_hook_and_its_children_are_killed(bundle, runtime, tmp_path):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    set_hooks(bundle, {"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "echo $$ > %s/hook; sleep 60 & echo $! > %s/child; wait" % (piddir, piddir)],
        "timeout": 1}]})
    cid = runtime.new_id()
    t0 = time.monotonic()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    elapsed = time.monotonic() - t0
    assert p.returncode != 0
    assert "createRuntime" in p.stderr and "timed out" in p.stderr
    assert elapsed < 15
    for name in ("hook", "child"):
        pid = int((piddir / name).read_text())
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.05)
        assert not _alive(pid), name
    assert runtime("list", "-q").stdout.strip() == ""


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_hook_reading_no_stdin_and_big_state(bundle, runtime, tmp_path):
    """A hook that never reads stdin must not hang the runtime, even when
    the state is larger than a pipe buffer."""
    bundle.update(lambda c: c.update(annotations={"k%d" % i: "v" * 100 for i in range(1000)}))
    set_hooks(bundle, {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 10}]})
    cid = runtime.new_id()
    t0 = time.monotonic()
    runtime("create", "-b", bundle.path, cid)
    assert time.monotonic() - t0 < 9


def fail_hook(msg="hook-said-no"):
    return {"path": "/bin/sh", "args": ["sh", "-c", "echo %s >&2; exit 3" % msg]}


def test_failing_create_time_hooks_are_errors(bundle, runtime, tmp_path):
    marker = tmp_path / "ran"
    bundle.set_args("true")
    for kind in ("prestart", "createRuntime", "createContainer"):
        set_hooks(bundle, {kind: [fail_hook()],
                           "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "touch %s" % marker]}]})
        cid = runtime.new_id()
        p = runtime("create", "-b", bundle.path, cid, check=False)
        assert p.returncode != 0, kind
        assert kind in p.stderr and "exit status 3" in p.stderr and "hook-said-no" in p.stderr, p.stderr
        assert len(p.stderr.strip().split("\n")) == 1
        assert runtime("list", "-q").stdout.strip() == "", kind  # nothing left behind
        assert not marker.exists()


def test_failing_start_container_hook_is_an_error(bundle, runtime, tmp_path):
    logdir = with_logdir(bundle, tmp_path)
    set_hooks(bundle, {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}]})
    bundle.set_args("sh", "-c", "touch /hooklog/process-ran")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    p = runtime("start", cid, check=False)
    assert p.returncode != 0
    assert "startContainer" in p.stderr and "exit status 9" in p.stderr
    assert not os.path.exists(os.path.join(logdir, "process-ran"))
    wait_stopped(runtime, cid)


def test_failing_poststart_warns_and_goes_on(bundle, runtime, tmp_path):
    out = tmp_path / "output"
    set_hooks(bundle, {"poststart": [{"path": "/bin/false", "args": ["false"]},
                                     {"path": "/bin/sh", "args": ["sh", "-c", "echo post-start called >> %s" % out]}]})
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    p = runtime("start", cid, check=False)
    assert p.returncode == 0
    assert "level=warning" in p.stderr and "poststart" in p.stderr
    assert out.read_text() == "post-start called\n"
    assert runtime.state(cid)["status"] == "running"


def test_failing_poststop_warns_and_goes_on(bundle, runtime, tmp_path):
    out = tmp_path / "output"
    set_hooks(bundle, {"poststop": [{"path": "/bin/false", "args": ["false"]},
                                    {"path": "/bin/sh", "args": ["sh", "-c", "echo post-stop called >> %s" % out]}]})
    bundle.set_args("true")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    runtime("start", cid)
    wait_stopped(runtime, cid)
    p = runtime("delete", cid, check=False)
    assert p.returncode == 0
    assert "level=warning" in p.stderr and "poststop" in p.stderr
    assert out.read_text() == "post-stop called\n"
    assert runtime("list", "-q").stdout.strip() == ""


def test_hooks_of_one_kind_run_in_order(bundle, runtime, tmp_path):
    out = tmp_path / "output"

    def h(text):
        return {"path": "/bin/sh", "args": ["sh", "-c", "echo %s >> %s" % (text, out)]}
    set_hooks(bundle, {"prestart": [h("pre-start1"), h("pre-start2")],
                       "poststart": [h("post-start1"), h("post-start2")],
                       "poststop": [h("post-stop1"), h("post-stop2")]})
    bundle.set_args("true")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    runtime("start", cid)
    wait_stopped(runtime, cid)
    runtime("delete", cid)
    assert out.read_text().split() == ["pre-start1", "pre-start2", "post-start1", "post-start2",
                                       "post-stop1", "post-stop2"]


def test_rootfs_busybox_hook_like_runtime_tools(bundle, runtime):
    """runtime-tools' hooks_stdin: hooks are the bundle's own busybox sh
    (a path under the rootfs), writing the state into the rootfs."""
    sh = os.path.join(bundle.rootfs, "bin", "sh")
    set_hooks(bundle, {k: [{"path": sh, "args": ["sh", "-c", "cat > %s/%s" % (bundle.rootfs, k)], "timeout": 1}]
                       for k in ("prestart", "poststart", "poststop")})
    bundle.update(lambda c: c.update(annotations={"org.opencontainers.runtime-tools": "hook stdin test"}))
    bundle.set_args("true")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    runtime("start", cid)
    wait_stopped(runtime, cid)
    runtime("delete", cid)
    for kind, status in (("prestart", "created"), ("poststart", "running"), ("poststop", "stopped")):
        state = json.loads(read(os.path.join(bundle.rootfs, kind)))
        assert state["id"] == cid and state["bundle"] == bundle.path
        assert state["annotations"] == {"org.opencontainers.runtime-tools": "hook stdin test"}
        assert state["status"] == status
        if kind != "poststop":
            assert state["pid"] == pid



def test_hook_without_env_gets_the_runtimes_environment(bundle, runtime, tmp_path):
    out = tmp_path / "env.out"
    set_hooks(bundle, {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "env > %s" % out]}],
                       "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "env > %s.empty" % out],
                                      "env": []}]})
    bundle.set_args("true")
    cid = runtime.new_id()
    env = dict(os.environ, PYRUNC_HOOK_MARK="from-caller")
    runtime("create", "-b", bundle.path, cid, env=env)
    assert "PYRUNC_HOOK_MARK=from-caller" in out.read_text().split("\n")
    runtime("start", cid)
    empty = (tmp_path / "env.out.empty").read_text().split("\n")
    assert not any(x.startswith(("PATH=", "PYRUNC_HOOK_MARK=")) for x in empty)  # env: [] is empty
