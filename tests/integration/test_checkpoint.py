"""checkpoint / restore with a real CRIU (CRIU 4.2 from ../shared/tools/criu,
or PYRUNC_TEST_CRIU): real containers checkpointed and brought back, checked
from inside (a counter held in a shell variable, the mount table, cgroup
files) and from the host (/proc, cgroup directories).  Skipped, with the
reason, only where that criu's `criu check` fails."""
import glob
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import needs_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRIU = os.environ.get("PYRUNC_TEST_CRIU") or os.path.join(REPO, "..", "shared", "tools", "criu", "criu")
# Debian 12's criu 3.17.1, unpacked by `make old-criu`: too old for this kernel.
OLD_CRIU = os.environ.get("PYRUNC_TEST_OLD_CRIU") or os.path.join(REPO, ".cache", "criu-3.17", "usr", "sbin", "criu")


def _criu_unusable():
    if not os.path.exists(CRIU):
        return "no criu at %s (set PYRUNC_TEST_CRIU)" % CRIU
    p = subprocess.run([CRIU, "check"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return "`%s check` fails here: %s" % (CRIU, (p.stdout + p.stderr).strip().splitlines()[-1:])
    return None


_REASON = _criu_unusable() if os.geteuid() == 0 else None
pytestmark = [needs_root, pytest.mark.skipif(_REASON is not None, reason=str(_REASON))]

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > %s; sleep 0.02; done"


def cr(runtime, *args, **kw):
    """pyrunc with the test's criu."""
    return runtime("--criu", CRIU, *args, **kw)


def counter(bundle, path="/dev/shm/count", ends_at=None, code=0):
    """The container counts in a shell variable (its memory) and shows the
    value in a file: a process started afresh would count from 1 again."""
    loop = COUNTER % path
    if ends_at is not None:
        loop = "i=0; while [ $i -lt %d ]; do i=$((i+1)); echo $i > %s; sleep 0.02; done; exit %d" % (ends_at, path, code)
    bundle.set_args("sh", "-c", loop)


def count(runtime, cid, path="/dev/shm/count"):
    for _ in range(50):
        out = runtime("exec", cid, "cat", path, check=False).stdout.strip()
        if out.isdigit():
            return int(out)
        time.sleep(0.05)
    raise AssertionError("no count in %s" % path)


def wait_count(runtime, cid, above, path="/dev/shm/count", timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count(runtime, cid, path)
        if n > above:
            return n
        time.sleep(0.05)
    raise AssertionError("counter stuck at or below %d" % above)


def existing_cgroups(bundle):
    path = bundle.config["linux"]["cgroupsPath"].lstrip("/")
    return [d for d in glob.glob("/sys/fs/cgroup/*/" + path) if os.path.isdir(d)]


def ids(runtime):
    return runtime("list", "-q").stdout.split()


def criu_root_mounts():
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "criu-root" in line]


def assert_nothing_left(runtime, cid, bundle):
    assert cid not in ids(runtime)
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert existing_cgroups(bundle) == []
    assert criu_root_mounts() == []


def describe(pids):
    out = []
    for pid in pids:
        try:
            with open("/proc/%s/status" % pid) as f:
                st = {k: v.strip() for k, v in (l.split(":", 1) for l in f if ":" in l)}
            with open("/proc/%s/cgroup" % pid) as f:
                cg = [l.strip() for l in f if ":memory:" in l]
            out.append((pid, st.get("State"), st.get("PPid"), st.get("NSpid"), cg))
        except OSError as e:
            out.append((pid, str(e)))
    return out


def assert_no_new_counters(before, grace=5.0):
    """No counter shell that was not there before stays: CRIU kills a tree
    it failed to restore, and a dying task may be seen for a moment."""
    deadline = time.monotonic() + grace
    while counter_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = counter_pids() - before
    assert left == set(), describe(left)


def counter_pids():
    """Counter shells (ours: their loop writes /dev/shm/count) on the host."""
    out = subprocess.run(["pgrep", "-f", "echo \\$i > /dev/shm/count"], capture_output=True, text=True).stdout
    return set(out.split())


def one_line_error(p):
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def start_counter(bundle, runtime, **kw):
    """A detached counter with its stdio on /dev/null (the host's: CRIU
    sees it as a file from outside the container)."""
    counter(bundle, **kw)
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cid


def test_features_claims_checkpoint(runtime):
    """The claim, under runc's key; the tests below are what stands behind it."""
    ann = json.loads(runtime("features").stdout)["annotations"]
    assert ann["org.opencontainers.runc.checkpoint.enabled"] == "true"


# -- the counter --------------------------------------------------------------

def test_counter_checkpointed_and_restored_keeps_counting(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    before = wait_count(runtime, cid, 50)
    old = runtime.state(cid)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    # Without --leave-running the container is gone, and deleted.
    assert cid not in ids(runtime)
    assert existing_cgroups(bundle) == []
    assert not os.path.exists("/proc/%d" % old["pid"]) or \
        open("/proc/%d/cmdline" % old["pid"]).read() != "sh"
    assert os.path.exists(os.path.join(img, "inventory.img"))

    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert (st["id"], st["bundle"]) == (cid, old["bundle"])
    first = count(runtime, cid)
    # A fresh start would be far below `before` this soon (50 counts/s).
    assert first >= before
    assert wait_count(runtime, cid, first) > first
    # The restored init is the shell that counts, in the container's pid ns.
    with open("/proc/%d/cmdline" % st["pid"], "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sh", b"-c"]
    assert os.readlink("/proc/%d/ns/pid" % st["pid"]) != os.readlink("/proc/self/ns/pid")


def test_leave_running(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 20)
    pid = runtime.state(cid)["pid"]
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--leave-running", "--image-path", img, cid)
    at_dump = count(runtime, cid)
    st = runtime.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid)
    assert wait_count(runtime, cid, at_dump) > at_dump
    # and the image is good: the container comes back from it
    runtime("delete", "--force", cid)
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    assert wait_count(runtime, cid, 1) >= 20


def test_restore_detached_with_pid_file(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 5)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    pid_file = tmp_path / "pid"
    cr(runtime, "restore", "-d", "--pid-file", str(pid_file), "--image-path", img, "-b", bundle.path, cid)
    pid = int(pid_file.read_text())
    assert pid == runtime.state(cid)["pid"]
    # the pid file's process is the container's init: in its cgroup
    cgpath = bundle.config["linux"]["cgroupsPath"]
    with open("/proc/%d/cgroup" % pid) as f:
        assert any(line.split(":", 2)[1] == "memory" and line.strip().endswith(cgpath) for line in f)


def test_restore_in_the_foreground_waits_and_returns_the_exit_code(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime, ends_at=150, code=7)
    wait_count(runtime, cid, 20)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    p = cr(runtime, "restore", "--image-path", img, "-b", bundle.path, cid, check=False)
    assert p.returncode == 7, p.stderr
    # it ran to the end of its loop, then restore deleted it (as run does)
    assert_nothing_left(runtime, cid, bundle)


def test_stdio_pipes_are_replaced_by_restores_own(bundle, runtime, tmp_path):
    """A detached container writing to a pipe: after restore it writes to
    the pipe restore was given (runc's descriptors.json + inherit_fd)."""
    bundle.set_args("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done")
    cid = runtime.new_id()
    r1, w1 = os.pipe()
    runtime("run", "-d", "-b", bundle.path, cid, stdout=w1, stderr=subprocess.DEVNULL)
    os.close(w1)
    out1 = os.fdopen(r1)
    seen = [int(out1.readline()) for _ in range(20)]
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    rest = out1.read()  # EOF: the writers are gone
    out1.close()
    last = int(rest.split()[-1]) if rest.split() else seen[-1]
    r2, w2 = os.pipe()
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid, stdout=w2, stderr=subprocess.DEVNULL)
    os.close(w2)
    with os.fdopen(r2) as out2:
        after = [int(out2.readline()) for _ in range(5)]
        runtime("delete", "--force", cid)
    # the count goes on from the last number written before the checkpoint
    assert after[0] == last + 1 and after == list(range(last + 1, last + 6))


# -- terminal -----------------------------------------------------------------

class ConsoleSocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self):
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, fds
        return fds[0]

    def close(self):
        self.sock.close()


def read_until(fd, needle, timeout=20):
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in data:
        left = deadline - time.monotonic()
        assert left > 0, "no %r in %r" % (needle, data)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data += os.read(fd, 4096)
            except OSError:
                break
    return data.decode(errors="replace")


def test_restore_with_console_socket(bundle, runtime, tmp_path):
    def cfg(c):
        c["process"]["terminal"] = True
        c["process"]["args"] = ["sh"]
    bundle.update(cfg)
    cid = runtime.new_id()
    cs1 = ConsoleSocket(tmp_path / "c1.sock")
    runtime("run", "-d", "--console-socket", cs1.path, "-b", bundle.path, cid)
    m1 = cs1.receive()
    os.write(m1, b"X=41\n")
    os.write(m1, b"echo set-$X\n")
    read_until(m1, "set-41")
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    os.close(m1)
    cs1.close()

    cs2 = ConsoleSocket(tmp_path / "c2.sock")
    try:
        cr(runtime, "restore", "-d", "--console-socket", cs2.path, "--image-path", img, "-b", bundle.path, cid)
        m2 = cs2.receive()
    finally:
        cs2.close()
    try:
        # the shell's variable survived; its terminal is the new pty
        os.write(m2, b"echo got-$((X+1)) $(tty)\n")
        out = read_until(m2, "got-42")
        assert "/dev/pts/" in out.split("got-42", 1)[1]
    finally:
        os.close(m2)


def test_foreground_restore_proxies_the_terminal(bundle, runtime, tmp_path):
    """restore without -d of a terminal container: pyrunc gets CRIU's new
    pty master and proxies the user's terminal, as a foreground run does."""
    import fcntl
    import termios

    def cfg(c):
        c["process"]["terminal"] = True
        c["process"]["args"] = ["sh"]
    bundle.update(cfg)
    cid = runtime.new_id()
    cs1 = ConsoleSocket(tmp_path / "c1.sock")
    runtime("run", "-d", "--console-socket", cs1.path, "-b", bundle.path, cid)
    m1 = cs1.receive()
    cs1.close()
    os.write(m1, b"X=6; echo set-$X\n")
    read_until(m1, "set-6")
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    os.close(m1)

    master, slave = os.openpty()

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(runtime.cmd("--criu", CRIU, "restore", "--image-path", img, "-b", bundle.path, cid),
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=child_setup)
    try:
        os.write(master, b"echo got-$((X*7))\n")
        read_until(master, "got-42")
        os.write(master, b"exit 5\n")
        assert p.wait(timeout=30) == 5
        assert_nothing_left(runtime, cid, bundle)  # deleted once it exited
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


# -- mounts and cgroups --------------------------------------------------------

def test_bind_mounts_and_masked_paths_survive(bundle, runtime, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ro = tmp_path / "ro.txt"
    ro.write_text("read-only file\n")

    def cfg(c):
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "rw"]})
        c["mounts"].append({"destination": "/etc/ro.txt", "type": "bind", "source": str(ro), "options": ["bind", "ro"]})
    bundle.update(cfg)
    masked = bundle.config["linux"]["maskedPaths"]
    assert "/proc/keys" in masked and "/sys/firmware" in masked
    cid = start_counter(bundle, runtime, path="/data/count")
    wait_count(runtime, cid, 10, path="/data/count")
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)

    # The counter writes through the bind mount to the host's directory.
    def host_count():
        for _ in range(100):
            text = (data / "count").read_text().strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.01)  # caught between the truncate and the write
        raise AssertionError("no count in %s" % data)

    n = host_count()
    deadline = time.monotonic() + 10
    while host_count() <= n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host_count() > n
    # ... and the host's new files show inside: the same directory, not a copy.
    (data / "hello").write_text("from the host\n")
    assert runtime("exec", cid, "cat", "/data/hello").stdout == "from the host\n"
    assert runtime("exec", cid, "cat", "/etc/ro.txt").stdout == "read-only file\n"
    p = runtime("exec", cid, "sh", "-c", "echo x > /etc/ro.txt", check=False)
    assert p.returncode != 0  # still read-only
    mounts = runtime("exec", cid, "cat", "/proc/self/mountinfo").stdout
    points = {line.split()[4] for line in mounts.splitlines()}
    assert {"/data", "/etc/ro.txt", "/proc/keys", "/sys/firmware"} <= points
    # masked: /proc/keys reads as /dev/null, /sys/firmware is an empty dir
    assert runtime("exec", cid, "cat", "/proc/keys").stdout == ""
    assert runtime("exec", cid, "ls", "-A", "/sys/firmware").stdout == ""
    assert runtime("exec", cid, "stat", "-c", "%t:%T", "/proc/keys").stdout.strip() == "1:3"


def _host_count(path):
    for _ in range(100):
        text = path.read_text().strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)  # caught between the shell's truncate and its write
    raise AssertionError("no count in %s" % path)


def test_bind_mount_whose_destination_is_a_symlink(bundle, runtime, tmp_path):
    """runc's bats case: /conf in the rootfs is a symlink to /real/conf; the
    bind lands on /real/conf, and that is the mount CRIU must be told of
    (else: "doesn't have a proper root mount")."""
    os.makedirs(os.path.join(bundle.rootfs, "real", "conf"))
    os.symlink("/real/conf", os.path.join(bundle.rootfs, "conf"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "seen").write_text("bound\n")
    bundle.update(lambda c: c["mounts"].append({"destination": "/conf", "source": str(data), "options": ["bind"]}))
    cid = start_counter(bundle, runtime, path="/conf/count")
    wait_count(runtime, cid, 5, path="/conf/count")
    img = str(tmp_path / "img")
    for n in range(2):  # checkpointed again after a restore, as the bats test does
        cr(runtime, "checkpoint", "--image-path", img + str(n), cid)
        assert cid not in ids(runtime)
        cr(runtime, "restore", "-d", "--image-path", img + str(n), "-b", bundle.path, cid)
        points = {line.split()[4] for line in runtime("exec", cid, "cat", "/proc/self/mountinfo").stdout.splitlines()}
        assert "/real/conf" in points
        assert runtime("exec", cid, "cat", "/conf/seen").stdout == "bound\n"
        n = count(runtime, cid, path="/conf/count")
        assert wait_count(runtime, cid, n, path="/conf/count") > n
        assert _host_count(data / "count") >= n  # the host's directory, not a copy


def test_nested_bind_mounts_on_a_rootfs_without_their_mount_points(bundle, runtime, tmp_path):
    """runc's bats case: a bind nested in another bind, whose mount point
    (made in the outer bind's source) is gone by restore time; restore
    makes it again there, binding the outer source for a moment in a mount
    namespace of its own (nothing stays mounted on the host)."""
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    outer.mkdir()
    inner.mkdir()
    (inner / "seen").write_text("inner\n")

    def cfg(c):
        c["mounts"].append({"destination": "/test", "type": "bind", "source": str(outer), "options": ["rw", "bind"]})
        c["mounts"].append({"destination": "/test/for/nested", "type": "bind", "source": str(inner),
                            "options": ["rw", "bind"]})
    bundle.update(cfg)
    cid = start_counter(bundle, runtime, path="/test/for/nested/count")
    n = wait_count(runtime, cid, 5, path="/test/for/nested/count")
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    shutil.rmtree(outer / "for")  # the mount point create made in the outer source
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    points = {line.split()[4] for line in runtime("exec", cid, "cat", "/proc/self/mountinfo").stdout.splitlines()}
    assert {"/test", "/test/for/nested"} <= points
    assert runtime("exec", cid, "cat", "/test/for/nested/seen").stdout == "inner\n"
    assert wait_count(runtime, cid, n, path="/test/for/nested/count") > n
    assert (outer / "for" / "nested").is_dir()
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if str(tmp_path) in line] == []


def test_cgroup_namespace_kept_across_checkpoint_and_restore(bundle, runtime, tmp_path):
    """runc's bats 'cgroupns' case (v1 host): the restored container is in
    a cgroup namespace of its own again, rooted at its cgroupsPath."""
    bundle.update(lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    cgpath = bundle.config["linux"]["cgroupsPath"]
    cid = start_counter(bundle, runtime)
    last = wait_count(runtime, cid, 5)
    for n in range(2):
        img = str(tmp_path / ("img%d" % n))
        cr(runtime, "checkpoint", "--image-path", img, cid)
        cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
        pid = runtime.state(cid)["pid"]
        assert os.readlink("/proc/%d/ns/cgroup" % pid) != os.readlink("/proc/self/ns/cgroup")
        with open("/proc/%d/cgroup" % pid) as f:
            host_view = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
        assert host_view["memory"] == cgpath
        inside = runtime("exec", cid, "cat", "/proc/1/cgroup").stdout
        seen = dict(line.split(":", 2)[1:] for line in inside.splitlines())
        assert seen["memory"] == "/" and seen["pids"] == "/"
        last = wait_count(runtime, cid, last)


def test_container_specific_criu_config_file(bundle, runtime, tmp_path):
    """The org.criu.config annotation names a CRIU configuration file for
    both verbs (runc's): CRIU writes its log where that file says."""
    conf = tmp_path / "criu.conf"
    conf.write_text("log-file=from-annotation.log\n")
    bundle.update(lambda c: c.setdefault("annotations", {}).update({"org.criu.config": str(conf)}))
    cid = start_counter(bundle, runtime)
    n = wait_count(runtime, cid, 5)
    img, work = str(tmp_path / "img"), tmp_path / "work"
    cr(runtime, "checkpoint", "--work-path", str(work), "--image-path", img, cid)
    assert (work / "from-annotation.log").exists() and not (work / "dump.log").exists()
    (work / "from-annotation.log").unlink()
    cr(runtime, "restore", "-d", "--work-path", str(work), "--image-path", img, "-b", bundle.path, cid)
    assert (work / "from-annotation.log").exists() and not (work / "restore.log").exists()
    assert wait_count(runtime, cid, n) > n


@pytest.mark.parametrize("mode", ["", "soft", "full"])
def test_restore_into_the_same_cgroup_with_limits(bundle, runtime, tmp_path, mode):
    bundle.update(lambda c: c["linux"].update(resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 40}}))
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 5)
    img = str(tmp_path / "img")
    flags = ["--manage-cgroups-mode", mode] if mode else []
    cr(runtime, "checkpoint", *flags, "--image-path", img, cid)
    cr(runtime, "restore", "-d", *flags, "--image-path", img, "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    cgpath = bundle.config["linux"]["cgroupsPath"]
    with open("/proc/%d/cgroup" % pid) as f:
        placed = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
    assert placed["memory"] == cgpath and placed["pids"] == cgpath
    with open("/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % cgpath) as f:
        assert int(f.read()) == 64 << 20
    with open("/sys/fs/cgroup/pids%s/pids.max" % cgpath) as f:
        assert f.read().strip() == "40"
    # from inside (its cgroup namespace: its cgroup is the root it sees)
    inside = runtime("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(inside) == 64 << 20
    assert wait_count(runtime, cid, 5) > 5


def test_restore_refuses_strict_cgroup_mode(bundle, runtime, tmp_path):
    """CRIU's strict mode wants cgroups that do not exist yet; restore makes
    the container's cgroup first (cgroupsPath, limits), as runc does."""
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--manage-cgroups-mode", "strict", "--image-path", img, cid)
    p = cr(runtime, "restore", "-d", "--manage-cgroups-mode", "strict", "--image-path", img, "-b", bundle.path, cid,
           check=False)
    assert "strict" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)


def test_network_namespace_joined_by_path(bundle, runtime, tmp_path):
    """A container in a network namespace given by path: CRIU leaves it out
    of the image (external) and restore puts the process back into it."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    try:
        ns = "/proc/%d/ns/net" % holder.pid
        deadline = time.monotonic() + 10
        while os.readlink(ns) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        subprocess.run(["nsenter", "--net=" + ns, "ip", "link", "add", "crveth0", "type", "veth", "peer", "name", "crveth1"], check=True)

        def cfg(c):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
            c["linux"]["namespaces"].append({"type": "network", "path": ns})
        bundle.update(cfg)
        cid = start_counter(bundle, runtime)
        wait_count(runtime, cid, 5)
        img = str(tmp_path / "img")
        cr(runtime, "checkpoint", "--image-path", img, cid)
        cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
        pid = runtime.state(cid)["pid"]
        assert os.readlink("/proc/%d/ns/net" % pid) == os.readlink(ns)
        assert "crveth0" in runtime("exec", cid, "ip", "link").stdout
        assert wait_count(runtime, cid, 5) > 5
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_restore_of_a_checkpoint_runc_made(bundle, runtime, tmp_path):
    """Moving from runc: a container runc checkpointed comes back under
    pyrunc (runc names its masks' /dev/null binds as external mounts)."""
    counter(bundle)
    cid = runtime.new_id()
    runc = ["runc", "--root", str(tmp_path / "runc-root"), "--criu", CRIU]
    subprocess.run(runc + ["run", "-d", "-b", bundle.path, cid], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run(runc + ["exec", cid, "cat", "/dev/shm/count"], capture_output=True, text=True).stdout
        if out.strip().isdigit() and int(out) > 20:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    img = str(tmp_path / "img")
    subprocess.run(runc + ["checkpoint", "--image-path", img, cid], check=True, timeout=60)
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    assert runtime.state(cid)["status"] == "running"
    assert count(runtime, cid) > 20
    assert runtime("exec", cid, "cat", "/proc/keys").stdout == ""  # still masked


def test_checkpoint_restore_twice(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    last = wait_count(runtime, cid, 10)
    for n in range(2):
        img = str(tmp_path / ("img%d" % n))
        cr(runtime, "checkpoint", "--image-path", img, cid)
        assert cid not in ids(runtime)
        cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
        now = count(runtime, cid)
        assert now >= last
        last = wait_count(runtime, cid, now)


def test_other_verbs_on_a_restored_container(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 5)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    ps = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert pid in ps
    assert runtime("exec", cid, "sh", "-c", "echo $$ inside; cat /proc/1/cmdline").stdout.startswith("")
    assert runtime("exec", cid, "cat", "/proc/1/cmdline").stdout.split("\0")[:2] == ["sh", "-c"]
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [(s["id"], s["pid"], s["status"]) for s in listed] == [(cid, pid, "running")]
    runtime("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    runtime("resume", cid)
    runtime("kill", cid, "KILL")
    deadline = time.monotonic() + 10
    while runtime.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.state(cid)["status"] == "stopped"
    runtime("delete", cid)
    assert_nothing_left(runtime, cid, bundle)


def test_hooks_around_restore(bundle, runtime, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()

    def hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", "cat > %s/%s.json" % (out, name)]}

    bundle.update(lambda c: c.update(hooks={k: [hook(k)] for k in ("prestart", "createRuntime", "poststop")}))
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 5)
    for f in out.iterdir():
        f.unlink()
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    # the checkpointed container was deleted: poststop ran, nothing else
    assert sorted(f.name for f in out.iterdir()) == ["poststop.json"]
    (out / "poststop.json").unlink()
    cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    assert sorted(f.name for f in out.iterdir()) == ["createRuntime.json", "prestart.json"]
    for name in ("prestart", "createRuntime"):
        st = json.loads((out / (name + ".json")).read_text())
        assert (st["id"], st["pid"]) == (cid, pid)


# -- errors: one line, nothing left behind ---------------------------------------

def test_checkpoint_without_criu_binary(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    pid = runtime.state(cid)["pid"]
    img = tmp_path / "img"
    for criu in ("/nonexistent/criu", "no-such-criu-binary"):
        p = runtime("--criu", criu, "checkpoint", "--image-path", str(img), cid, check=False)
        assert criu in one_line_error(p)
    assert not img.exists()
    assert runtime.state(cid)["pid"] == pid and runtime.state(cid)["status"] == "running"


def test_restore_without_criu_binary(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    p = runtime("--criu", "/nonexistent/criu", "restore", "-d", "--image-path", img, "-b", bundle.path, cid,
                check=False)
    assert "/nonexistent/criu" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)


@pytest.mark.skipif(not os.path.exists(OLD_CRIU), reason="no Debian criu 3.17.1 at %s (make old-criu)" % OLD_CRIU)
def test_criu_too_old_for_the_kernel(bundle, runtime, tmp_path):
    assert subprocess.run([OLD_CRIU, "check"], capture_output=True).returncode != 0  # the premise
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = tmp_path / "img"
    p = runtime("--criu", OLD_CRIU, "checkpoint", "--image-path", str(img), cid, check=False)
    assert "criu check" in one_line_error(p)
    assert not img.exists()
    assert runtime.state(cid)["status"] == "running"
    cr(runtime, "checkpoint", "--image-path", str(img), cid)
    p = runtime("--criu", OLD_CRIU, "restore", "-d", "--image-path", str(img), "-b", bundle.path, cid, check=False)
    assert "criu check" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)


def test_restore_from_a_missing_or_empty_image_dir(bundle, runtime, tmp_path):
    counter(bundle)
    cid = runtime.new_id()
    missing = tmp_path / "missing"
    p = cr(runtime, "restore", "-d", "--image-path", str(missing), "-b", bundle.path, cid, check=False)
    assert str(missing) in one_line_error(p)
    assert not missing.exists()
    assert_nothing_left(runtime, cid, bundle)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = cr(runtime, "restore", "-d", "--image-path", str(empty), "-b", bundle.path, cid, check=False)
    assert "not a checkpoint" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)


def test_restore_refuses_the_systemd_driver_for_what_it_is(bundle, runtime, tmp_path):
    """restore places the container with the cgroupfs driver only: it says
    so, not that systemd is not running (which may be false)."""
    cid = runtime.new_id()
    p = cr(runtime, "--systemd-cgroup", "restore", "-d", "--image-path", str(tmp_path), "-b", bundle.path, cid,
           check=False)
    line = one_line_error(p)
    assert "--systemd-cgroup" in line and "restore" in line and "not running" not in line, line
    assert_nothing_left(runtime, cid, bundle)


def test_restore_from_another_containers_image(bundle, runtime, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    plain = json.loads(json.dumps(bundle.config))
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "rw"]}))
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    bundle.write_config(plain)  # a config without that bind mount
    p = cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid, check=False)
    msg = one_line_error(p)
    assert "another container" in msg and "/data" in msg
    assert_nothing_left(runtime, cid, bundle)


def test_restore_onto_an_existing_id(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--leave-running", "--image-path", img, cid)
    pid = runtime.state(cid)["pid"]
    p = cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid, check=False)
    assert "exists" in one_line_error(p)
    st = runtime.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid)
    assert criu_root_mounts() == []


def test_failed_restore_leaves_nothing(bundle, runtime, tmp_path):
    """CRIU fails half-way (a memory image is gone): no process, cgroup,
    state directory or criu-root mount stays; the error names criu's log."""
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = tmp_path / "img"
    cr(runtime, "checkpoint", "--image-path", str(img), cid)
    for f in img.glob("pages-*.img"):
        f.unlink()
    before = counter_pids()  # the checkpointed counter is gone by now
    p = cr(runtime, "restore", "-d", "--image-path", str(img), "-b", bundle.path, cid, check=False)
    assert "restore.log" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)
    assert_no_new_counters(before)


def test_restore_killed_half_way_is_cleaned_by_delete(bundle, runtime, tmp_path):
    """pyrunc restore SIGKILLed while its prestart hook runs (CRIU holds the
    half-restored tree): criu gives up, and `delete --force` leaves nothing."""
    marker, armed = tmp_path / "hook-started", tmp_path / "armed"
    bundle.update(lambda c: c.update(hooks={"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "[ -e %s ] || exit 0; echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 60"
                                     % ((armed,) + (marker,) * 3)]}]}))
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    armed.touch()  # the hook blocks at restore only
    before = counter_pids()  # the checkpointed counter is gone by now
    p = subprocess.Popen(runtime.cmd("--criu", CRIU, "restore", "-d", "--image-path", img, "-b", bundle.path, cid),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline and p.poll() is None, "the prestart hook never ran"
            time.sleep(0.02)
        p.kill()
        p.wait()
    finally:
        os.kill(int(marker.read_text()), 9)  # the hook's sleep, orphaned
    runtime("delete", "--force", cid)
    assert_nothing_left(runtime, cid, bundle)
    assert_no_new_counters(before)


def test_failing_prestart_hook_fails_restore(bundle, runtime, tmp_path):
    """A prestart hook that fails at restore fails it (a fatal kind, as at
    create): CRIU is told no, its half-restored tree dies, nothing stays."""
    armed = tmp_path / "armed"
    bundle.update(lambda c: c.update(hooks={"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "[ -e %s ] && exit 3; exit 0" % armed]}]}))
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    armed.touch()
    before = counter_pids()  # the checkpointed counter is gone by now
    p = cr(runtime, "restore", "-d", "--image-path", img, "-b", bundle.path, cid, check=False)
    assert "prestart" in one_line_error(p)
    assert_nothing_left(runtime, cid, bundle)
    assert_no_new_counters(before)


def test_checkpoint_refuses_a_created_container(bundle, runtime, tmp_path):
    counter(bundle)
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    img = tmp_path / "img"
    p = cr(runtime, "checkpoint", "--image-path", str(img), cid, check=False)
    assert "created" in one_line_error(p)
    assert runtime.state(cid)["status"] == "created"
    assert not img.exists()


def test_pre_dump_needs_soft_dirty_tracking(bundle, runtime, tmp_path):
    tracked = subprocess.run([CRIU, "check", "--feature", "mem_dirty_track"], capture_output=True).returncode == 0
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = tmp_path / "img"
    p = cr(runtime, "checkpoint", "--pre-dump", "--image-path", str(img), cid, check=False)
    if tracked:
        assert p.returncode == 0, p.stderr
    else:
        assert "soft-dirty" in one_line_error(p)
        assert not img.exists()
    assert runtime.state(cid)["status"] == "running"


def _page_server_can_grow_its_pipe():
    """The test's own reading of what CRIU's lazy page server needs: a pipe
    of 1024 pages (8 pages / 40-byte pipe_buffer = 819, rounded up to a
    power of two), above fs.pipe-max-size only with CAP_SYS_RESOURCE."""
    wanted = 1024 * os.sysconf("SC_PAGE_SIZE")
    with open("/proc/sys/fs/pipe-max-size") as f:
        limit = int(f.read())
    with open("/proc/self/status") as f:
        caps = int(next(ln for ln in f if ln.startswith("CapEff:")).split()[1], 16)
    return wanted <= limit or bool(caps >> 24 & 1)


@pytest.mark.skipif(_page_server_can_grow_its_pipe(), reason="CRIU's lazy page server can work on this host "
                    "(CAP_SYS_RESOURCE or fs.pipe-max-size >= 4 MiB): no refusal to check")
def test_lazy_pages_refused_where_crius_page_server_cannot_work(bundle, runtime, tmp_path):
    """runc's bats flow (checkpoint --lazy-pages --page-server --status-fd)
    hangs here with runc: CRIU's page server fails at the first page
    (splice: Bad file descriptor) and the restore waits forever.  pyrunc
    says why before asking CRIU, and the container keeps running."""
    cid = start_counter(bundle, runtime)
    n = wait_count(runtime, cid, 2)
    img = tmp_path / "img"
    r, w = os.pipe()
    try:
        p = cr(runtime, "checkpoint", "--lazy-pages", "--page-server", "127.0.0.1:27277", "--status-fd", str(w),
               "--image-path", str(img), cid, check=False, pass_fds=(w,), timeout=20)
        line = one_line_error(p)
        assert "--lazy-pages" in line and "CAP_SYS_RESOURCE" in line and "pipe-max-size" in line
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 1)  # no "ready" byte
    finally:
        os.close(r)
        os.close(w)
    assert not img.exists()
    assert runtime.state(cid)["status"] == "running"
    assert wait_count(runtime, cid, n) > n


def _lazy_pages_daemon(img):
    """CRIU's lazy-pages daemon serving the image's pages from the image
    directory (no network), on the socket restore --lazy-pages connects to
    in its work directory."""
    d = subprocess.Popen([CRIU, "lazy-pages", "-D", img, "-o", "lazy-pages.log", "-v4"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(img, "lazy-pages.socket")):
        assert d.poll() is None and time.monotonic() < deadline, "criu lazy-pages did not start"
        time.sleep(0.02)
    return d


def test_restore_with_lazy_pages_from_criu_lazy_pages_daemon(bundle, runtime, tmp_path):
    """restore --lazy-pages: the memory comes from `criu lazy-pages` on
    demand (userfaultfd), and the counter goes on from where it stopped."""
    cid = start_counter(bundle, runtime)
    before = wait_count(runtime, cid, 20)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    daemon = _lazy_pages_daemon(img)
    try:
        cr(runtime, "restore", "-d", "--lazy-pages", "--work-path", img, "--image-path", img, "-b", bundle.path, cid)
        first = count(runtime, cid)
        assert first >= before
        assert wait_count(runtime, cid, first) > first
        assert daemon.wait(timeout=30) == 0  # every page handed over, then it exits
    finally:
        daemon.kill()
        daemon.wait()
    with open(os.path.join(img, "restore.log")) as f:
        assert "lazy-pages" in f.read()


def test_restore_waits_on_a_stuck_criu_for_a_bounded_time(bundle, runtime, tmp_path):
    """A lazy-pages daemon that never answers (stopped) leaves CRIU's
    restore waiting forever; pyrunc gives up after PYRUNC_CRIU_TIMEOUT
    seconds, kills criu and takes everything back."""
    cid = start_counter(bundle, runtime)
    wait_count(runtime, cid, 2)
    img = str(tmp_path / "img")
    cr(runtime, "checkpoint", "--image-path", img, cid)
    before = counter_pids()
    daemon = _lazy_pages_daemon(img)
    os.kill(daemon.pid, 19)  # SIGSTOP
    try:
        started = time.monotonic()
        p = cr(runtime, "restore", "-d", "--lazy-pages", "--work-path", img, "--image-path", img, "-b", bundle.path,
               cid, check=False, timeout=40, env=dict(os.environ, PYRUNC_CRIU_TIMEOUT="3"))
        assert time.monotonic() - started < 30
        assert "no answer from criu in 3 s" in one_line_error(p)
    finally:
        daemon.kill()
        daemon.wait()
    assert_nothing_left(runtime, cid, bundle)
    assert_no_new_counters(before)


def test_bad_flag_values(bundle, runtime, tmp_path):
    cid = start_counter(bundle, runtime)
    img = tmp_path / "img"
    for flags, word in ((["--manage-cgroups-mode", "bogus"], "manage-cgroups-mode"),
                        (["--empty-ns", "pid"], "empty-ns"),
                        (["--parent-path", "/abs"], "parent-path")):
        p = cr(runtime, "checkpoint", *flags, "--image-path", str(img), cid, check=False)
        assert word in one_line_error(p)
    assert runtime.state(cid)["status"] == "running"
    assert not img.exists()


# -- podman ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman_cr(tmp_path_factory):
    """podman 4.3 + conmon with pyrunc as the runtime (tests/engines/podman.py,
    a private store); podman finds criu on PATH: the test's CRIU."""
    import tempfile

    from conftest import PYRUNC
    from engines.fixtures import IMAGE_NAME, image_archive, require
    from engines.podman import Podman

    require("podman", package="podman")
    require("conmon", package="conmon")
    base = tempfile.mkdtemp(prefix="pyrunc-cr-", dir="/tmp")
    archive = image_archive(tmp_path_factory.mktemp("podman-cr-image"))
    engine = Podman(base, PYRUNC, archive, IMAGE_NAME, "/pyrunc-cr-podman-%d" % os.getpid())
    criu_dir = os.path.join(base, "criu-bin")
    os.makedirs(criu_dir)
    os.symlink(os.path.abspath(CRIU), os.path.join(criu_dir, "criu"))
    engine.env["PATH"] = criu_dir + ":" + engine.env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    try:
        engine.start()
    except Exception:
        engine.stop()
        raise
    yield engine
    engine.stop_and_check()


def test_podman_container_checkpoint_and_restore(podman_cr):
    from engines.fixtures import IMAGE_NAME

    pm = podman_cr
    n = "cr-" + os.urandom(3).hex()
    cid = pm.podman("run", "-d", "--name", n, *pm.run_args(), IMAGE_NAME,
                    "sh", "-c", COUNTER % "/tmp/count").stdout.strip()
    try:
        def podman_count():
            for _ in range(50):
                out = pm.podman("exec", n, "cat", "/tmp/count", check=False).stdout.strip()
                if out.isdigit():
                    return int(out)
                time.sleep(0.05)
            raise AssertionError("no count")

        deadline = time.monotonic() + 20
        while podman_count() < 50:
            assert time.monotonic() < deadline
        p = pm.podman("container", "checkpoint", n, check=False, timeout=120)
        assert p.returncode == 0, p.stderr
        assert pm.inspect(n, "{{.State.Status}}") == "exited"
        dumps = [argv for argv in pm.runtime_calls() if "checkpoint" in argv and cid in argv]
        assert dumps and "--image-path" in dumps[-1]  # podman drove pyrunc's checkpoint
        p = pm.podman("container", "restore", n, check=False, timeout=120)
        assert p.returncode == 0, p.stderr
        assert pm.inspect(n, "{{.State.Status}}") == "running"
        restore = [argv for argv in pm.runtime_calls() if "restore" in argv][-1]
        print("podman ran:", dumps[-1], restore)
        assert "--image-path" in restore
        first = podman_count()
        assert first >= 50  # a fresh start would count from 1
        deadline = time.monotonic() + 10
        while podman_count() <= first:
            assert time.monotonic() < deadline
    finally:
        pm.podman("rm", "--force", "--time", "0", n, check=False)


def test_podman_checkpoint_export_and_import_as_a_new_container(podman_cr, tmp_path):
    """Live migration's path: `checkpoint --export` to an archive, the
    container removed, `restore --import` as a new one (new id, new rootfs)."""
    from engines.fixtures import IMAGE_NAME

    pm = podman_cr
    n, n2 = "ex-" + os.urandom(3).hex(), "im-" + os.urandom(3).hex()
    archive = str(tmp_path / "cp.tar.gz")
    pm.podman("run", "-d", "--name", n, *pm.run_args(), IMAGE_NAME, "sh", "-c", COUNTER % "/tmp/count")
    try:
        def podman_count(name):
            for _ in range(50):
                out = pm.podman("exec", name, "cat", "/tmp/count", check=False).stdout.strip()
                if out.isdigit():
                    return int(out)
                time.sleep(0.05)
            raise AssertionError("no count")

        deadline = time.monotonic() + 20
        while podman_count(n) < 50:
            assert time.monotonic() < deadline
        p = pm.podman("container", "checkpoint", "--export", archive, n, check=False, timeout=120)
        assert p.returncode == 0, p.stderr
        pm.podman("rm", "--force", n)
        p = pm.podman("container", "restore", "--import", archive, "--name", n2, check=False, timeout=120)
        assert p.returncode == 0, p.stderr
        assert pm.inspect(n2, "{{.State.Status}}") == "running"
        assert podman_count(n2) >= 50
    finally:
        pm.podman("rm", "--force", "--time", "0", n, check=False)
        pm.podman("rm", "--force", "--time", "0", n2, check=False)
