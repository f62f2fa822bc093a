"""Unit tests of the core pieces that need no root."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from pyrunc import jsonio
from pyrunc.cli import VERBS, parse_flags, reorder, UsageError
from pyrunc.errors import ContainerExists, InvalidID
from pyrunc.signals import parse_signal
from pyrunc.spec import Spec
from pyrunc.log import rfc3339_now
from pyrunc.state import StateDir, validate_id, write_atomic

from conftest import PYRUNC


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "/", "a b", "x\x00y", "é"])
def test_invalid_ids(cid):
    with pytest.raises(InvalidID):
        validate_id(cid)


@pytest.mark.parametrize("cid", ["a", "web-1", "A_b.c+d", "x" * 200, "..."])
def test_valid_ids(cid):
    validate_id(cid)


def test_state_dir_make_lock_remove(tmp_path):
    sd = StateDir(str(tmp_path / "root"), "c1")
    sd.make()
    assert oct(os.stat(tmp_path / "root").st_mode & 0o777) == "0o700"
    with pytest.raises(ContainerExists):
        StateDir(str(tmp_path / "root"), "c1").make()
    sd.write_json("state.json", {"a": [1, "x"]})
    assert sd.read_json("state.json") == {"a": [1, "x"]}
    assert os.stat(sd.file("state.json")).st_mode & 0o777 == 0o600  # not world-writable
    sd.remove()
    assert not os.path.exists(sd.path)


def test_write_atomic_replaces_whole(tmp_path):
    path = str(tmp_path / "f")
    write_atomic(path, b"old")
    write_atomic(path, b"new content")
    assert open(path, "rb").read() == b"new content"
    assert os.listdir(tmp_path) == ["f"]


def test_rfc3339_now_shape():
    t = rfc3339_now()
    assert t.endswith("Z") and t[10] == "T" and len(t) >= 20


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20)


@given(json_values)
def test_jsonio_matches_json(value):
    assert jsonio.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert jsonio.dumps_indent(value) == json.dumps(value, indent=2)
    assert jsonio.loads(json.dumps(value, indent=1)) == value


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "1 2", '{"a":}'])
def test_jsonio_rejects(bad):
    with pytest.raises(ValueError):
        jsonio.loads(bad)


def test_flag_parsing_go_style():
    flags = VERBS["create"][0]
    ns, rest = parse_flags(flags, ["--bundle=/b", "-pid-file", "/p", "--no-pivot", "id"])
    assert (ns.bundle, ns.pid_file, ns.no_pivot, rest) == ("/b", "/p", True, ["id"])
    ns, rest = parse_flags(flags, reorder(flags, ["id", "--pid-file", "/p", "-b", "/b"]))
    assert (ns.bundle, ns.pid_file, rest) == ("/b", "/p", ["id"])
    with pytest.raises(UsageError):
        parse_flags(flags, ["--bogus", "id"])


def test_signals():
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    assert parse_signal("term") == 15
    assert parse_signal("SIGRTMIN+1") > 32


def test_spec_model_from_example():
    doc = {
        "ociVersion": "1.3.0",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
                    "capabilities": {"bounding": ["CAP_KILL"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "hooks": {"poststop": [{"path": "/bin/true", "timeout": 3}]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}],
                  "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]},
    }
    s = Spec(doc)
    assert s.process.user.additional_gids == [3]
    assert s.process.capabilities.bounding == ["CAP_KILL"] and s.process.capabilities.ambient == []
    assert s.root.readonly is False
    assert s.hooks.get("poststop")[0].args == ["/bin/true"] and s.hooks.get("prestart") == []
    assert s.linux.namespace("network").path == "/proc/1/ns/net"
    assert s.linux.uid_mappings[0].line() == "0 1000 10\n"
    assert s.linux.masked_paths == [] and s.linux.resources is None


def test_verbs_do_not_import_heavy_modules(tmp_path):
    """The CLI's hot path (state, list) never imports jsonschema, pyroute2,
    argparse, json (its `re`), subprocess or dataclasses."""
    pkg_parent = os.path.dirname(os.path.dirname(__import__("pyrunc").__file__))
    code = ("import sys; sys.path.insert(0, %r); sys.argv=['pyrunc','--root',%r,'list']\n"
            "from pyrunc.cli import main\n"
            "main(['--root',%r,'list']); main(['--root',%r,'state','nope'])\n"
            "print(' '.join(sorted(sys.modules)))") % ((pkg_parent,) + (str(tmp_path),) * 3)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    mods = set(out.stdout.split())
    assert "pyrunc.cli" in mods, out.stderr
    for heavy in ("jsonschema", "pyroute2", "argparse", "json", "re", "subprocess", "dataclasses", "typing"):
        assert heavy not in mods, heavy


def test_cli_usage_errors():
    p = subprocess.run([PYRUNC, "--root", "/nonexistent-pyrunc-root", "foo"], capture_output=True, text=True)
    assert p.returncode == 3 and "No help topic for 'foo'" in p.stderr
    p = subprocess.run([PYRUNC, "state"], capture_output=True, text=True)
    assert p.returncode == 1 and '"state" requires exactly 1 argument(s)' in p.stderr.replace('\\"', '"')
    p = subprocess.run([PYRUNC, "create", "--bogus", "x"], capture_output=True, text=True)
    assert p.returncode == 1 and "flag provided but not defined: -bogus" in p.stderr
    p = subprocess.run([PYRUNC, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and "spec: 1.3.0" in p.stdout


def test_is_frozen_reads_the_recorded_freezer(tmp_path):
    """`state`'s paused check reads the freezer file named by the record
    (v1 freezer.state, v2 cgroup.events) without building a manager."""
    from pyrunc.cgroups import is_frozen

    v1 = tmp_path / "freezer"
    v1.mkdir()
    (v1 / "freezer.state").write_text("FROZEN\n")
    assert is_frozen({"version": 1, "paths": {"freezer": str(v1)}})
    (v1 / "freezer.state").write_text("THAWED\n")
    assert not is_frozen({"version": 1, "paths": {"freezer": str(v1)}})
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert is_frozen({"version": 2, "path": str(v2)})
    (v2 / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert not is_frozen({"version": 2, "path": str(v2)})
    assert not is_frozen({"version": 1, "paths": {}})
    assert not is_frozen({"version": 2, "path": str(tmp_path / "gone")})


@pytest.mark.parametrize("exc,line", [
    (OSError(5, "Input/output error"), "pyrunc state failed: Input/output error"),
    (OSError(2, "No such file or directory", "/x/y"), "pyrunc state failed: /x/y: No such file or directory"),
])
def test_os_error_is_one_clean_line(monkeypatch, capfd, exc, line):
    """An OSError escaping a verb: one line, the file named once, no '::'."""
    from pyrunc import cli

    def boom(g, ns):
        raise exc
    monkeypatch.setitem(cli.HANDLERS, "state", boom)
    assert cli.main(["state", "c1"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ('msg="%s"' % line) in err[0], err
