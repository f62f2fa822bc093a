"""`exec` into running containers, checked from inside and from the host:
the init's namespaces (user, time and cgroup included), its cgroup, the
process's own capabilities/user/env/cwd, exit codes and runc's messages,
--detach --pid-file, paused/stopped containers."""
import json
import os
import time

import pytest

from conftest import needs_root

pytestmark = needs_root

NS_FILES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
HOST_BASE = 300000


def start_sleeper(bundle, runtime, extra=None):
    bundle.set_args("sleep", "1000")
    if extra is not None:
        bundle.update(extra)
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    return cid, runtime.state(cid)["pid"]


def host_ns(pid):
    return {n: os.readlink("/proc/%d/ns/%s" % (pid, n)) for n in NS_FILES}


def ns_script():
    return "for n in %s; do echo $n $(readlink /proc/self/ns/$n); done" % " ".join(NS_FILES)


def parse_ns(out):
    return dict(line.split(" ", 1) for line in out.strip().split("\n"))


def test_exec_joins_every_namespace_of_the_init(bundle, runtime):
    def with_cgroupns(c):  # `spec` has one only on a cgroup v2 host (runc)
        if {"type": "cgroup"} not in c["linux"]["namespaces"]:
            c["linux"]["namespaces"].append({"type": "cgroup"})
    cid, pid = start_sleeper(bundle, runtime, with_cgroupns)
    p = runtime("exec", cid, "sh", "-c", ns_script())
    inside = parse_ns(p.stdout)
    assert inside == host_ns(pid)
    # and they are the container's own, not ours
    mine = host_ns(os.getpid())
    for n in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert inside[n] != mine[n], n


def test_exec_joins_user_namespace(bundle, runtime):
    from test_userns import chown_tree, let_unprivileged_traverse

    let_unprivileged_traverse(bundle.rootfs)
    chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)

    def cfg(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    cid, pid = start_sleeper(bundle, runtime, cfg)
    p = runtime("exec", cid, "sh", "-c", ns_script() + "; cat /proc/self/uid_map; id -u")
    lines = p.stdout.strip().split("\n")
    inside = parse_ns("\n".join(lines[:len(NS_FILES)]))
    assert inside == host_ns(pid)
    assert inside["user"] != os.readlink("/proc/self/ns/user")
    assert lines[len(NS_FILES)].split() == ["0", str(HOST_BASE), "65536"]
    assert lines[len(NS_FILES) + 1] == "0"


def test_exec_joins_time_namespace(bundle, runtime):
    def cfg(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 1000, "nanosecs": 0}}
    cid, pid = start_sleeper(bundle, runtime, cfg)
    p = runtime("exec", cid, "sh", "-c", ns_script() + "; cat /proc/uptime")
    lines = p.stdout.strip().split("\n")
    inside = parse_ns("\n".join(lines[:len(NS_FILES)]))
    assert inside == host_ns(pid)
    assert inside["time"] != os.readlink("/proc/self/ns/time")
    # the boot-time clock (and so /proc/uptime) carries the container's offset
    assert float(lines[len(NS_FILES)].split()[0]) > 86400 * 1000


def test_exec_process_is_in_the_container_cgroup(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime)
    pidfile = tmp_path / "exec.pid"
    runtime("exec", "--detach", "--pid-file", str(pidfile), cid, "sleep", "100")
    epid = int(pidfile.read_text())
    with open("/proc/%d/cgroup" % pid) as f:
        init_cg = f.read()
    with open("/proc/%d/cgroup" % epid) as f:
        exec_cg = f.read()
    assert exec_cg == init_cg
    assert "pyrunc-test" in init_cg
    # and the cgroup lists it
    ps = runtime("ps", "--format", "json", cid)
    assert epid in json.loads(ps.stdout)


def test_detach_pid_file_is_the_exec_process(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime)
    pidfile = tmp_path / "sub" / "exec.pid"
    pidfile.parent.mkdir()
    t0 = time.monotonic()
    runtime("exec", "-d", "--pid-file", str(pidfile), cid, "sleep", "321")
    assert time.monotonic() - t0 < 20
    text = pidfile.read_text()
    assert text.isdigit()  # bare number, no newline (runc's format)
    epid = int(text)
    with open("/proc/%d/cmdline" % epid, "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"321"]
    assert os.readlink("/proc/%d/ns/pid" % epid) == os.readlink("/proc/%d/ns/pid" % pid)
    assert os.readlink("/proc/%d/ns/mnt" % epid) == os.readlink("/proc/%d/ns/mnt" % pid)
    # pid inside the container's pid namespace: not 1, and not the host pid
    with open("/proc/%d/status" % epid) as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert nspid[0] == str(epid) and len(nspid) == 2 and nspid[1] != "1"


def cap_eff(out):
    for line in out.split("\n"):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(out)


def test_caps_from_process_json(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime)
    proc = {"args": ["sh", "-c", "grep Cap /proc/self/status"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"],
                             "permitted": ["CAP_SYS_ADMIN"]}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    out = runtime("exec", "--process", str(path), cid).stdout
    # root's execve refills effective from the bounding set: the process's own
    assert cap_eff(out) == (1 << 5) | (1 << 21)
    assert "CapBnd:\t%016x" % ((1 << 5) | (1 << 21)) in out
    # the init keeps the config's own set
    with open("/proc/%d/status" % pid) as f:
        assert cap_eff(f.read()) == (1 << 29) | (1 << 5) | (1 << 10)


def test_user_env_cwd_rlimits_from_process_json(bundle, runtime, tmp_path):
    cid, _ = start_sleeper(bundle, runtime)
    proc = {
        "args": ["sh", "-c", "grep Cap /proc/self/status; id -u; id -g; id -G; echo $FOO; pwd; "
                 "grep NoNewPrivs /proc/self/status; ulimit -n"],
        "cwd": "/tmp", "env": ["PATH=/bin", "FOO=from-process-json"],
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [1002]},
        # a non-root user keeps capabilities across execve only as ambient ones
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                         "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}],
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    p = runtime("exec", "--process", str(path), cid)
    out = p.stdout
    assert cap_eff(out) == 1 << 5  # CAP_KILL only
    lines = [x for x in out.split("\n") if x and not x.startswith("Cap")]
    assert lines[0:3] == ["1000", "1001", "1001 1002"]
    assert lines[3] == "from-process-json"
    assert lines[4] == "/tmp"
    assert lines[5].split() == ["NoNewPrivs:", "1"]
    assert lines[6] == "123"


def test_args_form_flags(bundle, runtime):
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", "--cap", "CAP_SYS_ADMIN", "-e", "BAR=baz", "--cwd", "/etc",
                cid, "sh", "-c", "grep CapEff /proc/self/status; echo $BAR; pwd")
    lines = p.stdout.strip().split("\n")
    eff = int(lines[0].split()[1], 16)
    assert eff & (1 << 21)  # the added CAP_SYS_ADMIN
    assert eff & (1 << 5)  # the config's CAP_KILL is kept
    assert lines[1:] == ["baz", "/etc"]
    p = runtime("exec", "-u", "65534:65534", "-g", "7", cid, "sh", "-c", "id -u; id -G; grep CapEff /proc/self/status")
    lines = p.stdout.strip().split("\n")
    assert lines[:2] == ["65534", "65534 7"]
    assert int(lines[2].split()[1], 16) == 0


@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 1", 1), ("kill -9 $$", 137), ("exit 42", 42)])
def test_exit_codes(bundle, runtime, script, code):
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", cid, "sh", "-c", script, check=False)
    assert p.returncode == code, p.stderr


def test_missing_executable_255(bundle, runtime):
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", cid, "nope", check=False)
    assert p.returncode == 255
    assert 'exec: "nope": executable file not found in $PATH' in p.stderr.replace('\\"', '"')
    assert len(p.stderr.strip().split("\n")) == 1


def test_not_executable_255(bundle, runtime):
    with open(os.path.join(bundle.rootfs, "notexec"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(bundle.rootfs, "notexec"), 0o644)
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", cid, "/notexec", check=False)
    assert p.returncode == 255, p.stderr
    assert 'exec: "/notexec": permission denied' in p.stderr.replace('\\"', '"')


def test_stopped_and_paused(bundle, runtime):
    cid, pid = start_sleeper(bundle, runtime)
    runtime("pause", cid)
    p = runtime("exec", cid, "true", check=False)
    assert p.returncode == 255
    assert "cannot exec in a paused container (use --ignore-paused to override)" in p.stderr
    runtime("resume", cid)
    runtime("kill", cid, "KILL")
    for _ in range(100):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    p = runtime("exec", cid, "true", check=False)
    assert p.returncode == 255
    assert "cannot exec in a stopped container" in p.stderr


def test_ignore_paused_runs_after_resume(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime, lambda c: c["root"].update(readonly=False))
    marker = os.path.join(bundle.rootfs, "tmp", "ran")
    runtime("pause", cid)
    import subprocess

    proc = subprocess.Popen(runtime.cmd("exec", "--ignore-paused", cid, "touch", "/tmp/ran"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        assert not os.path.exists(marker)  # frozen with the rest of the container
        runtime("resume", cid)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert os.path.exists(marker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



def test_exec_cgroup_outside_the_container_is_refused(bundle, runtime):
    """--cgroup names a sub-cgroup of the container's: a path climbing out
    of it ("../..", the host's cgroup root here) is refused, never joined
    (the process would escape the container's limits).  Seen to pass
    (the process ran in the host's root cgroup) with execute._sub_dir's
    inside-the-base check made `if False`."""
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", "--cgroup", "../..", cid, "cat", "/proc/self/cgroup", check=False)
    assert p.returncode == 255 and "is not a sub cgroup path" in p.stderr, p.stdout + p.stderr


def test_exec_runtime_is_not_dumpable_in_the_container(bundle, runtime):
    """CVE-2019-5736 / CVE-2016-9962 classes: the exec child is the runtime
    (host Python) until execve, inside the container's cgroup and
    namespaces; it must not be
    dumpable (ptrace-able, /proc/<pid>/exe readable).  Probe as in
    test_runtime_is_not_dumpable_while_creating: /proc/<pid>/* of a
    dumpable process belong to its egid (1234 here), of a non-dumpable one
    to root.  The container is paused, so the child freezes right after
    joining its cgroup, before execve.  Seen to fail with spawn()'s
    set_dumpable(False) removed."""
    import subprocess

    cid, _ = start_sleeper(bundle, runtime)
    runtime("pause", cid)
    proc = subprocess.Popen(["setpriv", "--regid", "1234", "--clear-groups"]
                            + runtime.cmd("exec", "--ignore-paused", cid, "true"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        children = ""
        for _ in range(200):  # until pyrunc (setpriv exec'd it: same pid) forked its child
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                children = f.read().split()
            if children:
                break
            time.sleep(0.02)
        assert children, "the exec never forked its child"
        time.sleep(0.2)  # joined the frozen cgroup by now
        child = int(children[0])
        with open("/proc/%d/cmdline" % child, "rb") as f:
            assert b"pyrunc" in f.read()  # still the runtime, not yet the process
        assert os.stat("/proc/%d/environ" % child).st_gid == 0
    finally:
        runtime("resume", cid)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

def test_tty_rules(bundle, runtime):
    cid, _ = start_sleeper(bundle, runtime)
    p = runtime("exec", "-d", "-t", cid, "true", check=False)
    assert p.returncode == 255
    assert "cannot allocate tty if pyrunc will detach without setting console socket" in p.stderr
    p = runtime("exec", "--console-socket", "/nonexistent.sock", cid, "true", check=False)
    assert p.returncode == 255
    assert "cannot use console socket if pyrunc will not detach or allocate tty" in p.stderr


def test_empty_args_and_bad_process_file(bundle, runtime, tmp_path):
    cid, _ = start_sleeper(bundle, runtime)
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": [], "cwd": "/"}))
    p = runtime("exec", "--process", str(path), cid, check=False)
    assert p.returncode != 0 and "args" in p.stderr
    path.write_text(json.dumps({"args": ["true"], "cwd": "relative"}))
    p = runtime("exec", "--process", str(path), cid, check=False)
    assert p.returncode != 0 and "cwd" in p.stderr


def test_exec_process_gets_no_runtime_fds(bundle, runtime):
    cid, _ = start_sleeper(bundle, runtime)
    # the shell's own fds, listed by a child: exactly stdio
    p = runtime("exec", cid, "sh", "-c", "ls /proc/$$/fd; true")
    assert p.stdout.split() == ["0", "1", "2"]


def test_cgroup_sub_cgroup_v1(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime)
    with open("/proc/%d/cgroup" % pid) as f:
        pids_line = [x for x in f.read().split("\n") if ":pids:" in x]
    if not pids_line:
        pytest.skip("no cgroup v1 pids hierarchy on this host")
    base = "/sys/fs/cgroup/pids" + pids_line[0].split(":", 2)[2]
    sub = os.path.join(base, "sub")
    os.mkdir(sub)
    try:
        pidfile = tmp_path / "p"
        runtime("exec", "-d", "--pid-file", str(pidfile), "--cgroup", "pids:sub", cid, "sleep", "50")
        epid = int(pidfile.read_text())
        with open("/proc/%d/cgroup" % epid) as f:
            lines = f.read().split("\n")
        assert [x for x in lines if ":pids:" in x][0].endswith("/sub")
        mem = [x for x in lines if ":memory:" in x]
        if mem:
            assert not mem[0].endswith("/sub")
        p = runtime("exec", "--cgroup", "pids:nope", cid, "true", check=False)
        assert p.returncode == 255 and "adding pid to cgroups:" in p.stderr and "/nope/cgroup.procs: no such file or directory" in p.stderr
    finally:
        runtime("kill", "--all", cid, "KILL", check=False)
        for _ in range(100):
            try:
                os.rmdir(sub)
                break
            except OSError:
                time.sleep(0.05)


def test_exec_gets_the_containers_seccomp_filter(bundle, runtime, tmp_path):
    def cfg(c):
        c["root"]["readonly"] = False
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    cid, _ = start_sleeper(bundle, runtime, cfg)
    script = "mkdir /tmp/x 2>/dev/null; echo rc=$?; grep '^Seccomp:' /proc/self/status"
    # without no_new_privs the filter goes in before the caps are dropped,
    # with it just before execve: both paths filter
    for nnp in (False, True):
        path = tmp_path / ("p%d.json" % nnp)
        path.write_text(json.dumps({"args": ["sh", "-c", script], "cwd": "/", "noNewPrivileges": nnp,
                                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                                     "permitted": ["CAP_KILL"]}}))
        out = runtime("exec", "--process", str(path), cid).stdout.split("\n")
        assert out[0] == "rc=1", nnp
        assert out[1].split() == ["Seccomp:", "2"], nnp
    out = runtime("exec", cid, "sh", "-c", "mkdir /tmp/y; echo rc=$?").stdout
    assert "rc=1" in out
    assert not os.path.exists(os.path.join(bundle.rootfs, "tmp", "y"))


def test_cgroup_sub_cgroup_v2(bundle, runtime, tmp_path):
    cid, pid = start_sleeper(bundle, runtime)
    with open("/proc/%d/cgroup" % pid) as f:
        lines = f.read().split("\n")
    if not any(x.startswith("0::") for x in lines) or any(":pids:" in x or ":memory:" in x for x in lines):
        pytest.skip("the container's cgroup is not on a pure cgroup v2 host here")
    base = "/sys/fs/cgroup" + [x for x in lines if x.startswith("0::")][0][3:]
    sub = os.path.join(base, "sub")
    os.mkdir(sub)
    try:
        pidfile = tmp_path / "p"
        runtime("exec", "-d", "--pid-file", str(pidfile), "--cgroup", "sub", cid, "sleep", "50")
        epid = int(pidfile.read_text())
        with open("/proc/%d/cgroup" % epid) as f:
            assert f.read().strip().endswith("/sub")
        p = runtime("exec", "--cgroup", "memory:sub", cid, "true", check=False)
        assert p.returncode == 255 and "cgroup v1" in p.stderr
    finally:
        runtime("kill", "--all", cid, "KILL", check=False)
        for _ in range(100):
            try:
                os.rmdir(sub)
                break
            except OSError:
                time.sleep(0.05)


def test_exec_in_container_sharing_host_namespaces(bundle, runtime):
    """Namespaces the container shares with the host are not re-joined
    (joining one's own user namespace is an error); the rest are."""
    def cfg(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] not in ("pid", "network")]
    cid, pid = start_sleeper(bundle, runtime, cfg)
    inside = parse_ns(runtime("exec", cid, "sh", "-c", ns_script()).stdout)
    assert inside == host_ns(pid)
    mine = host_ns(os.getpid())
    assert inside["pid"] == mine["pid"] and inside["net"] == mine["net"]
    assert inside["mnt"] != mine["mnt"]


def test_exec_in_created_container(bundle, runtime):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    p = runtime("exec", cid, "sh", "-c", "echo in-created; readlink /proc/self/ns/mnt")
    lines = p.stdout.split("\n")
    assert lines[0] == "in-created"
    assert lines[1] == os.readlink("/proc/%d/ns/mnt" % runtime.state(cid)["pid"])
    assert runtime.state(cid)["status"] == "created"


def test_exec_joins_user_and_time_namespaces_together(bundle, runtime):
    """Both at once: the offsets are written while stage 1 still has the
    host root's fsuid (it is not dumpable, /proc/self is root's)."""
    from test_userns import chown_tree, let_unprivileged_traverse

    let_unprivileged_traverse(bundle.rootfs)
    chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)

    def cfg(c):
        c["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 1000, "nanosecs": 0}}
    cid, pid = start_sleeper(bundle, runtime, cfg)
    p = runtime("exec", cid, "sh", "-c", ns_script() + "; id -u; cat /proc/uptime")
    lines = p.stdout.strip().split("\n")
    inside = parse_ns("\n".join(lines[:len(NS_FILES)]))
    assert inside == host_ns(pid)
    assert inside["user"] != os.readlink("/proc/self/ns/user")
    assert inside["time"] != os.readlink("/proc/self/ns/time")
    assert lines[len(NS_FILES)] == "0"
    assert float(lines[len(NS_FILES) + 1].split()[0]) > 86400 * 1000
