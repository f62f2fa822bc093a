"""User namespaces: the parent writes the id maps before the child goes on;
container root is the configured host uid -- seen from inside (uid_map)
and from the host (ownership of a file created through a bind mount)."""
import os

from conftest import needs_root

pytestmark = needs_root

HOST_BASE = 200000


def chown_tree(path, uid, gid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def let_unprivileged_traverse(path):
    """The container's root is an unprivileged host uid: like runc, pyrunc
    needs the rootfs path to be searchable by it (pytest's tmp is 0700)."""
    path = os.path.abspath(path)
    while path not in ("/", "/tmp"):
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = os.path.dirname(path)


def test_uid_gid_maps_and_file_ownership(bundle, runtime, tmp_path):
    let_unprivileged_traverse(bundle.rootfs)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, HOST_BASE, HOST_BASE)
    chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)

    def cfg(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
        c["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind"]})
        c["root"]["readonly"] = False
        for key in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][key].append("CAP_CHOWN")
    bundle.update(cfg)
    bundle.set_args("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                "touch /shared/by-root; touch /shared/by-user && chown 1000:1000 /shared/by-user; "
                                "readlink /proc/self/ns/user")
    p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0].split() == ["0", str(HOST_BASE), "65536"]
    assert lines[1].split() == ["0", str(HOST_BASE), "65536"]
    assert lines[2] == "0"
    assert lines[3] != os.readlink("/proc/self/ns/user")
    st = os.stat(shared / "by-root")
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
    st = os.stat(shared / "by-user")
    assert (st.st_uid, st.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)
