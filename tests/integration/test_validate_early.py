"""Validate once, early, typed: a linux.seccomp or linux.resources section
that passes the schema (and runc's leniencies, pyrunc.compat) but not its
owner's typed parse fails `create`
before anything exists on the system -- no state directory (the --root
is never even made), hence no cgroup (made after it), and no hook ran."""
import json
import os

import pytest

from conftest import Runtime, needs_root

pytestmark = needs_root

BAD_SECTIONS = {
    "seccomp-notify-default": (
        "seccomp", {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
        "linux.seccomp.defaultAction"),
    "seccomp-arg-index": (
        "seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
        "linux.seccomp.syscalls[0].args[0].index"),
    "resources-device-type": (
        "resources", {"devices": [{"allow": False, "type": "x", "access": "rwm"}]},
        "linux.resources.devices[0].type"),
}


@pytest.mark.parametrize("case", sorted(BAD_SECTIONS))
def test_bad_typed_section_fails_before_anything_is_made(case, bundle, tmp_path):
    key, section, field = BAD_SECTIONS[case]
    marker = tmp_path / "hook-ran"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "touch %s" % marker]}

    def bad(cfg):
        cfg["linux"][key] = section
        cfg["hooks"] = {"prestart": [hook], "createRuntime": [hook]}
    bundle.update(bad)
    root = tmp_path / "never-made"
    runtime = Runtime(root)
    p = runtime("create", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 1, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], p.stderr
    assert not marker.exists(), "a hook ran before the config was refused"
    assert not root.exists(), "the state root was made before the config was refused"
    cgroup = json.loads(open(bundle.config_path).read())["linux"]["cgroupsPath"]
    assert not [d for d in os.listdir("/sys/fs/cgroup") if os.path.exists("/sys/fs/cgroup/%s/%s" % (d, cgroup))]
