"""Rootless: `pyrunc spec --rootless` and `pyrunc --root $XDG_RUNTIME_DIR run`
as an unprivileged user the test creates."""
import os
import pwd
import shutil
import subprocess

import pytest

from conftest import PYRUNC, make_rootfs, needs_root

pytestmark = needs_root
USER = "pyrunc-rootless-test"


@pytest.fixture
def test_user():
    if shutil.which("useradd") is None:
        pytest.skip("useradd not available on this host")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
        pw = pwd.getpwnam(USER)
    return pw


def readable_by_all(path):
    path = os.path.abspath(path)
    while path != "/":
        os.chmod(path, os.stat(path).st_mode | 0o005)
        path = os.path.dirname(path)


def test_rootless_run_as_unprivileged_user(test_user, tmp_path):
    if not os.access(PYRUNC, os.X_OK):
        pytest.skip("pyrunc launcher not found beside the test interpreter")
    readable_by_all(os.path.dirname(os.path.dirname(PYRUNC)))  # the venv
    base = tmp_path / "rootless"
    bundle = base / "bundle"
    xdg = base / "xdg"
    os.makedirs(bundle / "rootfs")
    make_rootfs(str(bundle / "rootfs"))
    os.makedirs(xdg)
    for dirpath, dirnames, filenames in os.walk(base):
        os.lchown(dirpath, test_user.pw_uid, test_user.pw_gid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), test_user.pw_uid, test_user.pw_gid)
    os.chmod(xdg, 0o700)
    readable_by_all(base)
    as_user = ["setpriv", "--reuid=%d" % test_user.pw_uid, "--regid=%d" % test_user.pw_gid, "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(xdg), "HOME": str(base)}
    subprocess.run(as_user + [PYRUNC, "spec", "--rootless", "--bundle", str(bundle)], check=True, env=env)
    import json
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname; touch /tmp/made-inside 2>/dev/null; echo done"]
    cfg["root"]["readonly"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    p = subprocess.run(as_user + [PYRUNC, "--root", str(xdg), "run", "-b", str(bundle), "rl1"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "0"  # root inside...
    assert lines[1].split() == ["0", str(test_user.pw_uid), "1"]  # ...is the user outside
    assert lines[2] == "pyrunc" and "done" in p.stdout
    st = os.stat(bundle / "rootfs" / "tmp" / "made-inside")
    assert st.st_uid == test_user.pw_uid
    assert os.listdir(xdg) == []  # run deleted its state
