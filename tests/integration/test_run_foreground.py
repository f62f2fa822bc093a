"""Foreground `run`: the container's exit code is pyrunc's, signals sent
to pyrunc reach the container's process, the container is deleted after
it exits; `run --detach` returns at once with the container running."""
import os
import signal
import subprocess
import time

import pytest

from conftest import needs_root

pytestmark = needs_root

FORWARDED = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "WINCH")


def wait_for_file(path, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                data = f.read()
            if text in data:
                return data
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError("%s never contained %r" % (path, text))


def popen_run(runtime, bundle, cid, out):
    return subprocess.Popen(runtime.cmd("run", "-b", bundle.path, cid), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 7", 7), ("exit 255", 255)])
def test_exit_code_is_the_containers(bundle, runtime, script, code):
    bundle.set_args("sh", "-c", script)
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert p.returncode == code, p.stderr
    assert runtime("list", "-q").stdout.strip() == ""  # deleted after exit


def test_sigterm_is_forwarded_and_code_returned(bundle, runtime, tmp_path):
    # pid 1 only gets signals it has a handler for: the trap is the handler
    bundle.set_args("sh", "-c", 'trap "echo got-term; exit 42" TERM; echo ready; '
                                "while true; do sleep 0.05; done")
    cid = runtime.new_id()
    out = tmp_path / "out"
    with open(out, "w") as f:
        p = popen_run(runtime, bundle, cid, f)
    try:
        wait_for_file(out, "ready")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 42
        assert "got-term" in out.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_every_forwarded_signal_reaches_the_container(bundle, runtime, tmp_path):
    traps = "; ".join('trap "echo got-%s" %s' % (s, s) for s in FORWARDED if s != "TERM")
    bundle.set_args("sh", "-c", traps + '; trap "exit 5" TERM; echo ready; '
                                        "while true; do sleep 0.05; done")
    cid = runtime.new_id()
    out = tmp_path / "out"
    with open(out, "w") as f:
        p = popen_run(runtime, bundle, cid, f)
    try:
        wait_for_file(out, "ready")
        for name in FORWARDED:
            if name == "TERM":
                continue
            p.send_signal(getattr(signal, "SIG" + name))
            wait_for_file(out, "got-" + name)
        assert p.poll() is None  # pyrunc itself survived them all
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 5
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_killed_container_gives_128_plus_signal(bundle, runtime, tmp_path):
    bundle.set_args("sh", "-c", "echo ready; while true; do sleep 0.05; done")
    cid = runtime.new_id()
    out = tmp_path / "out"
    with open(out, "w") as f:
        p = popen_run(runtime, bundle, cid, f)
    try:
        wait_for_file(out, "ready")
        pid = runtime.state(cid)["pid"]
        os.kill(pid, signal.SIGKILL)
        assert p.wait(timeout=30) == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_detach_returns_at_once(bundle, runtime):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    t0 = time.monotonic()
    runtime("run", "--detach", "-b", bundle.path, cid)
    assert time.monotonic() - t0 < 20
    st = runtime.state(cid)
    assert st["status"] == "running"
    with open("/proc/%d/cmdline" % st["pid"], "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"


def test_keep_leaves_the_stopped_container(bundle, runtime):
    bundle.set_args("sh", "-c", "exit 4")
    cid = runtime.new_id()
    p = runtime("run", "--keep", "-b", bundle.path, cid, check=False)
    assert p.returncode == 4
    assert runtime.state(cid)["status"] == "stopped"
    runtime("delete", cid)
