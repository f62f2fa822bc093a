"""Every path from the bundle is resolved inside the rootfs, symlinks
included (CVE-2021-30465 / CVE-2019-16884 / CVE-2023-27561 classes)."""
import os

import pytest

from conftest import needs_root

pytestmark = needs_root


def test_symlinked_mount_destination_stays_inside(bundle, runtime, tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("mounted")
    # /escape inside the rootfs points (absolutely and relatively) outside it
    os.symlink(str(host_dir), os.path.join(bundle.rootfs, "escape-abs"))
    os.symlink("../../../../../../../../" + str(host_dir).lstrip("/"), os.path.join(bundle.rootfs, "escape-rel"))

    def cfg(c):
        c["root"]["readonly"] = False
        for name in ("escape-abs", "escape-rel"):
            c["mounts"].append({"destination": "/%s/sub" % name, "type": "bind",
                                "source": str(src), "options": ["bind"]})
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "cat /escape-abs/sub/payload; cat /escape-rel/sub/payload")
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "mountedmounted"
    # the symlinks were followed *inside* the rootfs: the host dir is untouched
    assert os.listdir(host_dir) == []
    assert os.path.isdir(os.path.join(bundle.rootfs, str(host_dir).lstrip("/"), "sub"))


def test_proc_on_a_symlink_is_refused(bundle, runtime):
    """CVE-2019-16884 / CVE-2023-27561 / CVE-2023-28642 classes: an image
    whose /proc is a symlink must not get procfs (and the LSM writes made
    through it) somewhere else."""
    os.rmdir(os.path.join(bundle.rootfs, "proc"))
    os.symlink("/etc", os.path.join(bundle.rootfs, "proc"))
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1
    assert "/proc" in p.stderr and "real directory" in p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_cwd_resolved_inside_container(bundle, runtime, tmp_path):
    # a cwd that is a symlink to a host path resolves inside the container root
    os.symlink("/etc", os.path.join(bundle.rootfs, "workdir"))
    with open(os.path.join(bundle.rootfs, "etc", "inside-marker"), "w") as f:
        f.write("x")
    bundle.update(lambda c: c["process"].update(cwd="/workdir"))
    bundle.set_args("sh", "-c", "ls inside-marker && ls /proc/self/fd | wc -l")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0] == "inside-marker"


def test_no_runtime_fd_reaches_the_container(bundle, runtime):
    """Only stdio (and the fd ls itself opens for the listing) are open
    inside: no state-dir lock, fifo, sync pipe or the caller's extra fds
    (CVE-2024-21626 class)."""
    bundle.set_args("sh", "-c", "exec ls /proc/self/fd/")
    extra = os.open("/dev/null", os.O_RDONLY)  # an inheritable fd in the caller
    os.set_inheritable(extra, True)
    try:
        p = runtime("run", "-b", bundle.path, runtime.new_id(), close_fds=False, check=False)
    finally:
        os.close(extra)
    assert p.returncode == 0, p.stderr
    fds = sorted(int(x) for x in p.stdout.split())
    assert fds == [0, 1, 2, 3], p.stdout  # 3 is ls's own handle on /proc/self/fd


def test_cve_2019_5736_proc_self_exe_refused(bundle, runtime):
    """The container may not run the runtime's own binary (the host's
    Python, which the init is) via /proc/self/exe, directly or as a
    script's interpreter: it could reopen and overwrite it on the host."""
    with open(os.path.join(bundle.rootfs, "evil.sh"), "w") as f:
        f.write("#!/proc/self/exe\nprint('host interpreter ran')\n")
    os.chmod(os.path.join(bundle.rootfs, "evil.sh"), 0o755)
    for args in (["/proc/self/exe", "-c", "print('host interpreter ran')"], ["/evil.sh"]):
        bundle.set_args(*args)
        p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
        assert p.returncode != 0
        assert "host interpreter ran" not in p.stdout
        assert "CVE-2019-5736" in p.stderr


def test_runtime_is_not_dumpable_while_creating(bundle, runtime, tmp_path):
    """The runtime is non-dumpable before it joins the container (CVE-2019-5736
    class).  Probe: /proc/<pid>/* of a dumpable process belong to its
    euid/egid, of a non-dumpable one to root.  The runtime runs with
    egid 1234, and a createRuntime hook (its child, while create waits)
    reads the group of /proc/$PPID/environ."""
    import subprocess

    control = subprocess.Popen(["setpriv", "--regid", "1234", "--clear-groups", "sleep", "30"])
    try:
        import time
        for _ in range(100):  # until setpriv has exec'd sleep
            if open("/proc/%d/cmdline" % control.pid, "rb").read().startswith(b"sleep"):
                break
            time.sleep(0.01)
        assert os.stat("/proc/%d/environ" % control.pid).st_gid == 1234  # the probe can tell
    finally:
        control.kill()
        control.wait()
    out = tmp_path / "group"
    bundle.update(lambda c: c.setdefault("hooks", {}).update(createRuntime=[
        {"path": "/bin/sh", "args": ["sh", "-c", "stat -c %%g /proc/$PPID/environ > %s" % out]}]))
    cid = runtime.new_id()
    err = tmp_path / "stderr"
    with open(err, "w") as f:  # not a pipe: the created init keeps our stdio
        p = subprocess.run(["setpriv", "--regid", "1234", "--clear-groups"] + runtime.cmd("create", "-b", bundle.path, cid),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    assert p.returncode == 0, err.read_text()
    runtime("delete", "--force", cid)
    assert out.read_text().strip() == "0"


def test_mount_over_a_pinned_procfs_parent_is_the_configs_own(bundle, runtime):
    """A proc mount at /run/proc, then a tmpfs at /run (hiding it): a valid
    config, not a swapped destination -- the pin on /run/proc is dropped,
    and the container's own /proc still gets its masks."""
    def cfg(c):
        c["mounts"].append({"destination": "/run/proc", "type": "proc", "source": "proc"})
        c["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs"})
        c["linux"]["maskedPaths"] = ["/proc/cmdline"]
        c["linux"]["readonlyPaths"] = ["/proc/sys"]
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "ls /run | wc -l; stat -c %t:%T /proc/cmdline; "
                                "grep -c ' /proc/sys ro,' /proc/self/mountinfo")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1:3", "1"], (p.stdout, p.stderr)


def test_proc_renamed_away_after_mount_is_refused(bundle, runtime, tmp_path):
    """CVE-2019-16884 / CVE-2021-30465 class: the directory proc was mounted
    on is renamed away, and a plain directory put in its place, after the
    mount and before pivot_root (a createRuntime hook stands in for a
    racing process sharing the rootfs).  The container must not start with
    a /proc that is not procfs and the real one under another name: create
    fails.  Seen to pass (the container ran with an empty /proc) with
    RootfsBuilder.check_pinned's `if not same` made `if False`."""
    rootfs = bundle.rootfs
    swap = "mv %s/proc %s/proc-moved && mkdir %s/proc" % (rootfs, rootfs, rootfs)
    bundle.update(lambda c: c.setdefault("hooks", {}).update(createRuntime=[
        {"path": "/bin/sh", "args": ["sh", "-c", swap]}]))
    bundle.set_args("sh", "-c", "test -e /proc/self/stat && echo procfs || echo NOT-PROCFS")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert os.path.isdir(os.path.join(rootfs, "proc-moved"))  # the swap happened
    assert "NOT-PROCFS" not in p.stdout
    assert p.returncode != 0 and "replaced after it was mounted" in p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("mount,message", [
    ({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}, "mounts under /proc are refused"),
    ({"destination": "/proc/self/attr/exec", "type": "bind", "source": "/etc/hostname", "options": ["bind"]},
     "mounts under /proc are refused"),
    ({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}, "it is not a procfs"),
])
def test_mounts_over_proc_are_refused(bundle, runtime, mount, message):
    """CVE-2019-19921 class: a config mount over /proc/sys or attr/ would
    cover what the kernel shows and the runtime writes (labels, sysctls,
    masks).  Refused before anything is made, as runc does."""
    bundle.update(lambda c: c["mounts"].append(mount))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1 and message in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))


def test_lxcfs_style_proc_files_may_be_mounted(bundle, runtime, tmp_path):
    """The few files lxcfs emulates (/proc/meminfo, /proc/uptime, ...) may
    be bound over: seen from inside."""
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal: 42 kB\n")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/proc/meminfo", "type": "bind", "source": str(fake), "options": ["bind", "ro"]}))
    bundle.set_args("cat", "/proc/meminfo")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "MemTotal: 42 kB\n"
