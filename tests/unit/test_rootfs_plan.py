"""The rootfs mount plan on the recording fake kernel (no root, no mounts):
what is mounted where, with which flags, in which order; device nodes and
/dev links; pivot_root; read-only and masked paths; one-line errors that
name the mount."""
import pytest

from fakekernel import PROC_SUPER_MAGIC, FakeKernel
from pyrunc import linux as L
from pyrunc.rootfs import MountError, RootfsBuilder
from pyrunc.spec import DEFAULT_DEVICES, Spec

ROOT = "/b/rootfs"


def spec(**linux):
    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
           "process": {"args": ["sh"], "cwd": "/"},
           "mounts": [
               {"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
               {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666"]},
               {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
               {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["rbind", "ro"]},
           ],
           "linux": linux}
    return Spec(doc)


def kernel():
    return FakeKernel(dirs=[ROOT + "/proc", ROOT + "/sys", ROOT + "/tmp", "/host/data"], files=["/host/file"])


def test_mount_plan_in_order_with_flags():
    k = kernel()
    b = RootfsBuilder(spec(), ROOT, kernel=k)
    b.prepare()
    assert k.mounts()[:3] == [
        (None, "/", None, L.MS_SLAVE | L.MS_REC, None),  # nothing propagates back to the host
        (None, ROOT, None, L.MS_PRIVATE, None),  # pivot_root refuses a shared parent mount
        (ROOT, ROOT, "bind", L.MS_BIND | L.MS_REC, None),
    ]
    assert k.mounts()[3:] == [
        ("proc", ROOT + "/proc", "proc", 0, None),
        ("tmpfs", ROOT + "/dev", "tmpfs", L.MS_NOSUID | L.MS_STRICTATIME, "mode=755,size=65536k"),
        ("devpts", ROOT + "/dev/pts", "devpts", L.MS_NOSUID | L.MS_NOEXEC, "newinstance,ptmxmode=0666"),
        ("sysfs", ROOT + "/sys", "sysfs", L.MS_NOSUID | L.MS_RDONLY, None),
        # a bind, then its flags by a remount of the bind (the kernel ignores them on the bind)
        ("/host/data", ROOT + "/data", None, L.MS_BIND | L.MS_REC, None),
        (None, ROOT + "/data", None, L.MS_REMOUNT | L.MS_BIND | L.MS_RDONLY, None),
    ]
    # missing destinations are made inside the root, never outside it
    assert ("mkdir", ROOT + "/dev") in k.calls and ("mkdir", ROOT + "/data") in k.calls
    assert all(c[1].startswith(ROOT) for c in k.named("mkdir", "mknod", "symlink"))
    # proc and sysfs are pinned by fd for the checks after pivot_root
    assert set(b.pinned) == {"/proc", "/sys"}
    assert k.fstatfs_type(b.proc_handle()) == PROC_SUPER_MAGIC


def test_default_devices_and_dev_links():
    k = kernel()
    RootfsBuilder(spec(), ROOT, kernel=k).prepare()
    nodes = {c[1]: c[2:] for c in k.named("mknod")}
    assert nodes == {ROOT + path: (kind, major, minor, 0o666) for path, kind, major, minor in
                     [(p, "chr", ma, mi) for p, _, ma, mi in DEFAULT_DEVICES]}
    links = dict(c[1:] for c in k.named("symlink"))
    assert links[ROOT + "/dev/fd"] == "/proc/self/fd"
    assert links[ROOT + "/dev/ptmx"] == "pts/ptmx"  # follows the container's own devpts


def test_config_device_replaces_the_default_node():
    k = kernel()
    s = spec(devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5}])
    RootfsBuilder(s, ROOT, kernel=k).prepare()
    assert [c for c in k.named("mknod") if c[1] == ROOT + "/dev/null"] == [("mknod", ROOT + "/dev/null", "chr", 1, 3, 0o600)]
    assert ("chown", ROOT + "/dev/null", 5, 0) in k.calls


def test_user_namespace_binds_device_nodes_instead_of_mknod():
    k = kernel()
    RootfsBuilder(spec(), ROOT, in_userns=True, kernel=k).prepare()
    assert not k.named("mknod")
    assert ("/dev/null", ROOT + "/dev/null", None, L.MS_BIND, None) in k.mounts()


def test_a_failing_mount_is_one_error_naming_it():
    k = kernel()

    def failing(source, target, fstype, flags=0, data=None):
        if fstype == "devpts":
            raise OSError(19, "No such device")
        return FakeKernel.mount(k, source, target, fstype, flags, data)
    k.mount = failing
    with pytest.raises(MountError) as e:
        RootfsBuilder(spec(), ROOT, kernel=k).prepare()
    assert str(e.value) == "mounts[2]: mount devpts to /dev/pts: No such device"
    assert [m[2] for m in k.mounts()][-2:] == ["proc", "tmpfs"]  # nothing after the failure


def test_missing_bind_source_is_refused():
    s = spec()
    s.mounts[4].source = "/host/absent"
    with pytest.raises(MountError, match=r"mounts\[4\]: mount /host/absent to /data: No such file"):
        RootfsBuilder(s, ROOT, kernel=kernel()).prepare()


def test_pivot_then_readonly_and_masked_paths():
    k = kernel()
    s = spec(readonlyPaths=["/proc/sys"], maskedPaths=["/proc/kcore", "/proc/acpi", "/absent"])
    k.add(ROOT + "/proc/sys", ("dir",))
    k.add(ROOT + "/proc/kcore", ("file",))
    k.add(ROOT + "/proc/acpi", ("dir",))
    b = RootfsBuilder(s, ROOT, kernel=k)
    b.prepare()
    b.pivot()
    assert k.named("pivot_root") == [("pivot_root", ROOT)]
    # the old root, stacked on "." by pivot_root(".", "."): made a slave, then detached
    after = [c for c in k.calls[k.calls.index(("pivot_root", ROOT)):] if c[0] in ("mount", "umount2", "chdir")]
    assert after == [("mount", None, "/", None, L.MS_SLAVE | L.MS_REC, None),
                     ("umount2", "/", L.MNT_DETACH), ("chdir", ROOT)]
    before = len(k.calls)
    b.finalize()
    done = k.calls[before:]
    # read-only: a recursive read-only clone moved over itself
    assert ("mount_setattr", ROOT + "/proc/sys", L.MOUNT_ATTR_RDONLY, 0) in done
    # masked: a file gets the verified /dev/null, a directory an empty read-only tmpfs
    assert ("move_mount", ROOT + "/dev/null", ROOT + "/proc/kcore") in done
    assert ("fsmount", L.MOUNT_ATTR_RDONLY) in done and ("move_mount", "<fs tmpfs>", ROOT + "/proc/acpi") in done
    assert not b.pinned  # closed after finalize
    assert set(k.fds) == set()  # every fd the plan opened is closed


def test_a_swapped_proc_is_refused_after_pivot():
    k = kernel()
    b = RootfsBuilder(spec(), ROOT, kernel=k)
    b.prepare()
    # the image (or a racing process) renames the real procfs away and
    # leaves a directory of its own at /proc
    k.nodes[ROOT + "/proc"] = ("dir",)
    pinned = b.pinned["/proc"]
    k.fds[pinned] = ROOT + "/elsewhere"
    k.add(ROOT + "/elsewhere", ("dir",))
    with pytest.raises(MountError, match="/proc in the container was replaced"):
        b.pivot()


def test_without_a_mount_namespace_chroot_and_no_propagation_change():
    k = kernel()
    b = RootfsBuilder(spec(), ROOT, own_mount_ns=False, kernel=k)
    b.prepare()
    b.pivot()
    assert (None, "/", None, L.MS_SLAVE | L.MS_REC, None) not in k.mounts()
    assert k.named("chroot") == [("chroot", ROOT)] and not k.named("pivot_root")
