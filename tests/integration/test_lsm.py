"""LSM labels: the host here has neither AppArmor nor SELinux, so asking for
a label is a clear error (as runc); the write path goes through a
verified procfs handle (CVE-2025-52881 class), tested on procfs and
non-procfs mounts this test makes in its own mount namespace."""
import os

import pytest

from conftest import needs_root
from pyrunc.security import lsm

pytestmark = needs_root


@pytest.mark.skipif(lsm.apparmor_enabled(), reason="AppArmor is enabled on this host")
def test_apparmor_profile_without_apparmor_is_an_error(bundle, runtime):
    bundle.update(lambda c: c["process"].update(apparmorProfile="pyrunc-test"))
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1
    assert "process.apparmorProfile" in p.stderr and "not enabled" in p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))


@pytest.mark.skipif(lsm.selinux_enabled(), reason="SELinux is enabled on this host")
def test_selinux_label_without_selinux_is_an_error(bundle, runtime):
    bundle.update(lambda c: c["process"].update(selinuxLabel="system_u:system_r:container_t:s0"))
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "process.selinuxLabel" in p.stderr and "selinux" in p.stderr


def _in_private_mount_ns(fn):
    """Run fn() in a forked child with its own mount namespace; return its
    result string (child writes it to a pipe)."""
    from pyrunc import linux

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            out = fn()
        except BaseException as e:  # report anything
            out = "%s: %s" % (type(e).__name__, e)
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


class P:
    apparmor_profile = None
    selinux_label = "user_u:role_r:type_t:s0"


def test_write_goes_to_a_real_procfs(tmp_path):
    from pyrunc import linux

    target = tmp_path / "proc"
    target.mkdir()

    def fn():
        linux.mount("proc", str(target), "proc")
        try:
            lsm.apply_exec_labels(P(), str(target))
            return "written"
        except OSError as e:
            return "kernel said %s" % e.strerror
    out = _in_private_mount_ns(fn)
    # The write reached the kernel's attr file (which refuses it: no LSM here).
    assert out == "written" or out.startswith("kernel said"), out


def test_fake_proc_is_refused(tmp_path):
    from pyrunc import linux

    target = tmp_path / "proc"
    target.mkdir()

    def fn():
        linux.mount("tmpfs", str(target), "tmpfs")
        attr = target / str(os.getpid()) / "task" / str(os.getpid()) / "attr"
        attr.mkdir(parents=True)
        (attr / "exec").write_text("")
        try:
            lsm.apply_exec_labels(P(), str(target))
            return "wrote to fake: " + (attr / "exec").read_text()
        except Exception as e:
            return "refused: %s" % e
    out = _in_private_mount_ns(fn)
    assert out.startswith("refused:") and "not procfs" in out, out



def test_overmounted_attr_file_is_refused(tmp_path):
    """CVE-2019-19921 class: a real procfs, but with a file bind-mounted over
    the process's attr/exec (as a config's mount into /proc/<pid>/... could
    place it): the label must not go into that file, silently unapplied.
    The lookup may not cross a mount.  Seen to fail (the label landed in
    the bound file) before write_attr used RESOLVE_NO_XDEV."""
    from pyrunc import linux

    target = tmp_path / "proc"
    target.mkdir()
    decoy = tmp_path / "decoy"
    decoy.write_text("")

    def fn():
        linux.mount("proc", str(target), "proc")
        attr = "%s/%d/task/%d/attr/exec" % (target, os.getpid(), os.getpid())
        linux.mount(str(decoy), attr, None, linux.MS_BIND)
        try:
            lsm.apply_exec_labels(P(), str(target))
            return "wrote to the bound file: %r" % decoy.read_text()
        except OSError as e:
            return "refused: %s (file: %r)" % (e.strerror, decoy.read_text())
    out = _in_private_mount_ns(fn)
    assert out.startswith("refused:") and out.endswith("(file: '')"), out

def test_symlinked_proc_is_refused(tmp_path):
    os.symlink("/proc", tmp_path / "proc-link")
    with pytest.raises(OSError):
        lsm.open_verified_procfs(str(tmp_path / "proc-link"))


def test_intel_rdt_without_resctrl_is_an_error(bundle, runtime):
    if os.path.isdir("/sys/fs/resctrl/info"):
        pytest.skip("resctrl is mounted on this host")
    bundle.update(lambda c: c["linux"].update(intelRdt={"closID": "pyrunc"}))
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "linux.intelRdt" in p.stderr and "resctrl" in p.stderr
