"""CVE-2025-31133 class: a masked path is masked with a verified /dev/null
(a char device 1:3), never with a file the container put at /dev/null.

The container's /dev here is a bind mount of a directory the test prepared
(no tmpfs, so pyrunc makes no device nodes of its own): its `null` is a
regular file, or a symlink to one.  runc's bug was to bind whatever
/dev/null named over the masked paths; pyrunc refuses to create the
container instead."""
import os

import pytest

from conftest import needs_root

pytestmark = needs_root


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_masking_refuses_a_fake_dev_null(bundle, runtime, tmp_path, kind):
    dev = tmp_path / "dev"
    dev.mkdir()
    fake = os.path.join(bundle.rootfs, "etc", "fake-null")
    with open(fake, "w") as f:
        f.write("FAKE")
    if kind == "file":
        (dev / "null").write_text("FAKE")
    else:
        os.symlink("/etc/fake-null", dev / "null")
    with open(os.path.join(bundle.rootfs, "etc", "secret"), "w") as f:
        f.write("SECRET")

    def cfg(c):
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/dev"]
        c["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": str(dev), "options": ["rbind"]})
        c["linux"]["maskedPaths"] = ["/etc/secret"]
        c["linux"]["readonlyPaths"] = []
        c["process"]["args"] = ["sh", "-c", "echo secret=[$(cat /etc/secret)]"]
    bundle.update(cfg)
    cid = runtime.new_id()
    p = runtime("run", "-b", bundle.path, cid, check=False)
    assert "secret=[FAKE]" not in p.stdout, "masked with the container's fake /dev/null"
    assert p.returncode == 1, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "/dev/null in the container is not the null device" in lines[0], p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))
    with open(fake) as f:
        assert f.read() == "FAKE"  # nothing was written through the link either


def test_masking_with_the_real_dev_null(bundle, runtime, tmp_path):
    """The control: the same config with pyrunc's own /dev masks the file
    with the null device (the container reads nothing)."""
    with open(os.path.join(bundle.rootfs, "etc", "secret"), "w") as f:
        f.write("SECRET")
    bundle.update(lambda c: c["linux"].update(maskedPaths=["/etc/secret"]))
    bundle.set_args("sh", "-c", "echo secret=[$(cat /etc/secret)]; stat -c %t:%T /etc/secret")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["secret=[]", "1:3"]
