"""`os` for the verbs that must start fast, without its import: `import os`
costs ~1 ms of CPU per process here (it builds os.environ as a
MutableMapping, importing _collections_abc, stat and posixpath), as much as
the rest of `state` after the interpreter is up.  The functions themselves
are posix's (os re-exports the very same objects: os.open is posix.open);
`path` has the few os.path calls those verbs make; any other name imports
the real os on first use, so a module may use this as `os` throughout.

    from . import lazyos as os
"""
from posix import *  # noqa: F401,F403
from posix import _exit  # noqa: F401  (not exported by *)
from posix import stat as _stat

del environ  # noqa: F821  posix's is a dict of bytes; os.environ is the real os's

SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2


def __getattr__(name):
    import os

    return getattr(os, name)


def _is_dir(mode):
    return mode & 0o170000 == 0o040000


class _Path:
    """The os.path calls of the fast verbs, for str paths, as posixpath
    does them (tests/unit/test_lazyos.py compares the two); any other
    os.path name is posixpath's (which imports os)."""

    def __getattr__(self, name):
        import posixpath

        return getattr(posixpath, name)

    @staticmethod
    def join(a, *parts):
        for b in parts:
            if b.startswith("/"):
                a = b
            elif not a or a.endswith("/"):
                a += b
            else:
                a += "/" + b
        return a

    @staticmethod
    def exists(p):
        try:
            _stat(p)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def isdir(p):
        try:
            return _is_dir(_stat(p).st_mode)
        except (OSError, ValueError):
            return False

    @staticmethod
    def dirname(p):
        i = p.rfind("/") + 1
        head = p[:i]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head

    @staticmethod
    def basename(p):
        return p[p.rfind("/") + 1:]

    @staticmethod
    def normpath(p):
        if not p:
            return "."
        lead = 2 if p.startswith("//") and not p.startswith("///") else 1 if p.startswith("/") else 0
        comps = []
        for c in p.split("/"):
            if c in ("", "."):
                continue
            if c != ".." or (not lead and not comps) or (comps and comps[-1] == ".."):
                comps.append(c)
            elif comps:
                comps.pop()
        return "/" * lead + "/".join(comps) or "."

    @staticmethod
    def abspath(p):
        return _Path.normpath(p if p.startswith("/") else _Path.join(getcwd(), p))  # noqa: F405


path = _Path()
