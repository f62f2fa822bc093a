"""pyrunc.lazyos stands in for os on the fast verbs: its path functions must
give what posixpath gives, and every other name must be os's own."""
import os
import posixpath

from hypothesis import given, settings, strategies as st

from pyrunc import lazyos

SEGMENTS = st.sampled_from(["", ".", "..", "a", "b", "c.d", "/", "//", "///"])
PATHS = st.lists(SEGMENTS, max_size=7).map("/".join) | st.lists(SEGMENTS, max_size=7).map("".join)


@settings(max_examples=400, deadline=None)
@given(PATHS, st.lists(PATHS, max_size=3))
def test_path_functions_match_posixpath(p, more):
    assert lazyos.path.join(p, *more) == posixpath.join(p, *more)
    assert lazyos.path.normpath(p) == posixpath.normpath(p)
    assert lazyos.path.dirname(p) == posixpath.dirname(p)
    assert lazyos.path.basename(p) == posixpath.basename(p)
    assert lazyos.path.abspath(p) == posixpath.abspath(p)


def test_exists_and_isdir(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for p in (str(tmp_path), str(f), str(tmp_path / "missing"), "/proc/self/fd/0", "bad\0path"):
        assert lazyos.path.exists(p) == os.path.exists(p), p
        assert lazyos.path.isdir(p) == os.path.isdir(p), p


def test_same_functions_as_os():
    for name in ("open", "read", "write", "close", "kill", "getpid", "O_CLOEXEC", "_exit", "stat", "rmdir"):
        assert getattr(lazyos, name) is getattr(os, name) or getattr(lazyos, name) == getattr(os, name), name
    assert lazyos.walk is os.walk and lazyos.environ is os.environ  # the real os, on demand
    assert (lazyos.SEEK_SET, lazyos.SEEK_CUR, lazyos.SEEK_END) == (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)


def test_other_path_names_are_posixpath():
    assert lazyos.path.islink is posixpath.islink and lazyos.path.sep == "/"


def test_cgroup_tree_walks_as_os_walk(tmp_path):
    """cgroups.fs.cgroup_tree (delete's walk without os) gives os.walk's
    directories, parents first, not following a symlink."""
    from pyrunc.cgroups.fs import cgroup_tree

    for d in ("a/b/c", "a/d", "e"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "f").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    walked = [root for root, _dirs, _files in os.walk(str(tmp_path))]
    got = list(cgroup_tree(str(tmp_path)))
    assert sorted(got) == sorted(walked)
    assert all(got.index(os.path.dirname(d)) < got.index(d) for d in got[1:])
    assert list(cgroup_tree(str(tmp_path / "missing"))) == []
