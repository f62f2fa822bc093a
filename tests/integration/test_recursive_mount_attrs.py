"""Recursive mount attributes (rro, rnosuid, rnoexec, ...; runtime-spec
1.1+): applied with mount_setattr(AT_RECURSIVE) to an rbind mount and every
mount under it -- checked from inside on a submount, against the plain
option that leaves the submount alone."""
import subprocess

import pytest

from conftest import needs_root

pytestmark = needs_root


@pytest.mark.parametrize("options,sub_writable,sub_flags", [
    (["rbind", "ro"], True, ""),             # plain ro: the top mount only
    (["rbind", "rro"], False, "ro"),         # rro: the submount too
    (["rbind", "rro", "rrw"], True, ""),     # the later option wins
    (["rbind", "rnoexec", "rnosuid"], True, "noexec,nosuid"),
])
def test_recursive_attrs_reach_submounts(bundle, runtime, tmp_path, options, sub_writable, sub_flags):
    """The source has a tmpfs submount, made in a private mount namespace
    around pyrunc (never in the machine's own)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)

    def cfg(c):
        c["root"]["readonly"] = False
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(src), "options": options})
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "touch /data/sub/f 2>/dev/null && echo writable || echo readonly; "
                                "grep ' /data/sub ' /proc/self/mountinfo")
    script = 'mount -t tmpfs tmpfs "$1/sub" && shift && exec "$@"'
    err = tmp_path / "err"
    out = tmp_path / "out"
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(src)]
                           + runtime.cmd("run", "-b", bundle.path, runtime.new_id()),
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=60)
    assert p.returncode == 0, err.read_text()
    lines = out.read_text().splitlines()
    assert lines[0] == ("writable" if sub_writable else "readonly"), lines
    per_mount = lines[1].split()[5].split(",")
    for flag in filter(None, sub_flags.split(",")):
        assert flag in per_mount, (flag, lines[1])
    if sub_writable:
        assert "rw" in per_mount, lines[1]
