"""pyrunc.reclaim's pure parts: which paths delete may act on, and the one
line it prints (issue 17).  The kernel-facing parts are proven by
tests/integration/test_crash_consistency.py and test_damaged_state.py."""
import pytest

from pyrunc import reclaim
from pyrunc.cgroups.paths import cgroup_mounts, read_text


def _a_cgroup_mount():
    mounts = cgroup_mounts(read_text("/proc/self/mountinfo"))
    if not mounts:
        pytest.skip("no cgroup filesystem mounted here")
    return mounts[0][1].rstrip("/")


def test_only_strictly_below_a_cgroup_mount():
    m = _a_cgroup_mount()
    allowed = reclaim._under_cgroup_mounts()
    assert allowed(m + "/pyrunc-x/c1")
    assert not allowed(m)  # the hierarchy's root itself
    assert not allowed(m + "/")
    assert not allowed(m + "/../../etc")
    assert not allowed(m + "/a/./b")
    assert not allowed("/tmp/not-a-cgroup")
    assert not allowed(m + "x/c1")  # a sibling whose name merely starts the same
    assert not allowed(7)


def test_describe_is_one_line():
    line = reclaim.describe(list(range(1, 12)), [("/sys/fs/cgroup/pids/a", "Device or resource busy")] * 6)
    assert "\n" not in line
    assert line.startswith("processes 1 2 3 4 5 6 7 8 ... did not die within")
    assert line.endswith("2 more directories")


def test_nothing_to_unmount():
    assert reclaim.unmount_under([]) == []
    assert reclaim.unmount_under(["/nonexistent-root-for-this-test"]) == []


def test_implied_leaves_ignore_bad_configs():
    assert reclaim.implied_leaves({"linux": {"cgroupsPath": 7}}, "c") == []
    # no usable linux object: the container id's default placement, no exception
    assert all(p.endswith("/c") for p in reclaim.implied_leaves({"linux": "x"}, "c"))
