"""What engines and scripts observe of runc 1.1.5, observed of pyrunc: the
version layout, --log/--debug, exit codes, --pid-file paths, refusals
instead of hangs, runc's warnings and error texts, and configs runc runs
that the spec's schema refuses (the default, lenient mode) next to the
schema's verdict (--strict)."""
import json
import os
import subprocess
import time

import pytest

from conftest import needs_root

pytestmark = needs_root


def start_sleeper(bundle, runtime, *flags):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime(*flags, "run", "-d", "-b", bundle.path, cid)
    return cid


# -- version -----------------------------------------------------------------

def test_version_has_runcs_commit_and_spec_lines(runtime):
    lines = runtime("--version").stdout.split("\n")
    assert lines[0].startswith("pyrunc version ")
    assert lines[1].startswith("commit: ") and len(lines[1]) > len("commit: ")
    assert lines[2] == "spec: 1.3.0"


# -- --log and --debug -------------------------------------------------------

def test_log_file_made_even_when_nothing_fails_relative_to_cwd(runtime, tmp_path):
    (tmp_path / "cwd").mkdir()
    p = runtime("--log", "rel.log", "list", cwd=str(tmp_path / "cwd"))
    assert p.returncode == 0
    assert (tmp_path / "cwd" / "rel.log").exists()
    assert (tmp_path / "cwd" / "rel.log").read_text() == ""


def test_log_path_is_the_callers_not_the_bundles(bundle, runtime, tmp_path):
    """create chdirs into the bundle; a relative --log still lands in the
    caller's directory (opened at start-up, as runc does)."""
    bundle.set_args("true")
    (tmp_path / "caller").mkdir()
    runtime("--log", "c.log", "--debug", "run", "-b", bundle.path, runtime.new_id(),
            cwd=str(tmp_path / "caller"))
    assert (tmp_path / "caller" / "c.log").exists()
    assert not os.path.exists(os.path.join(bundle.path, "c.log"))


RUN_DEBUG = ("nsexec container setup", "child process in init()",
             "init: closing the pipe to signal completion")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_to_log_file_has_the_childrens_lines(bundle, runtime, tmp_path, fmt):
    bundle.set_args("echo", "hello")
    log = tmp_path / "debug.log"
    p = runtime("--log", str(log), "--log-format", fmt, "--debug", "run", "-b", bundle.path, runtime.new_id())
    assert p.stdout == "hello\n"
    assert "debug" not in p.stderr  # everything went to the file
    text = log.read_text()
    if fmt == "json":
        entries = [json.loads(line) for line in text.splitlines()]
        msgs = [e["msg"] for e in entries if e["level"] == "debug"]
    else:
        msgs = [line.split('msg="', 1)[1].rstrip('"') for line in text.splitlines() if "level=debug" in line]
    for want in RUN_DEBUG:
        assert want in msgs, (want, text)


def test_debug_to_stderr_never_into_the_containers_terminal(bundle, runtime):
    bundle.set_args("echo", "hello")
    p = runtime("--debug", "run", "-b", bundle.path, runtime.new_id())
    assert p.stdout == "hello\n"
    for want in RUN_DEBUG:
        assert 'level=debug msg="%s"' % want in p.stderr


def test_exec_debug_lines(bundle, runtime):
    cid = start_sleeper(bundle, runtime)
    p = runtime("--debug", "exec", cid, "true")
    for want in ("nsexec container setup", "child process in init()", "setns_init: about to exec"):
        assert 'msg="%s"' % want in p.stderr, p.stderr


# -- exit codes and --pid-file of exec ---------------------------------------

def test_exec_failures_exit_255(bundle, runtime):
    cid = start_sleeper(bundle, runtime)
    assert runtime("exec", cid, "sh", "-c", "exit 42", check=False).returncode == 42
    p = runtime("exec", cid, "no-such-binary", check=False)
    assert p.returncode == 255 and "exec failed" in p.stderr
    assert runtime("exec", "no-such-container", "true", check=False).returncode == 255


def test_exec_pid_file_foreground_relative_to_cwd(bundle, runtime, tmp_path):
    cid = start_sleeper(bundle, runtime)
    (tmp_path / "here").mkdir()
    p = runtime("exec", "--pid-file", "pid.txt", cid, "echo", "hi", cwd=str(tmp_path / "here"))
    assert p.stdout == "hi\n"
    assert int((tmp_path / "here" / "pid.txt").read_text()) > 0


def test_exec_pid_file_impossible_path_fails_255_and_kills(bundle, runtime, tmp_path):
    bundle.update(lambda c: c["root"].update(readonly=False))  # the marker must be writable
    cid = start_sleeper(bundle, runtime)
    marker = "/tmp/pyrunc-i12-should-not-exist-%d" % os.getpid()
    p = runtime("exec", "--pid-file", "/non-existent/directory/pid", cid,
                "sh", "-c", "sleep 1; touch %s" % marker, check=False)
    assert p.returncode == 255, p.stderr
    assert "--pid-file" in p.stderr
    time.sleep(1.5)
    out = runtime("exec", cid, "sh", "-c", "test -e %s && echo ran || echo killed" % marker).stdout
    assert out.strip() == "killed"


def test_exec_into_paused_container_is_refused_255(bundle, runtime):
    cid = start_sleeper(bundle, runtime)
    runtime("pause", cid)
    try:
        p = runtime("exec", cid, "true", check=False, timeout=20)
        assert p.returncode == 255
        assert "cannot exec in a paused container" in p.stderr
    finally:
        runtime("resume", cid)


def test_exec_cgroup_texts_tools_match(bundle, runtime):
    cid = start_sleeper(bundle, runtime)
    p = runtime("exec", "--cgroup", "..", cid, "true", check=False)
    assert p.returncode == 255 and " .. is not a sub cgroup path" in p.stderr
    p = runtime("exec", "--cgroup", "whaaat:/", cid, "true", check=False)
    assert p.returncode == 255 and "unknown controller " in p.stderr


# -- cgroups: a reused cgroup ------------------------------------------------

def _cgroups_path(bundle):
    return bundle.config["linux"]["cgroupsPath"]


def test_non_empty_cgroup_warns(bundle, runtime):
    start_sleeper(bundle, runtime)
    cid2 = runtime.new_id()
    p = runtime("run", "-d", "-b", bundle.path, cid2)  # the same cgroupsPath
    assert "container's cgroup is not empty: 1 process(es) found" in p.stderr
    assert runtime.state(cid2)["status"] == "running"


def test_frozen_cgroup_refused_at_create_not_hung(bundle, runtime):
    freezer = "/sys/fs/cgroup/freezer"
    if not os.path.isdir(freezer):
        pytest.skip("no cgroup v1 freezer hierarchy at %s on this host" % freezer)
    d = freezer + _cgroups_path(bundle)
    os.makedirs(d)
    try:
        with open(d + "/freezer.state", "w") as f:
            f.write("FROZEN")
        bundle.set_args("true")
        for verb in (("run", "-d"), ("create",)):
            cid = runtime.new_id()
            p = runtime(*verb, "-b", bundle.path, cid, check=False, timeout=20)
            assert p.returncode == 1
            assert "container's cgroup unexpectedly frozen" in p.stderr
            assert runtime("state", cid, check=False).returncode != 0  # nothing left behind
    finally:
        with open(d + "/freezer.state", "w") as f:
            f.write("THAWED")
        os.rmdir(d)


def test_linux_devices_node_gets_no_allow_rule_of_its_own(bundle, runtime):
    """runc makes the node but leaves access to resources.devices: with a
    deny-all and no rule for c 1:11, the node cannot be opened."""
    def cfg(c):
        c["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}]
        c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
        for k in ("bounding", "effective", "permitted"):  # kmsg's own check passes
            c["process"]["capabilities"][k].append("CAP_SYSLOG")
        c["process"]["args"] = ["sh", "-c", "ls -l /dev/kmsg; head -c1 /dev/kmsg"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert "/dev/kmsg" in p.stdout  # the node is there
    assert p.returncode == 1 and "Operation not permitted" in p.stderr


def test_spec_has_a_cgroup_namespace_only_on_a_cgroup_v2_host(tmp_path):
    from conftest import PYRUNC

    subprocess.run([PYRUNC, "spec", "--bundle", str(tmp_path)], check=True)
    types = [n["type"] for n in json.loads((tmp_path / "config.json").read_text())["linux"]["namespaces"]]
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert ("cgroup" in types) == v2
    assert len(types) == len(set(types))


# -- the init: cwd, hooks, /dev, /proc, terminal -----------------------------

def _run(bundle, runtime, *flags, check=False):
    return runtime("run", *flags, "-b", bundle.path, runtime.new_id(), check=check)


def test_cwd_only_root_may_enter_is_entered_before_the_user_switch(bundle, runtime):
    root_dir = os.path.join(bundle.rootfs, "root")
    os.chmod(root_dir, 0o700)

    def cfg(c):
        c["process"]["cwd"] = "/root"
        c["process"]["user"] = {"uid": 42, "gid": 42}
        c["process"]["args"] = ["sh", "-c", "pwd; id -u"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["/root", "42"]


def test_create_container_hook_runs_in_the_rootfs(bundle, runtime, tmp_path):
    out = tmp_path / "hook-cwd"
    bundle.update(lambda c: c.setdefault("hooks", {}).update(createContainer=[
        {"path": "/bin/sh", "args": ["sh", "-c", "pwd > %s" % out]}]))
    bundle.set_args("true")
    assert _run(bundle, runtime).returncode == 0
    assert out.read_text().strip() == os.path.realpath(bundle.rootfs)


def test_read_only_dev_mount(bundle, runtime):
    def cfg(c):
        for m in c["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")
        c["process"]["args"] = ["sh", "-c", "grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6; "
                                "ls /dev/pts/ptmx /dev/null; touch /dev/x || echo refused"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0].split(",")[0] == "ro"  # made read-only once populated
    assert "/dev/pts/ptmx" in lines and "/dev/null" in lines and lines[-1] == "refused"


def test_proc_on_a_symlink_refused_in_runcs_words(bundle, runtime):
    proc = os.path.join(bundle.rootfs, "proc")
    os.rmdir(proc)
    os.symlink("/symlink", proc)
    p = _run(bundle, runtime)
    assert p.returncode == 1 and "must be mounted on ordinary directory" in p.stderr


def test_no_pivot_does_not_expose_the_hosts_proc(bundle, runtime):
    """With --no-pivot the host's mounts stay in the container's mount
    namespace, under its root; a fully visible procfs among them would let
    the container (in a user namespace of its own) mount a fresh procfs."""
    if not os.path.exists(os.path.join(bundle.rootfs, "bin", "unshare")):
        os.symlink("busybox", os.path.join(bundle.rootfs, "bin", "unshare"))

    def cfg(c):
        c["process"]["args"] = ["unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc && echo mounted"]
        c["process"]["terminal"] = False
        for k in ("bounding", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SETFCAP")
    bundle.update(cfg)
    with open("/proc/sys/user/max_user_namespaces") as f:
        if int(f.read()) == 0:
            pytest.skip("user namespaces are disabled on this host (max_user_namespaces=0)")
    p = _run(bundle, runtime, "--no-pivot")
    assert "mounted" not in p.stdout
    assert p.returncode == 1, p.stdout + p.stderr
    assert "permission denied" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr


def test_terminal_belongs_to_a_non_root_user(bundle, runtime):
    import pty

    def cfg(c):
        c["process"]["user"] = {"uid": 1000, "gid": 100}
        c["process"]["terminal"] = True
        c["process"]["args"] = ["sh", "-c", "stat -c %u:%g $(tty)"]
    bundle.update(cfg)
    master, slave = pty.openpty()
    try:
        p = runtime("run", "-b", bundle.path, runtime.new_id(), stdin=slave, check=False)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().replace("\r", "") == "1000:5"


def test_kill_all_after_the_container_stopped(bundle, runtime):
    cid = start_sleeper(bundle, runtime)
    runtime("kill", cid, "KILL")
    for _ in range(100):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    assert runtime("kill", "-a", cid, "0").returncode == 0
    assert runtime("kill", cid, "0", check=False).returncode == 1  # the init alone: not running


def test_start_container_hook_runs_as_the_process_seccomp_included(bundle, runtime, tmp_path):
    """runc runs startContainer hooks after the process's user, capabilities
    and seccomp filter are in place: the hook can do no more than the
    process will."""
    def cfg(c):
        c["process"]["args"] = ["true"]
        c["process"]["terminal"] = False
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/foo"]}]}
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode != 0
    assert "error running hook #0 (startContainer, /bin/sh)" in p.stderr, p.stderr
    assert "bad system call" in p.stderr, p.stderr


def test_start_container_hook_runs_as_the_process_user(bundle, runtime):
    os.chmod(os.path.join(bundle.rootfs, "tmp"), 0o1777)

    def cfg(c):
        c["root"]["readonly"] = False
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
        c["process"]["args"] = ["cat", "/tmp/hook-id"]
        c["process"]["terminal"] = False
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "id -u > /tmp/hook-id"]}]}
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1000"


# -- seccomp: a syscall the profile does not know ----------------------------

PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static int rc(long r) { return r < 0 ? -errno : (int)r; }
int main(void) {
    printf("%d %d %d\n", rc(syscall(1000, 0, 0, 0)), rc(syscall(SYS_getpid)) > 0, rc(syscall(SYS_unshare, 0)));
    return 0;
}
"""


def _static_probe(rootfs, tmp_path):
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the probe is a static C program")
    src = tmp_path / "probe.c"
    src.write_text(PROBE_C)
    p = subprocess.run(["gcc", "-static", "-O0", "-o", os.path.join(rootfs, "probe"), str(src)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot link a static probe here (libc6-dev missing?): %s" % p.stderr[-300:])


@pytest.mark.parametrize("default,expected_unknown", [
    ("SCMP_ACT_ERRNO", "-38"),   # above every syscall the profile names: ENOSYS
    ("SCMP_ACT_ALLOW", "-38"),   # allowed through: the kernel's own ENOSYS
])
def test_seccomp_unknown_syscall_gets_enosys(bundle, runtime, tmp_path, default, expected_unknown):
    _static_probe(bundle.rootfs, tmp_path)
    allowed = ["read", "write", "openat", "close", "fstat", "newfstatat", "exit_group", "exit", "execve",
               "brk", "arch_prctl", "mmap", "munmap", "mprotect", "getppid", "set_tid_address",
               "set_robust_list", "rseq", "prlimit64", "readlink", "uname", "getrandom", "futex",
               "rt_sigaction", "rt_sigprocmask", "capget", "capset", "prctl", "setresuid", "setresgid",
               "setgroups", "chdir", "getcwd", "fchown", "ioctl", "lseek", "dup2", "dup3", "fcntl",
               "poll", "getpid", "gettid", "clock_gettime", "pipe2", "wait4", "kill", "memfd_create"]

    def cfg(c):
        c["process"]["args"] = ["/probe"]
        c["process"]["terminal"] = False
        rules = [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        if default != "SCMP_ACT_ALLOW":
            rules.insert(0, {"names": allowed, "action": "SCMP_ACT_ALLOW"})
        c["linux"]["seccomp"] = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
                                 "syscalls": rules}
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    unknown, ppid_ok, unshare = p.stdout.split()
    assert unknown == expected_unknown
    assert ppid_ok == "1"
    assert unshare == "-1"  # EPERM: a named syscall keeps its rule


def test_runcs_mount_flags_are_flags_not_filesystem_data(bundle, runtime):
    """acl, iversion, silent (and their no- forms) are mount flags in runc's
    table; passed on as tmpfs data they made the mount fail."""
    def cfg(c):
        c["mounts"].append({"destination": "/flags", "type": "tmpfs", "source": "tmpfs",
                            "options": ["silent", "acl", "iversion", "noiversion", "loud", "noacl"]})
        c["process"]["args"] = ["sh", "-c", "grep ' /flags ' /proc/self/mountinfo"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert " /flags " in p.stdout


# -- the two validation modes, on real containers ----------------------------

def test_features_says_which_validation_applies(runtime):
    lenient = json.loads(runtime("features").stdout)["annotations"]["io.github.pyrunc.validation"]
    strict = json.loads(runtime("--strict", "features").stdout)["annotations"]["io.github.pyrunc.validation"]
    assert lenient.startswith("runc:") and strict.startswith("strict:")


@pytest.mark.parametrize("value,shared", [("rshared", True), ("rprivate", False), ("rslave", False)])
def test_rootfs_propagation_runc_values_run(bundle, runtime, value, shared):
    """containerd's CRI writes rprivate/rslave/rshared: the container runs,
    with the propagation applied to every mount under its root (the
    recursive flag), and the one warning names the field."""
    def cfg(c):
        c["linux"]["rootfsPropagation"] = value
        c["process"]["args"] = ["sh", "-c", "cat /proc/self/mountinfo"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("level=warning") == 1
    assert 'linux.rootfsPropagation: \\"%s\\" is not a spec value; taken as runc takes it' % value in p.stderr
    tagged = ["shared:" in line for line in p.stdout.splitlines()]
    assert all(tagged) if shared else not any(tagged), p.stdout
    p = runtime("--strict", "run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "linux.rootfsPropagation" in p.stderr and "is not one of" in p.stderr


def test_device_access_rwa_runs_and_means_rw(bundle, runtime, tmp_path):
    import stat

    os.mknod(os.path.join(bundle.rootfs, "testdev"), 0o666 | stat.S_IFCHR, os.makedev(240, 0))

    def cfg(c):
        c["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                              {"allow": True, "type": "c", "major": 240, "minor": 0,
                                               "access": "rwa"}]
        c["process"]["args"] = ["sh", "-c", "cat /testdev"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    # allowed by the cgroup: the open reaches the (absent) driver
    assert "No such device or address" in p.stderr, p.stderr
    assert 'linux.resources.devices[1].access: \\"rwa\\" taken as \\"rw\\"' in p.stderr
    p = runtime("--strict", "run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "linux.resources.devices[1].access" in p.stderr


def test_unknown_capability_dropped_container_runs(bundle, runtime):
    def cfg(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k] = ["CAP_KILL", "CAP_NOT_A_CAPABILITY"]
        c["process"]["args"] = ["sh", "-c", "grep CapBnd /proc/self/status"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.split()[1], 16) == 1 << 5  # CAP_KILL alone
    assert p.stderr.count("ignoring unknown capabilities") == 3
    p = runtime("--strict", "run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "unknown capability" in p.stderr


def test_userns_bind_source_in_a_directory_only_root_may_enter(bundle, runtime):
    """runc opens bind sources before the switch to the user namespace's
    root: a relative source (the bundle's) below a 0700 directory of the
    host's root works, with its options (ro)."""
    from test_userns import HOST_BASE, chown_tree, let_unprivileged_traverse

    let_unprivileged_traverse(bundle.rootfs)
    chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)
    hidden = os.path.join(bundle.path, "source-inaccessible")
    os.makedirs(os.path.join(hidden, "dir"))
    with open(os.path.join(hidden, "dir", "foo.txt"), "w") as f:
        f.write("seen\n")
    os.chmod(hidden, 0o700)

    def cfg(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["mounts"].append({"destination": "/tmp/m1", "source": "source-inaccessible/dir",
                            "options": ["bind", "ro"]})
        c["process"]["args"] = ["sh", "-c", "cat /tmp/m1/foo.txt; touch /tmp/m1/x 2>/dev/null || echo ro"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["seen", "ro"], p.stdout


def test_exec_sees_the_config_as_create_took_it(bundle, runtime):
    """The state directory keeps the config as runc's reading made it: exec
    compiles the container's seccomp filter from it (an errnoRet runc
    ignores must not fail every exec)."""
    def cfg(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]}
    bundle.update(cfg)
    cid = start_sleeper(bundle, runtime)
    p = runtime("exec", cid, "true", check=False)
    assert p.returncode == 0, p.stderr
    assert "level=warning" not in p.stderr  # warned once, at create


def test_relative_mount_destination_is_inside_the_root(bundle, runtime):
    def cfg(c):
        c["mounts"].append({"destination": "scratch", "type": "tmpfs", "source": "tmpfs"})
        c["process"]["args"] = ["sh", "-c", "grep ' /scratch ' /proc/self/mountinfo | cut -d' ' -f5"]
        c["process"]["terminal"] = False
    bundle.update(cfg)
    p = _run(bundle, runtime)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "/scratch"
    assert "is not absolute; taken relative to the container's root" in p.stderr


def test_start_failure_text_is_runcs(bundle, runtime):
    bundle.set_args("no-such-binary")
    p = _run(bundle, runtime)
    assert p.returncode == 1
    assert ('pyrunc run failed: unable to start container process: exec: \\"no-such-binary\\": '
            "executable file not found in $PATH") in p.stderr, p.stderr


@pytest.mark.parametrize("value", ["private", "rprivate"])
def test_no_pivot_refuses_a_private_root_as_runc(bundle, runtime, value):
    bundle.update(lambda c: c["linux"].update(rootfsPropagation=value))
    bundle.set_args("true")
    cid = runtime.new_id()
    p = runtime("run", "--no-pivot", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1
    assert "linux.rootfsPropagation: %s is not safe without pivot_root" % value in p.stderr
    assert runtime("state", cid, check=False).returncode == 1  # nothing made
    assert runtime("run", "-b", bundle.path, runtime.new_id()).returncode == 0  # with pivot_root: fine
