"""`pyrunc features` claims nothing without a test: every mount option it
lists is applied to a real mount here and its effect read from inside."""
import json

from conftest import needs_root

pytestmark = needs_root

# option -> what /proc/self/mountinfo shows for it (per-mount options, or
# optional fields for propagation); None: accepted, not visible there.
VISIBLE = {
    "ro": ("opts", "ro"), "rw": ("opts", "rw"), "nosuid": ("opts", "nosuid"),
    "nodev": ("opts", "nodev"), "noexec": ("opts", "noexec"), "noatime": ("opts", "noatime"),
    "nodiratime": ("opts", "nodiratime"), "relatime": ("opts", "relatime"),
    "nosymfollow": ("opts", "nosymfollow"),
    "shared": ("prop", "shared:"), "rshared": ("prop", "shared:"),
    # slave/rslave: a fresh tmpfs has no master, so the kernel makes it
    # private; the mount is still made with the flag (no error).
    "unbindable": ("prop", "unbindable"), "runbindable": ("prop", "unbindable"),
    # recursive attributes (mount_setattr): seen on the mount itself here;
    # test_recursive_mount_attrs.py checks the submounts
    "rro": ("opts", "ro"), "rrw": ("opts", "rw"), "rnosuid": ("opts", "nosuid"),
    "rnodev": ("opts", "nodev"), "rnoexec": ("opts", "noexec"), "rnoatime": ("opts", "noatime"),
    "rnodiratime": ("opts", "nodiratime"), "rrelatime": ("opts", "relatime"),
    "rnosymfollow": ("opts", "nosymfollow"),
}


def test_every_claimed_mount_option_works(bundle, runtime, tmp_path):
    options = json.loads(runtime("features").stdout)["mountOptions"]
    src = tmp_path / "src"
    src.mkdir()

    def cfg(c):
        c["root"]["readonly"] = False
        for i, opt in enumerate(options):
            if opt in ("bind", "rbind"):
                c["mounts"].append({"destination": "/m%d" % i, "type": "bind", "source": str(src), "options": [opt]})
            else:
                c["mounts"].append({"destination": "/m%d" % i, "type": "tmpfs", "source": "tmpfs", "options": [opt]})
    bundle.update(cfg)
    bundle.set_args("cat", "/proc/self/mountinfo")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    lines = {line.split()[4]: line.split() for line in p.stdout.splitlines()}
    for i, opt in enumerate(options):
        fields = lines.get("/m%d" % i)
        assert fields is not None, "option %s: no mount" % opt
        want = VISIBLE.get(opt)
        if want is None:
            continue
        kind, text = want
        if kind == "opts":
            assert text in fields[5].split(","), (opt, fields)
        else:
            optional = fields[6:fields.index("-")]
            assert any(o.startswith(text) for o in optional), (opt, fields)
