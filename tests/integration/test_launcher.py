"""The installed launcher (what `pip install .` puts in bin/, the venv the
tests run is such an install): a compiled program that makes the verb one
exec of the venv's Python under -I -S, also when called through a symlink
named `runc`.  Seen from outside the runtime: a createRuntime hook (run by
the runtime process itself) records its parent's pid, argv and executable."""
import os
import subprocess
import sys

import pytest

from conftest import PYRUNC, is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root (real containers)")


def _observe(binary, bundle, tmp_path, rt_root):
    """Run a container with `binary`; -> (pid we started, the runtime's
    pid as the hook saw it, its argv, its executable)."""
    out = tmp_path / "seen"
    script = 'echo $PPID > {o}.pid; cat /proc/$PPID/cmdline > {o}.argv; readlink /proc/$PPID/exe > {o}.exe'
    bundle.update(lambda c: c.setdefault("hooks", {}).update(
        createRuntime=[{"path": "/bin/sh", "args": ["sh", "-c", script.format(o=out)]}]))
    p = subprocess.Popen([binary, "--root", str(rt_root), "run", "--bundle", bundle.path, "launcher-t"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    read = lambda ext: open("%s.%s" % (out, ext), "rb").read()
    return p.pid, int(read("pid")), read("argv").split(b"\0")[:-1], read("exe").decode().strip()


def test_installed_launcher_is_compiled(tmp_path):
    with open(PYRUNC, "rb") as f:
        assert f.read(4) == b"\x7fELF", "%s is a script, not the compiled launcher" % PYRUNC


@pytest.mark.parametrize("via_symlink", [False, True], ids=["pyrunc", "runc-symlink"])
def test_one_exec_of_python_with_I_S(bundle, tmp_path, via_symlink):
    binary = PYRUNC
    if via_symlink:
        binary = str(tmp_path / "bin" / "runc")
        os.makedirs(os.path.dirname(binary))
        os.symlink(PYRUNC, binary)
    started, runtime_pid, argv, exe = _observe(binary, bundle, tmp_path, tmp_path / "state")
    assert runtime_pid == started  # the process we started is the runtime: exec'd, never forked
    assert argv[1:4] == [b"-I", b"-S", b"-c"], argv
    assert argv[5].decode() == os.path.realpath(PYRUNC)  # the venv is found through the symlink
    assert argv[6:] == [b"--root", str(tmp_path / "state").encode(), b"run", b"--bundle",
                        bundle.path.encode(), b"launcher-t"]
    assert exe == os.path.realpath(os.path.join(os.path.dirname(PYRUNC), "python3"))
    assert os.path.realpath(sys.executable) == exe  # the venv's interpreter, not another
