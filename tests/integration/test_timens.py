"""Time namespace: linux.timeOffsets seen from inside (/proc/uptime)."""
import os

import pytest

from conftest import needs_root

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"),
                                             reason="kernel without time namespaces")]

OFFSET = 10_000_000  # seconds (~115 days)


def test_boottime_and_monotonic_offsets(bundle, runtime):
    def cfg(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": OFFSET, "nanosecs": 0},
                                      "monotonic": {"secs": OFFSET, "nanosecs": 0}}
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time")
    with open("/proc/uptime") as f:
        host_before = float(f.read().split()[0])
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    with open("/proc/uptime") as f:
        host_after = float(f.read().split()[0])
    lines = p.stdout.split("\n")
    inside = float(lines[0].split()[0])
    assert host_before + OFFSET <= inside <= host_after + OFFSET + 1
    assert lines[1] != os.readlink("/proc/self/ns/time")


def test_offsets_without_time_namespace_refused(bundle, runtime):
    bundle.update(lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": 5}}))
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1 and "timeOffsets" in p.stderr
