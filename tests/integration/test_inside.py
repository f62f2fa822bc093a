"""What the container sees, read from inside it (never pyrunc's word)."""
import os

import pytest

from conftest import needs_root

pytestmark = needs_root

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def run_inside(runtime, bundle, script):
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout


def mask(names):
    return sum(1 << CAP_NAMES.index(n) for n in names)


def test_namespaces_differ_from_host(bundle, runtime):
    def cfg(c):
        c["linux"]["namespaces"] = [{"type": t} for t in
                                    ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    bundle.update(cfg)
    out = run_inside(runtime, bundle, "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done")
    inside = dict(line.split() for line in out.splitlines())
    for ns in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert inside[ns] != os.readlink("/proc/self/ns/" + ns), ns
    # not asked for: shared with the host
    assert inside["user"] == os.readlink("/proc/self/ns/user")


def test_pid_one_and_hostname(bundle, runtime):
    bundle.update(lambda c: c.update(hostname="box-7", domainname="example.test"))
    out = run_inside(runtime, bundle, "echo $$; hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["1", "box-7", "example.test"]


def test_root_is_bundle_rootfs(bundle, runtime):
    with open(os.path.join(bundle.rootfs, "marker"), "w") as f:
        f.write("in-rootfs")
    out = run_inside(runtime, bundle, "cat /marker; echo; grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo")
    marker, mountinfo = out.split("\n", 1)
    assert marker == "in-rootfs"
    fields = mountinfo.split()
    assert fields[3] == os.path.realpath(bundle.rootfs)  # the mount's source path on the host fs
    assert "ro" in fields[5].split(",")  # root.readonly is true in the default spec


def test_masked_and_readonly_paths(bundle, runtime):
    def cfg(c):
        c["linux"]["maskedPaths"] = ["/proc/cpuinfo", "/proc/acpi", "/etc/secret", "/proc/no-such-file"]
        c["linux"]["readonlyPaths"] = ["/proc/sys", "/tmp/ro"]
        c["root"]["readonly"] = False
    bundle.update(cfg)
    os.makedirs(os.path.join(bundle.rootfs, "tmp", "ro"))
    with open(os.path.join(bundle.rootfs, "etc", "secret"), "w") as f:
        f.write("top secret")
    out = run_inside(runtime, bundle, """
        echo cpuinfo=$(wc -c < /proc/cpuinfo)
        echo secret=[$(cat /etc/secret)]
        echo acpi=$(ls -A /proc/acpi | wc -l)
        touch /tmp/ro/x 2>&1 | grep -q 'Read-only' && echo ro-tmp=EROFS
        echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro-sys=refused
        grep -E ' /proc/sys ' /proc/self/mountinfo | grep -q ' ro,' && echo sys-mount=ro
        touch /tmp/rw && echo rw-ok
    """)
    assert "cpuinfo=0" in out
    assert os.path.getsize("/proc/cpuinfo") == 0 and open("/proc/cpuinfo").read()  # host's is not empty
    assert "secret=[]" in out
    assert "acpi=0" in out
    assert "ro-tmp=EROFS" in out
    assert "ro-sys=refused" in out and "sys-mount=ro" in out
    assert "rw-ok" in out


def test_capabilities_equal_config(bundle, runtime):
    sets = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }

    def cfg(c):
        c["process"]["capabilities"] = sets
        c["process"]["noNewPrivileges"] = True
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.update(cfg)
    out = run_inside(runtime, bundle, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status")
    status = dict(line.split(":\t") for line in out.splitlines())
    # A non-root process after execve (busybox has no file caps): permitted
    # and effective are exactly the ambient set the runtime raised.
    assert int(status["CapBnd"], 16) == mask(sets["bounding"])
    assert int(status["CapInh"], 16) == mask(sets["inheritable"])
    assert int(status["CapAmb"], 16) == mask(sets["ambient"])
    assert int(status["CapPrm"], 16) == mask(sets["ambient"])
    assert int(status["CapEff"], 16) == mask(sets["ambient"])
    assert status["NoNewPrivs"] == "1"


def test_capabilities_as_root_keep_permitted(bundle, runtime):
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL"]

    def cfg(c):
        c["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    bundle.update(cfg)
    out = run_inside(runtime, bundle, "grep -E '^Cap' /proc/self/status")
    status = dict(line.split(":\t") for line in out.splitlines())
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert int(status[key], 16) == mask(caps), key
    assert int(status["CapInh"], 16) == 0  # never filled unless asked (CVE-2022-29162)


def test_user_groups_cwd_env_umask_rlimits(bundle, runtime):
    os.makedirs(os.path.join(bundle.rootfs, "work", "dir"))

    def cfg(c):
        p = c["process"]
        p["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [3456, 4567], "umask": 0o027}
        p["cwd"] = "/work/dir"
        p["env"] = ["PATH=/bin", "GREETING=hello world", "EMPTY="]
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                        {"type": "RLIMIT_NPROC", "soft": 111, "hard": 222}]
    bundle.update(cfg)
    out = run_inside(runtime, bundle, """
        echo uid=$(id -u) gid=$(id -g) groups=$(id -G)
        echo cwd=$(pwd)
        echo "greeting=$GREETING" empty=[$EMPTY] home=$HOME
        echo umask=$(umask)
        echo nofile=$(ulimit -n) $(ulimit -Hn)
        grep 'Max processes' /proc/self/limits
    """)
    assert "uid=1234 gid=2345" in out
    groups = out.split("groups=")[1].split("\n")[0].split()
    assert sorted(groups) == sorted(["2345", "3456", "4567"])
    assert "cwd=/work/dir" in out
    assert "greeting=hello world empty=[]" in out
    assert "home=/" in out
    assert "umask=0027" in out
    assert "nofile=321 654" in out
    limits = out.split("Max processes")[1].split()
    assert limits[:2] == ["111", "222"]


def test_devices_and_dev_symlinks(bundle, runtime):
    def cfg(c):
        c["linux"]["devices"] = [{"path": "/dev/fuse-like", "type": "c", "major": 1, "minor": 3,
                                  "fileMode": 0o640, "uid": 0, "gid": 0}]
    bundle.update(cfg)
    out = run_inside(runtime, bundle, """
        for d in null zero full random urandom tty fuse-like; do stat -c "%n %t:%T %a" /dev/$d; done
        for l in fd stdin stdout stderr ptmx; do echo "$l -> $(readlink /dev/$l)"; done
        echo hi > /dev/null && echo null-ok
    """)
    assert "/dev/null 1:3 666" in out
    assert "/dev/zero 1:5 666" in out
    assert "/dev/tty 5:0 666" in out
    assert "/dev/fuse-like 1:3 640" in out
    assert "fd -> /proc/self/fd" in out and "stdin -> /proc/self/fd/0" in out
    assert "ptmx -> pts/ptmx" in out
    assert "null-ok" in out


def test_mount_options_and_propagation(bundle, runtime, tmp_path):
    src = tmp_path / "shared-src"
    src.mkdir()
    (src / "file").write_text("from host")

    def cfg(c):
        c["root"]["readonly"] = False
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(src),
                            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]})
        c["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["noexec", "size=1m", "mode=700"]})
    bundle.update(cfg)
    out = run_inside(runtime, bundle, """
        cat /data/file; echo
        grep ' /data ' /proc/self/mountinfo
        grep ' /scratch ' /proc/self/mountinfo
        stat -c '%a' /scratch
        touch /data/x 2>/dev/null || echo data-ro
    """)
    assert out.startswith("from host\n")
    data_line = [line for line in out.splitlines() if " /data " in line][0]
    opts = data_line.split()[5].split(",")
    assert "ro" in opts and "nosuid" in opts and "nodev" in opts
    scratch = [line for line in out.splitlines() if " /scratch " in line][0]
    assert "noexec" in scratch.split()[5].split(",") and "size=1024k" in scratch
    assert "\n700\n" in out
    assert "data-ro" in out


def test_sysctl(bundle, runtime):
    bundle.update(lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}))
    out = run_inside(runtime, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni")
    assert out.split() == ["1", "1234"]


def test_stdio_is_callers(bundle, runtime):
    bundle.set_args("sh", "-c", "read line; echo got:$line")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), input="abc\n")
    assert p.stdout == "got:abc\n"
