"""Shared fixtures.

Integration tests run real containers with the installed `pyrunc` launcher
(the one beside this interpreter), each test under its own `--root` so
nothing touches /run/pyrunc, and check results from inside the container.
"""
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

BIN_DIR = os.path.dirname(sys.executable)
PYRUNC = os.path.join(BIN_DIR, "pyrunc")
BUSYBOX_APPLETS = (
    "sh", "true", "false", "echo", "cat", "ls", "sleep", "id", "hostname",
    "mount", "grep", "stat", "touch", "env", "pwd", "test", "readlink",
    "ps", "kill", "wc", "head", "umask", "ip", "nc", "httpd", "ping", "stty",
    "mkdir", "rm", "dd", "seq", "uname", "domainname", "ulimit", "netstat",
    "chown", "chmod", "tr", "awk", "sed", "cut", "sort", "tail", "nsenter", "unshare", "printf", "date",
)


def is_root():
    return os.geteuid() == 0


def find_busybox():
    path = os.environ.get("PYRUNC_TEST_BUSYBOX") or shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        head = f.read(4096)
    # A dynamically linked busybox would need the host's libc in the rootfs.
    if b"ld-linux" in head or b"/lib64/ld" in head:
        return None
    return path


needs_root = pytest.mark.skipif(not is_root(), reason="integration test: needs root (real namespaces, mounts, cgroups)")


def make_rootfs(rootfs):
    """A minimal busybox root filesystem."""
    busybox = find_busybox()
    if busybox is None:
        pytest.skip("no static busybox on this host (apt-get install busybox-static or set PYRUNC_TEST_BUSYBOX)")
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root", "run"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


class Bundle:
    """An OCI bundle in a temp dir with a config made by `pyrunc spec`."""

    def __init__(self, path):
        self.path = str(path)
        self.rootfs = os.path.join(self.path, "rootfs")
        self.config_path = os.path.join(self.path, "config.json")

    @property
    def config(self):
        with open(self.config_path) as f:
            return json.load(f)

    def write_config(self, cfg):
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def update(self, fn):
        cfg = self.config
        fn(cfg)
        self.write_config(cfg)
        return cfg

    def set_args(self, *args):
        def f(cfg):
            cfg["process"]["args"] = list(args)
            cfg["process"]["terminal"] = False
        return self.update(f)


class Runtime:
    """Runs the pyrunc CLI under a private --root."""

    def __init__(self, root, binary=PYRUNC):
        self.root = str(root)
        self.binary = binary
        self.made = []

    def cmd(self, *args):
        return [self.binary, "--root", self.root, *args]

    def __call__(self, *args, check=True, input=None, timeout=60, **kw):
        """Run pyrunc; output is captured through files, not pipes: a created
        container keeps the caller's stdio open (runc's pass-through), so a
        pipe would never reach EOF."""
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            if input is None:
                kw.setdefault("stdin", subprocess.DEVNULL)
            p = subprocess.run(self.cmd(*args), input=input.encode() if input is not None else None,
                               timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            p.stdout = out.read().decode(errors="replace")
            p.stderr = err.read().decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError("pyrunc %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def state(self, cid):
        return json.loads(self("state", cid).stdout)

    def new_id(self):
        cid = "t" + uuid.uuid4().hex[:12]
        self.made.append(cid)
        return cid

    def cleanup(self):
        for cid in self.made:
            subprocess.run(self.cmd("delete", "--force", cid), capture_output=True, timeout=60)


# Every test container's cgroup lives under this parent (never under the
# caller's own cgroup, which on this host belongs to somebody else).
TEST_CGROUP_PARENT = "/pyrunc-test-%d" % os.getpid()


def _remove_test_cgroup_parent():
    import glob

    for path in glob.glob("/sys/fs/cgroup/*%s" % TEST_CGROUP_PARENT) + \
            glob.glob("/sys/fs/cgroup/*/%s" % TEST_CGROUP_PARENT.lstrip("/")):
        for sub in sorted(glob.glob(path + "/**/", recursive=True), key=len, reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass


@pytest.fixture(scope="session", autouse=True)
def _test_cgroup_parent():
    yield
    _remove_test_cgroup_parent()


@pytest.fixture
def bundle(tmp_path):
    b = Bundle(tmp_path / "bundle")
    os.makedirs(b.rootfs)
    make_rootfs(b.rootfs)
    subprocess.run([PYRUNC, "spec", "--bundle", b.path], check=True)
    b.set_args("true")
    b.update(lambda c: c["linux"].update(cgroupsPath="%s/%s" % (TEST_CGROUP_PARENT, uuid.uuid4().hex[:12])))
    return b


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(tmp_path / "state")
    yield rt
    rt.cleanup()
