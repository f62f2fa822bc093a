"""CVE-2025-52565 class: /dev/console is bound to the container's pty,
masked paths are masked and the exec fifo is reopened without any path
lookup the container's files can steer.  The image here has no procfs
mounted at /proc and plants /proc/self/fd/* symlinks to a decoy: a runtime
that mounts or reopens through "/proc/self/fd/N" after pivot_root follows
them (the pty lands on the decoy, the masks miss their paths, the init
writes its start byte into the decoy and `start` never returns)."""
import os

from conftest import needs_root
from test_terminal import ConsoleSocket, read_until, shell_bundle

pytestmark = needs_root


def plant_fake_proc(rootfs):
    fd_dir = os.path.join(rootfs, "proc", "self", "fd")
    os.makedirs(fd_dir)
    for n in range(64):
        os.symlink("/decoy", os.path.join(fd_dir, str(n)))
    with open(os.path.join(rootfs, "decoy"), "w"):
        pass


def test_console_bind_ignores_planted_proc_links(bundle, runtime, tmp_path):
    shell_bundle(bundle)

    def no_procfs(c):
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]
        c["linux"]["maskedPaths"] = [p for p in c["linux"]["maskedPaths"] if not p.startswith("/proc")]
        c["linux"]["readonlyPaths"] = [p for p in c["linux"]["readonlyPaths"] if not p.startswith("/proc")]
        c["root"]["readonly"] = False
        c["linux"]["maskedPaths"] += ["/masked-file", "/masked-dir"]
    bundle.update(no_procfs)
    plant_fake_proc(bundle.rootfs)
    with open(os.path.join(bundle.rootfs, "masked-file"), "w") as f:
        f.write("secret")
    os.makedirs(os.path.join(bundle.rootfs, "masked-dir"))
    with open(os.path.join(bundle.rootfs, "masked-dir", "inside"), "w") as f:
        f.write("secret")
    cs = ConsoleSocket(tmp_path / "console.sock")
    cid = runtime.new_id()
    master = -1
    try:
        p = runtime("create", "--console-socket", cs.path, "-b", bundle.path, cid, check=False)
        if p.returncode != 0:
            # Refusing is safe too, as long as the decoy was not touched.
            assert os.path.isfile(os.path.join(bundle.rootfs, "decoy"))
            raise AssertionError("create failed: %s" % p.stderr)
        master = cs.receive()
        runtime("start", cid, timeout=20)
        os.write(master, b"stat -c %F:%t /dev/console /decoy /masked-file; cat /masked-file; ls /masked-dir; "
                         b"touch /masked-dir/x || echo RO; echo END$((1+1))\n")
        out = read_until(master, "END2")
        assert "character special file:88" in out, out  # /dev/console is the pty (major 136)
        assert "regular empty file:0" in out, out  # the decoy is untouched
        assert "character special file:1" in out, out  # /masked-file is /dev/null (1:3)
        assert "secret" not in out and "inside" not in out, out
        assert "RO" in out, out  # an empty read-only tmpfs on /masked-dir
    finally:
        if master >= 0:
            os.close(master)
        cs.close()
        runtime("delete", "--force", cid, check=False)
