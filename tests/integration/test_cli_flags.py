"""runc's global and create flags, checked by their effects."""
import json
import os
import subprocess
import time

import pytest

from conftest import needs_root

pytestmark = needs_root


def test_log_json_on_failure(bundle, runtime, tmp_path):
    log = tmp_path / "log.json"
    bundle.set_args("no-such-binary")
    cid = runtime.new_id()
    p = subprocess.run([runtime.binary, "--root", runtime.root, "--log", str(log), "--log-format", "json",
                        "create", "-b", bundle.path, cid], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error"
    assert 'executable file not found' in entries[-1]["msg"]
    assert set(entries[-1]) == {"level", "msg", "time"}
    # with --log, stderr still gets the plain message (runc does the same)
    assert "executable file not found" in p.stderr and "level=" not in p.stderr
    # podman's spelling: --log-format=json
    p = subprocess.run([runtime.binary, "--root", runtime.root, "--log=%s" % log, "--log-format=json",
                        "state", "nope"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert json.loads(log.read_text().splitlines()[-1])["msg"] == "container does not exist"


def test_no_pivot(bundle, runtime):
    bundle.set_args("sh", "-c", "cat /proc/self/mountinfo | head -1; echo ok")
    p = runtime("run", "--no-pivot", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("ok\n")


def test_join_existing_network_namespace(bundle, runtime, tmp_path):
    """namespaces[].path: join instead of create (a netns the test made)."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        import time
        path = "/proc/%d/ns/net" % holder.pid
        for _ in range(100):
            if os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        want = os.readlink(path)

        def cfg(c):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
            c["linux"]["namespaces"].append({"type": "network", "path": path})
        bundle.update(cfg)
        bundle.set_args("readlink", "/proc/self/ns/net")
        p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == want
    finally:
        holder.kill()
        holder.wait()


def test_spec_refuses_to_overwrite(tmp_path, runtime):
    runtime("spec", "--bundle", str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["ociVersion"] == "1.3.0" and cfg["root"]["path"] == "rootfs"
    p = runtime("spec", "--bundle", str(tmp_path), check=False)
    assert p.returncode == 1 and "already exists" in p.stderr


def test_spec_rootless_shape(tmp_path, runtime):
    runtime("spec", "--rootless", "--bundle", str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    types = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    assert cfg["linux"]["uidMappings"][0]["hostID"] == os.geteuid()


def test_features_document(runtime):
    doc = json.loads(runtime("features").stdout)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.3.0"
    assert set(doc["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
    assert set(doc["linux"]["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"}
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    for opt in ("ro", "nosuid", "rbind", "rslave", "rprivate"):
        assert opt in doc["mountOptions"]


def test_pid_file_relative_and_atomic(bundle, runtime, tmp_path):
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, "--pid-file", "init.pid", cid, cwd=str(tmp_path))
    data = (tmp_path / "init.pid").read_bytes()
    assert data.isdigit() and int(data) == runtime.state(cid)["pid"]
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []



def test_pid_file_never_follows_a_planted_temp_symlink(bundle, runtime, tmp_path):
    """The pid file is written through a temporary name beside it
    (<pid-file>.<runtime pid>.tmp); in a directory others can write (a
    shared /tmp) that name may already be a symlink to a file root owns:
    it must never be followed (truncated and overwritten).  sh plants the
    link for its own pid, then execs pyrunc (same pid).  Seen to fail (the
    victim held the pid) with write_atomic's O_NOFOLLOW removed."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = tmp_path / "init.pid"
    cid = runtime.new_id()
    subprocess.run(["sh", "-c", 'ln -s "$1" "$2.$$.tmp" && shift 2 && exec "$@"', "sh",
                    str(victim), str(pid_file)] + runtime.cmd("create", "-b", bundle.path, "--pid-file",
                                                              str(pid_file), cid),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert victim.read_text() == "precious\n"

def test_no_mount_namespace_uses_chroot(bundle, runtime):
    """runc allows a config without a mount namespace: the mounts are made
    in the caller's namespace and the root is entered with chroot.  The
    test runs pyrunc in a private mount namespace of its own, so nothing
    reaches the host's."""
    def cfg(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] in ("pid", "ipc")]
        c.pop("hostname", None)
        c["mounts"] = [m for m in c["mounts"] if m["destination"] in ("/proc", "/dev")]
        c["root"]["readonly"] = False
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "ls /marker-dir && readlink /proc/self/ns/mnt")
    os.makedirs(os.path.join(bundle.rootfs, "marker-dir"))
    cmd = ["unshare", "-m", "--propagation", "private"] + runtime.cmd("run", "-b", bundle.path, runtime.new_id())
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] != os.readlink("/proc/self/ns/mnt")  # unshare's namespace, not a new one
    with open("/proc/self/mountinfo") as f:
        assert bundle.path not in f.read()


def test_output_that_cannot_be_written_is_an_error(runtime):
    """The launcher ends without the interpreter's tear-down (pyrunc.cli.exit_now):
    stdout must still be flushed, and a failed flush must not exit 0."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([runtime.binary, "--root", runtime.root, "spec", "--help"],
                           stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 120
    p = subprocess.run([runtime.binary, "--root", runtime.root, "--version"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("pyrunc version")


def test_no_new_keyring_holds_for_the_init_and_exec(bundle, runtime):
    """create --no-new-keyring: neither the init nor a later exec joins a
    `_ses.<id>` session keyring (runc keeps the flag for exec); without it
    both do.  Seen from inside, in /proc/keys."""
    bundle.set_args("sh", "-c", "cat /proc/keys > /dev/shm/init.keys; sleep 60")
    bundle.update(lambda c: c["linux"].update(  # the default config masks it
        maskedPaths=[p for p in c["linux"]["maskedPaths"] if p != "/proc/keys"]))
    for flag in ([], ["--no-new-keyring"]):
        cid = runtime.new_id()
        runtime("create", *flag, "-b", bundle.path, cid)
        runtime("start", cid)
        init_keys = ""
        for _ in range(100):
            init_keys = runtime("exec", cid, "cat", "/dev/shm/init.keys", check=False).stdout
            if init_keys:
                break
            time.sleep(0.05)
        exec_keys = runtime("exec", cid, "cat", "/proc/keys").stdout
        expected = not flag
        assert ("_ses.%s" % cid in init_keys) == expected, init_keys
        assert ("_ses.%s" % cid in exec_keys) == expected, exec_keys
        runtime("delete", "--force", cid)
