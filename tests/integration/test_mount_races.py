"""Racing symlink swaps against mount destinations (CVE-2021-30465 and
CVE-2019-16884 classes): while `create` runs, a racer process keeps
exchanging a mount destination inside the rootfs with a symlink pointing
outside it.  pyrunc resolves each destination once, inside the rootfs, and
mounts onto that fd; a runtime that mounts by path follows whichever
symlink is there at mount(2) time.

How an escape is seen: pyrunc runs inside a private mount namespace held by
a process the test started (`unshare -m`), where the test mounts a tmpfs
"watch" directory, shared.  The container's copy of it stays in the same
peer group (the config asks for shared root propagation, not the default rslave), so a mount that
escapes onto watch/target inside the container's mount namespace
propagates back and shows in the holder's /proc/<pid>/mountinfo, and its
files in watch/target.  Nothing is mounted in the machine's own namespace.
"""
import os
import subprocess
import sys
import time

import pytest

from conftest import Runtime, needs_root

pytestmark = needs_root

RUNS = 30

# Exchange two names atomically (renameat2 RENAME_EXCHANGE) in a tight loop.
RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(p) for p in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.write(1, b"go\n")
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


class MountNs:
    """A private mount namespace held by `sleep` (killed by pid)."""

    def __init__(self):
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "600"])
        mine = os.readlink("/proc/self/ns/mnt")
        for _ in range(500):
            try:
                if os.readlink("/proc/%d/ns/mnt" % self.proc.pid) != mine:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        else:
            self.close()
            raise AssertionError("unshare --mount did not make a mount namespace")

    def cmd(self, *args):
        return ["nsenter", "-t", str(self.proc.pid), "-m", "--", *args]

    def run(self, *args):
        subprocess.run(self.cmd(*args), check=True, capture_output=True, timeout=30)

    def path(self, p):
        """`p` as this namespace sees it."""
        return "/proc/%d/root%s" % (self.proc.pid, p)

    def mountinfo(self):
        with open("/proc/%d/mountinfo" % self.proc.pid) as f:
            return f.read()

    def close(self):
        self.proc.kill()
        self.proc.wait()


class NsRuntime(Runtime):
    def __init__(self, root, ns):
        super().__init__(root)
        self.ns = ns

    def cmd(self, *args):
        return self.ns.cmd(*super().cmd(*args))


@pytest.fixture
def mountns():
    ns = MountNs()
    yield ns
    ns.close()


@pytest.fixture
def nsruntime(tmp_path, mountns):
    rt = NsRuntime(tmp_path / "state", mountns)
    yield rt
    rt.cleanup()


def _watch(tmp_path, mountns):
    watch = tmp_path / "watch"
    watch.mkdir()
    mountns.run("mount", "-t", "tmpfs", "-o", "size=1m", "watch", str(watch))
    mountns.run("mount", "--make-shared", str(watch))
    mountns.run("mkdir", str(watch / "target"))
    return watch


def _race(bundle, nsruntime, mountns, swap_a, swap_b, watch):
    """Start the racer on (swap_a, swap_b), run RUNS containers, stop the
    racer; -> (succeeded runs, last failure text)."""
    racer = subprocess.Popen([sys.executable, "-c", RACER, swap_a, swap_b], stdout=subprocess.PIPE)
    ok, failures, outputs = 0, [], []
    try:
        assert racer.stdout.readline() == b"go\n"
        for _ in range(RUNS):
            p = nsruntime("run", "-b", bundle.path, nsruntime.new_id(), check=False)
            if p.returncode == 0:
                ok += 1
                outputs.append(p.stdout)
            else:
                failures.append(p.stderr)
            # never mounted outside the rootfs, not even once
            target = str(watch / "target")
            assert (" %s " % target) not in mountinfo_targets(mountns), "a mount escaped the rootfs onto %s" % target
            seen = os.listdir(mountns.path(target))
            assert seen == [], "a mount escaped the rootfs: %s" % seen
    finally:
        racer.kill()  # by pid: the racer this test started
        racer.wait()
    return ok, failures, outputs


def mountinfo_targets(mountns):
    return " " + " ".join(line.split()[4] for line in mountns.mountinfo().splitlines()) + " "


def test_racing_symlink_bind_destination_stays_inside(bundle, nsruntime, mountns, tmp_path):
    """CVE-2021-30465 / CVE-2024-45310 classes: a bind mount destination
    raced between a directory and a symlink to a directory outside the
    rootfs: nothing is mounted, nor any directory made, outside it."""
    watch = _watch(tmp_path, mountns)
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("escaped")
    race = os.path.join(bundle.rootfs, "race")
    os.makedirs(os.path.join(race, "dst"))
    os.symlink(str(watch / "target"), os.path.join(race, "alt"))

    def cfg(c):
        c["root"]["readonly"] = False
        c["linux"]["rootfsPropagation"] = "shared"
        c["mounts"].append({"destination": "/race/dst", "type": "bind", "source": str(src), "options": ["bind"]})
    bundle.update(cfg)
    bundle.set_args("true")
    ok, failures, _ = _race(bundle, nsruntime, mountns, os.path.join(race, "dst"), os.path.join(race, "alt"), watch)
    assert ok >= RUNS // 2, failures
    # The race was real: some runs saw the symlink and followed it inside
    # the rootfs (the target path was made under the rootfs).
    inside = os.path.join(bundle.rootfs, str(watch / "target").lstrip("/"))
    assert os.path.isdir(inside), "the racer never won the swap: the test proved nothing"


@pytest.mark.parametrize("alt", ["symlink", "directory"])
def test_racing_symlink_proc_destination_refused(bundle, nsruntime, mountns, tmp_path, alt):
    """CVE-2019-16884 class (and the racing half of CVE-2021-30465): /proc
    raced with a symlink out of the rootfs, or with another (empty) real
    directory.  proc is mounted on the real directory or the create fails,
    never outside; a /proc swapped between the mount and its pin is seen
    not to be procfs (with a directory, the pin would otherwise hold the
    empty one and the masks would go there: seen to fail so); a /proc
    swapped away later is noticed before anything goes by its name -- or,
    when the swap comes later still, the masked and read-only paths go
    through the handle of the procfs that was mounted, wherever its name
    now is: no run ever gets a writable /proc/sys under either name."""
    watch = _watch(tmp_path, mountns)
    if alt == "symlink":
        os.symlink(str(watch / "target"), os.path.join(bundle.rootfs, "proc-alt"))
    else:
        os.mkdir(os.path.join(bundle.rootfs, "proc-alt"))
    bundle.update(lambda c: c["linux"].update(rootfsPropagation="shared"))
    # From inside: whichever name the procfs ended up under, /proc/sys must
    # be read-only (domainname is UTS-namespaced: root could write it).
    # The racer still runs: try both names a few times.
    bundle.set_args("sh", "-c", "for i in 1 2 3 4 5 6 7 8; do for d in /proc /proc-alt; do "
                                "if test -e $d/self/stat; then "
                                "(echo x > $d/sys/kernel/domainname) 2>/dev/null && echo WRITABLE $d; "
                                "echo checked; fi; done; done; true")
    ok, failures, outputs = _race(bundle, nsruntime, mountns, os.path.join(bundle.rootfs, "proc"),
                                  os.path.join(bundle.rootfs, "proc-alt"), watch)
    for out in outputs:
        assert "WRITABLE" not in out, "a masked/readonly path missed the real procfs: %s" % out
    assert any("checked" in out for out in outputs) or not outputs, outputs
    # fail-closed, and about /proc (under a deliberate race a lookup may
    # also just fail: "mounts[0]: mount proc to /proc: <errno text>"; and the
    # init reopens its exec fifo by the name /proc/self/fd/N at start)
    expected = ("is not a real directory", "was replaced while it was being mounted",
                "was replaced after it was mounted", "mount proc to /proc: ", " /proc/self/fd/")
    for text in failures:
        assert any(e in text for e in expected), "a failure the race should not cause: %s" % text
    assert failures, "ok=%d: the racer never changed the outcome: the test proved nothing" % ok
