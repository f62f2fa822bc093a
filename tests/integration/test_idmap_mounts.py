"""Idmapped bind mounts (mounts[].uidMappings/gidMappings, idmap, ridmap),
checked by file ownership seen from inside the container and on the host."""
import os

from conftest import needs_root
from test_userns import chown_tree, let_unprivileged_traverse

pytestmark = needs_root


def shared_dir(tmp_path):
    """A host dir and file owned (on disk) by 1000:1000, plus a root-owned file."""
    src = tmp_path / "shared"
    src.mkdir()
    (src / "theirs").write_text("x")
    os.chown(src, 1000, 1000)
    os.chown(src / "theirs", 1000, 1000)
    (src / "roots").write_text("y")
    return src


def idmapped_mount(src, options=("bind", "idmap"), mappings=True):
    m = {"destination": "/shared", "type": "bind", "source": str(src), "options": list(options)}
    if mappings:
        # on-disk 0 shows as 0; on-disk 1000 shows as 2000 (and back for writes)
        maps = [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": 1000, "hostID": 2000, "size": 1}]
        m["uidMappings"] = maps
        m["gidMappings"] = maps
    return m


def test_ownership_through_an_idmapped_mount(bundle, runtime, tmp_path):
    src = shared_dir(tmp_path)
    bundle.update(lambda c: c["mounts"].append(idmapped_mount(src)))
    bundle.update(lambda c: c["process"].update(user={"uid": 2000, "gid": 2000}))
    bundle.set_args("sh", "-c", "stat -c %n=%u:%g /shared /shared/theirs /shared/roots; "
                                "echo new > /shared/made-inside && echo wrote")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert "/shared=2000:2000" in p.stdout, p.stdout  # on disk 1000, seen as 2000
    assert "/shared/theirs=2000:2000" in p.stdout, p.stdout
    assert "/shared/roots=0:0" in p.stdout, p.stdout
    assert "wrote" in p.stdout, p.stdout  # uid 2000 may write the dir it owns through the mapping
    st = os.stat(src / "made-inside")
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # stored through the mapping, back to 1000
    # and the host's view of the source is unchanged
    assert os.stat(src / "theirs").st_uid == 1000


def test_without_the_mapping_ownership_is_plain(bundle, runtime, tmp_path):
    """The same mount without idmap: the ids are the disk's (the test above
    can only pass through the mapping)."""
    src = shared_dir(tmp_path)
    bundle.update(lambda c: c["mounts"].append({"destination": "/shared", "type": "bind",
                                                "source": str(src), "options": ["bind"]}))
    bundle.set_args("stat", "-c", "%n=%u:%g", "/shared/theirs")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert p.stdout.strip() == "/shared/theirs=1000:1000"


def test_idmap_takes_the_user_namespace_mappings(bundle, runtime, tmp_path):
    """idmap without mappings of its own, in a user namespace mapping 0 to
    host 100000: files the host's root owns show as the container's root
    (without the idmapped mount they would show as nobody)."""
    src = tmp_path / "rootowned"
    src.mkdir()
    (src / "file").write_text("z")

    def cfg(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["mounts"].append(idmapped_mount(src, options=("rbind", "ridmap"), mappings=False))
    bundle.update(cfg)
    chown_tree(bundle.rootfs, 100000, 100000)
    let_unprivileged_traverse(bundle.rootfs)
    bundle.set_args("stat", "-c", "%u:%g", "/shared/file")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert p.stdout.strip() == "0:0", p.stdout + p.stderr


def test_bad_idmapped_mounts_are_refused(bundle, runtime, tmp_path):
    src = shared_dir(tmp_path)
    cases = [
        ({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
         "mounts[%d].options: idmapped mounts are bind mounts"),
        (idmapped_mount(src, mappings=False), "mounts[%d].options: idmap without uidMappings/gidMappings"),
        (dict(idmapped_mount(src), gidMappings=[]), "mounts[%d].gidMappings: uidMappings and gidMappings"),
    ]
    for mount, message in cases:
        index = len(bundle.config["mounts"])
        bundle.update(lambda c: c["mounts"].append(mount))
        cid = runtime.new_id()
        p = runtime("create", "-b", bundle.path, cid, check=False)
        assert p.returncode == 1
        assert message % index in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
        assert not os.path.exists(os.path.join(runtime.root, cid))
        bundle.update(lambda c: c["mounts"].pop())
