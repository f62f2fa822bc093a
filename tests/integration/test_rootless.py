"""Rootless: `pyrunc spec --rootless` and `pyrunc --root $XDG_RUNTIME_DIR run`
as an unprivileged user the test creates."""
import os
import pwd
import shutil
import subprocess

import pytest

from conftest import PYRUNC, make_rootfs, needs_root

pytestmark = needs_root
USER = "pyrunc-rootless-test"


@pytest.fixture
def test_user():
    if shutil.which("useradd") is None:
        pytest.skip("useradd not available on this host")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
        pw = pwd.getpwnam(USER)
    return pw


def readable_by_all(path):
    path = os.path.abspath(path)
    while path != "/":
        os.chmod(path, os.stat(path).st_mode | 0o005)
        path = os.path.dirname(path)


class RootlessSetup:
    """A bundle made by `pyrunc spec --rootless` as the test user, owned by
    it, and an XDG_RUNTIME_DIR for --root."""

    def __init__(self, user, tmp_path):
        if not os.access(PYRUNC, os.X_OK):
            pytest.skip("pyrunc launcher not found beside the test interpreter")
        readable_by_all(os.path.dirname(os.path.dirname(PYRUNC)))  # the venv
        self.base = tmp_path / "rootless"
        self.bundle = self.base / "bundle"
        self.xdg = self.base / "xdg"
        os.makedirs(self.bundle / "rootfs")
        make_rootfs(str(self.bundle / "rootfs"))
        os.makedirs(self.xdg)
        for dirpath, dirnames, filenames in os.walk(self.base):
            os.lchown(dirpath, user.pw_uid, user.pw_gid)
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), user.pw_uid, user.pw_gid)
        os.chmod(self.xdg, 0o700)
        readable_by_all(self.base)
        self.as_user = ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid, "--clear-groups"]
        self.env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(self.xdg), "HOME": str(self.base)}
        subprocess.run(self.as_user + [PYRUNC, "spec", "--rootless", "--bundle", str(self.bundle)],
                       check=True, env=self.env)

    def update(self, fn):
        import json

        cfg = json.loads((self.bundle / "config.json").read_text())
        cfg["process"]["terminal"] = False
        fn(cfg)
        (self.bundle / "config.json").write_text(json.dumps(cfg))

    def pyrunc(self, *args, timeout=60):
        """Output through files, not pipes: a detached container keeps the
        caller's stdio open."""
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(self.as_user + [PYRUNC, "--root", str(self.xdg), *args],
                               stdout=out, stderr=err, env=self.env, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            p.stdout = out.read().decode(errors="replace")
            p.stderr = err.read().decode(errors="replace")
        return p


def test_rootless_run_as_unprivileged_user(test_user, tmp_path):
    rl = RootlessSetup(test_user, tmp_path)

    def cfg(c):
        c["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname; "
                                            "touch /tmp/made-inside 2>/dev/null; echo done"]
        c["root"]["readonly"] = False
    rl.update(cfg)
    p = rl.pyrunc("run", "-b", str(rl.bundle), "rl1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "0"  # root inside...
    assert lines[1].split() == ["0", str(test_user.pw_uid), "1"]  # ...is the user outside
    assert lines[2] == "pyrunc" and "done" in p.stdout
    st = os.stat(rl.bundle / "rootfs" / "tmp" / "made-inside")
    assert st.st_uid == test_user.pw_uid
    assert os.listdir(rl.xdg) == []  # run deleted its state


def test_rootless_seccomp_notify_reaches_the_listener(test_user, tmp_path):
    """An unprivileged runtime cannot pidfd_getfd() its non-dumpable init:
    the init sends the notify fd itself over a socket pair.  The agent (this
    test, root) answers the container's mkdir; checked from inside."""
    from test_seccomp_container import Agent

    rl = RootlessSetup(test_user, tmp_path)
    path = str(rl.base / "agent.sock")
    agent = Agent(path, lambda n: ("val", 0) if n.syscall_name in ("mkdir", "mkdirat") else ("continue", None))
    os.chmod(path, 0o777)  # the runtime connecting is the test user

    def cfg(c):
        c["process"]["args"] = ["sh", "-c", "mkdir /nonexistent/x; echo rc=$?; "
                                            "test -e /nonexistent && echo made || echo clean"]
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                 "listenerMetadata": "rootless",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    rl.update(cfg)
    try:
        p = rl.pyrunc("run", "-b", str(rl.bundle), "rl2")
    finally:
        agent.stop()
    assert p.returncode == 0, p.stderr
    assert agent.error is None, agent.error
    assert "rc=0" in p.stdout and "clean" in p.stdout
    assert agent.seen and {name for _, name in agent.seen} <= {"mkdir", "mkdirat"}
    assert agent.state["metadata"] == "rootless" and agent.state["pid"] > 0


def test_rootless_seccomp_notify_on_sendmsg_is_refused(test_user, tmp_path):
    """Rootless, the init hands its notify fd over with sendmsg under the
    filter: NOTIFY on sendmsg would block it for good, so create refuses the
    config first (without the check: a hung create, killed by the timeout)."""
    rl = RootlessSetup(test_user, tmp_path)

    def cfg(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(rl.base / "agent.sock"),
                                 "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}
    rl.update(cfg)
    try:
        p = rl.pyrunc("run", "-b", str(rl.bundle), "rl5", timeout=20)
    finally:
        rl.pyrunc("delete", "--force", "rl5")
    assert p.returncode != 0
    assert "syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for sendmsg by an unprivileged runtime" in p.stderr
    assert os.listdir(rl.xdg) == []


def test_rootless_exec_seccomp_notify_reaches_the_listener(test_user, tmp_path):
    """`exec` by an unprivileged runtime: the exec'd process sends its own
    notify fd over a socket pair; the agent fails its mkdir with EXDEV."""
    import errno

    from test_seccomp_container import EXDEV_TEXT, Agent

    rl = RootlessSetup(test_user, tmp_path)
    path = str(rl.base / "agent.sock")
    agent = Agent(path, lambda n: ("error", errno.EXDEV), connections=2)
    os.chmod(path, 0o777)

    def cfg(c):
        c["process"]["args"] = ["sleep", "60"]
        c["root"]["readonly"] = False
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    rl.update(cfg)
    try:
        p = rl.pyrunc("run", "-d", "-b", str(rl.bundle), "rl3")
        assert p.returncode == 0, p.stderr
        q = rl.pyrunc("exec", "rl3", "sh", "-c", "mkdir /tmp/e; echo rc=$?")
    finally:
        rl.pyrunc("delete", "--force", "rl3")
        agent.stop()
    assert not agent.errors, agent.errors
    assert "rc=1" in q.stdout and EXDEV_TEXT in q.stderr, (q.stdout, q.stderr)
    assert [st["state"]["status"] for st in agent.states] == ["creating", "running"]
    assert not os.path.exists(rl.bundle / "rootfs" / "tmp" / "e")


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="kernel without time namespaces")
def test_rootless_time_namespace_offsets(test_user, tmp_path):
    """An unprivileged runtime makes user + time namespaces together; the
    offsets are seen from inside (/proc/uptime is boottime-based), by the
    init and by an exec'd process."""
    rl = RootlessSetup(test_user, tmp_path)
    day = 86400 * 30
    script = "cat /proc/uptime; cat /proc/self/timens_offsets"

    def cfg(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": day}, "monotonic": {"secs": day}}
        c["process"]["args"] = ["sh", "-c", script + "; exec sleep 60"]
    rl.update(cfg)
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    try:
        p = rl.pyrunc("run", "-d", "-b", str(rl.bundle), "rl4")
        assert p.returncode == 0, p.stderr
        q = rl.pyrunc("exec", "rl4", "sh", "-c", script)
    finally:
        rl.pyrunc("delete", "--force", "rl4")
    assert q.returncode == 0, q.stderr
    lines = q.stdout.splitlines()
    inside = float(lines[0].split()[0])
    assert day <= inside - host_uptime < day + 60, (inside, host_uptime)
    offsets = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert offsets == {"monotonic": str(day), "boottime": str(day)}, lines


def test_rootless_init_is_not_dumpable(test_user, tmp_path):
    """CVE-2019-5736 class, unprivileged runtime: stage 1 is forked while
    the runtime is still dumpable (it must be, for the parent to write the
    id maps), so stage 1 itself must turn that off before it makes the
    init.  Probe: /proc/<pid>/* of a dumpable process belong to its euid
    (the test user here), of a non-dumpable one to root.  A createRuntime
    hook (run while the init waits) stats the init's environ.  Seen to fail
    with stage1_main's set_dumpable(False) removed."""
    rl = RootlessSetup(test_user, tmp_path)
    out = rl.base / "owner"
    probe = ("pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
             "stat -c %%u /proc/$pid/environ > %s" % out)

    def cfg(c):
        c["process"]["args"] = ["true"]
        c.setdefault("hooks", {})["createRuntime"] = [{"path": "/bin/sh", "args": ["sh", "-c", probe]}]
    rl.update(cfg)
    p = rl.pyrunc("run", "-b", str(rl.bundle), "rl-dump")
    assert p.returncode == 0, p.stderr
    assert out.read_text().strip() == "0"


@pytest.mark.parametrize("cgroup_mount", [False, True], ids=["pyrunc_spec", "runc_spec_cgroup_mount"])
def test_rootless_host_cgroups_are_read_only_inside(test_user, tmp_path, cgroup_mount):
    """CVE-2023-25809 class: `spec --rootless` binds the host's /sys (no
    cgroup namespace), so the host's cgroup hierarchies appear under
    /sys/fs/cgroup.  What the container sees there must be read-only: a
    cgroup delegated to the user (systemd's user@.service) would otherwise
    be writable by the container's root.  Also with runc's rootless spec,
    which adds a cgroup mount over that /sys (it used to fail: the
    hierarchies seen twice made mkdir EEXIST)."""
    rl = RootlessSetup(test_user, tmp_path)

    def cfg(c):
        c["process"]["args"] = ["cat", "/proc/self/mountinfo"]
        if cgroup_mount:
            c["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    rl.update(cfg)
    p = rl.pyrunc("run", "-b", str(rl.bundle), "rl-cg")
    assert p.returncode == 0, p.stderr
    top = {}  # mount point -> the mount on top (the last one listed)
    for line in p.stdout.splitlines():
        fields = line.split()
        if fields[4].startswith("/sys/fs/cgroup"):
            top[fields[4]] = fields
    assert "/sys/fs/cgroup/memory" in top, p.stdout  # the hierarchies are there...
    for fields in top.values():
        assert "ro" in fields[5].split(","), fields  # ...and none is writable
