"""CVE-2021-30465 class, racing: while containers are created, a process
keeps swapping a directory on the mount destination's path for a symlink to
a host directory.  A runtime that resolves destinations by host path (or
checks, then mounts by path) sometimes mounts on the host's directory (in
the container's mount namespace, where it is lost with the old root and
the container misses its mount); pyrunc resolves every destination inside
the rootfs (openat2 RESOLVE_IN_ROOT) and mounts onto the fd, so the mount
is always inside the container: at /race/mnt, or where the symlink leads
when resolved within the rootfs."""
import os
import signal
import subprocess
import sys

from conftest import needs_root

pytestmark = needs_root

SWAPPER = r"""
import ctypes, os, sys
base, outside = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
race, link = (base + "/race").encode(), (base + "/race.link").encode()
os.symlink(outside, link)
while True:  # atomically: /race is the directory, then the symlink, then ...
    libc.renameat2(AT_FDCWD, race, AT_FDCWD, link, RENAME_EXCHANGE)
"""


def host_mount_points():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_racing_symlink_never_mounts_outside(bundle, runtime, tmp_path):
    outside = tmp_path / "host-target"
    (outside / "mnt").mkdir(parents=True)  # what a mount that escaped would land on
    os.makedirs(os.path.join(bundle.rootfs, "race", "mnt"))
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/race/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1024k", "mode=1751"]}))
    bundle.set_args("sh", "-c", "grep -c mode=1751 /proc/self/mountinfo; true")  # prints 0 and succeeds if missing
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, bundle.rootfs, str(outside)])
    outcomes = {"ok": 0, "failed": 0}
    last_error = None
    try:
        for _ in range(40):
            p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
            outcomes["ok" if p.returncode == 0 else "failed"] += 1
            if p.returncode == 0:
                assert p.stdout.strip() == "1", "the tmpfs is not inside the container: " + p.stdout
            else:
                last_error = p.stderr
            assert not any(m.startswith(str(outside)) for m in host_mount_points())
            assert os.listdir(outside / "mnt") == [], os.listdir(outside / "mnt")
    finally:
        os.kill(swapper.pid, signal.SIGKILL)
        swapper.wait()
    # The race really ran against real creates (not all of them refused early).
    assert outcomes["ok"] > 0, (outcomes, last_error)
    assert os.listdir(outside) == ["mnt"]
