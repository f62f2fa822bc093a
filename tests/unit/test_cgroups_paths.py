"""Placement and host layout discovery (pure functions over /proc text)."""
import pytest

from pyrunc.cgroups import paths
from pyrunc.cgroups.mount import v1_mount_plan

# This machine's layout (v1 + an empty unified mount), with cpu,cpuacct
# co-mounted as on most distributions to exercise the shared directory.
MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:35 / /mnt/extra\\040dir rw - cgroup cgroup rw,name=foo
"""
PROC_CGROUP = """\
9:name=systemd:/
8:pids:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
1:cpu,cpuacct:/user
10:name=foo:/mine
0::/
"""


def test_v1_hierarchies_by_controller():
    h = paths.v1_hierarchies(MOUNTINFO)
    assert h["cpu"] == h["cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert h["name=systemd"] == ("/sys/fs/cgroup/systemd", "/")
    assert h["name=foo"] == ("/mnt/extra dir", "/")  # octal escape undone
    assert "xattr" not in h and "rw" not in h
    assert paths.unified_mount(MOUNTINFO) == ("/sys/fs/cgroup/unified", "/")


def test_own_cgroups():
    own = paths.own_cgroups(PROC_CGROUP)
    assert own["memory"] == "/process_api/abc"
    assert own["cpuacct"] == "/user"
    assert own[""] == "/"


@pytest.mark.parametrize("given,cid,expected", [
    ("/a/b", "x", "/a/b"),
    ("/a/../../b/", "x", "/b"),
    ("a/b", "x", "a/b"),
    ("../../a", "x", "a"),  # a relative path cannot climb out
    (None, "ctr1", "ctr1"),
    ("", "ctr1", "ctr1"),
])
def test_inner_path(given, cid, expected):
    assert paths.inner_path(given, cid) == expected


def test_inner_path_refuses_root():
    with pytest.raises(ValueError, match="linux.cgroupsPath"):
        paths.inner_path("/..", "x")


def test_absolute_path_from_each_hierarchy_root():
    p = paths.v1_paths("/test/c1", MOUNTINFO, PROC_CGROUP)
    assert p["memory"] == "/sys/fs/cgroup/memory/test/c1"  # not under process_api
    assert p["cpu"] == p["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/test/c1"
    assert p["name=systemd"] == "/sys/fs/cgroup/systemd/test/c1"
    assert p[""] == "/sys/fs/cgroup/unified/test/c1"  # hybrid: unified joined too
    assert "blkio" not in p  # not mounted


def test_relative_and_default_path_from_own_cgroup():
    p = paths.v1_paths("c1", MOUNTINFO, PROC_CGROUP)
    assert p["memory"] == "/sys/fs/cgroup/memory/process_api/abc/c1"
    assert p["cpu"] == "/sys/fs/cgroup/cpu,cpuacct/user/c1"
    assert p["devices"] == "/sys/fs/cgroup/devices/c1"


def test_mount_root_not_slash():
    # inside a cgroup namespace /proc/self/cgroup is relative to the mount root
    mi = "35 31 0:32 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert paths.v1_paths("c", mi, "4:memory:/outer/me\n")["memory"] == "/sys/fs/cgroup/memory/me/c"
    assert paths.v1_paths("c", mi, "4:memory:/\n")["memory"] == "/sys/fs/cgroup/memory/c"


def test_v2_path():
    mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert paths.v2_path("/pod/c", mi, "0::/user.slice/x\n") == "/sys/fs/cgroup/pod/c"
    assert paths.v2_path("c", mi, "0::/user.slice/x\n") == "/sys/fs/cgroup/user.slice/x/c"


def test_host_is_v2(tmp_path):
    assert not paths.host_is_v2(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert paths.host_is_v2(str(tmp_path))


def test_v1_mount_plan():
    container = paths.v1_paths("/t/c", MOUNTINFO, PROC_CGROUP)
    plan = {h["name"]: h for h in v1_mount_plan(container, MOUNTINFO, PROC_CGROUP)}
    assert plan["cpu,cpuacct"]["links"] == ["cpu", "cpuacct"]
    assert plan["cpu,cpuacct"]["options"] == "cpu,cpuacct"
    assert plan["cpu,cpuacct"]["source"] == "/sys/fs/cgroup/cpu,cpuacct/t/c"
    assert plan["systemd"]["options"] == "name=systemd"
    assert plan["memory"]["links"] == []
    assert "unified" not in plan  # runc leaves the hybrid v2 mount out
    # a hierarchy the container has no path in shows the runtime's own cgroup
    assert plan["extra dir"]["source"] == "/mnt/extra dir/mine"
    assert "name=foo" not in container


def test_v1_mount_plan_one_entry_per_hierarchy():
    """A bundle whose /sys is an rbind of the host's (`runc spec --rootless`)
    shows every hierarchy again under the rootfs: the plan keeps the host's
    mount of each, once (duplicates made mkdir fail with EEXIST)."""
    copies = "".join(
        "%d 99 %s / /b/rootfs/sys/fs/cgroup/%s rw - cgroup cgroup rw,%s\n" % (200 + i, dev, name, opts)
        for i, (dev, name, opts) in enumerate([("0:32", "memory", "memory"), ("0:37", "systemd", "name=systemd")]))
    container = paths.v1_paths("/t/c", MOUNTINFO, PROC_CGROUP)
    plan = v1_mount_plan(container, MOUNTINFO + copies, PROC_CGROUP)
    names = [h["name"] for h in plan]
    assert sorted(names) == sorted(set(names)), names
    by_name = {h["name"]: h for h in plan}
    assert by_name["memory"]["source"] == "/sys/fs/cgroup/memory/t/c"
