"""checkpoint writes its records into the image directory it opened, not
to whatever the path names by the time it writes (a directory swapped in
by whoever can rename in the parent gets nothing)."""
import json
import os

from pyrunc import checkpoint


class _Fake:
    id = "c1"
    pid = os.getpid()
    record = {"bundle": "/b", "rootfs": "/b/rootfs"}


def test_records_land_in_the_opened_directory_after_a_swap(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rename(images, tmp_path / "moved")  # the opened directory goes away...
        (tmp_path / "img").mkdir()             # ...and another takes its name
        checkpoint._write_image_meta(fd, _Fake(), ["/data"], {})
    finally:
        os.close(fd)
    assert os.listdir(tmp_path / "img") == []
    meta = json.loads((tmp_path / "moved" / "pyrunc-checkpoint.json").read_text())
    assert meta["id"] == "c1" and meta["external_mounts"] == ["/data"]
    assert len(json.loads((tmp_path / "moved" / "descriptors.json").read_text())) == 3
    assert sorted(os.listdir(tmp_path / "moved")) == ["descriptors.json", "pyrunc-checkpoint.json"]


def test_a_symlink_at_the_name_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    images = tmp_path / "img"
    images.mkdir()
    os.symlink(victim, images / "descriptors.json")
    fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY)
    try:
        checkpoint._write_image_meta(fd, _Fake(), [], {})
    finally:
        os.close(fd)
    assert victim.read_text() == "keep"
    assert not os.path.islink(images / "descriptors.json")
