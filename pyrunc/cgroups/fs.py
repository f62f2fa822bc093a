"""Reading and writing cgroup files, with one-line errors naming the field.

    write(dirpath, "memory.limit_in_bytes", 1 << 20, "linux.resources.memory.limit")
    -> CgroupError("linux.resources.memory.limit: write /sys/fs/cgroup/memory/x/memory.limit_in_bytes: Device or resource busy")
"""
import errno
from .. import lazyos as os  # os without its import cost (see pyrunc.lazyos)
import time

from ..errors import PyruncError


class CgroupError(PyruncError, OSError):
    """A cgroup operation failed; the message names the field or file.
    Also an OSError (with .errno when a syscall failed), so callers that
    treat cleanup failures as OSError keep working."""

    def __init__(self, message, errno_=None):
        super().__init__(message)
        self.errno = errno_


def write(dirpath, name, value, field=None):
    path = dirpath + "/" + name
    data = value if isinstance(value, bytes) else str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise _error(field, "open", path, e) from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise _error(field, "write", path, e, data) from None
    finally:
        os.close(fd)


def _error(field, op, path, e, data=None):
    what = "%s %s" % (op, path)
    if data is not None and len(data) < 64:
        what += " (%s)" % data.decode(errors="replace").strip()
    msg = "%s: %s" % (what, e.strerror)
    return CgroupError("%s: %s" % (field, msg) if field else msg, e.errno)


def read(dirpath, name):
    with open(dirpath + "/" + name) as f:
        return f.read()


def read_or_none(dirpath, name):
    try:
        return read(dirpath, name)
    except OSError:
        return None


def read_int(dirpath, name, default=None):
    """An integer file ("max" reads as None); default when absent."""
    text = read_or_none(dirpath, name)
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(dirpath, name):
    """A "key value" per line file (memory.stat, cpu.stat, memory.events)
    as a dict of ints; {} when absent."""
    text = read_or_none(dirpath, name)
    out = {}
    if text:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2:
                try:
                    out[parts[0]] = int(parts[1])
                except ValueError:
                    pass
    return out


def exists(dirpath, name):
    return os.path.exists(dirpath + "/" + name)


def mkdirs(path, created):
    """mkdir -p that appends every directory it made itself to `created`
    (shallowest first), so that destroy removes only those."""
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue
        created.append(d)
    return [d for d in reversed(missing)]


def procs(dirpath, recursive=True):
    """Pids in a cgroup directory (and, recursively, its children)."""
    out = []
    for root in cgroup_tree(dirpath) if recursive else [dirpath]:
        text = read_or_none(root, "cgroup.procs")
        if text:
            out.extend(int(x) for x in text.split())
    return out


def cgroup_tree(top):
    """`top` and every directory below it, parents first, as os.walk(top)
    gives them (nothing when `top` cannot be listed; symlinks not
    followed), with posix's scandir: `delete` need not import os.  A
    directory whose link count is 2 has no subdirectory (cgroupfs counts
    them, as traditional filesystems do): it is not listed."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            if os.stat(d).st_nlink == 2:
                subs = []
            else:
                with os.scandir(d) as entries:
                    subs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        yield d
        stack.extend(reversed(subs))


def rmdir_tree(path, attempts=20):
    """Remove a cgroup directory and every child cgroup under it, retrying
    briefly while its last tasks exit (rmdir says EBUSY until they have)."""
    try:
        os.rmdir(path)  # the usual case: no sub-cgroup, no task left; no walk
        return
    except FileNotFoundError:
        return
    except OSError:
        pass  # sub-cgroups or exiting tasks: the walk and retries below
    if not os.path.isdir(path):
        return
    children = []
    for root, dirs, _files in os.walk(path):
        children.extend(os.path.join(root, d) for d in dirs)
    for d in sorted(children, key=len, reverse=True) + [path]:
        _rmdir_retry(d, attempts)


def leaf_dirs(d):
    """The container's own cgroup directories (one per v1 hierarchy) in a
    manager's to_dict() record."""
    if d.get("paths") is not None:
        return set(d["paths"].values())
    return {d["path"]} if d.get("path") else set()


def remove_created(created, leaves):
    """Remove the cgroups a container's create made, deepest first.  Its
    own cgroups (`leaves`) go with everything under them (exec
    sub-cgroups), waiting for exiting tasks; a parent it happened to create
    is shared with sibling containers, so it goes only if already empty,
    never recursively.  Raises the first error after trying them all."""
    first_error = None
    for d in reversed(created):
        try:
            if d in leaves:
                rmdir_tree(d)
            else:
                rmdir_if_empty(d)
        except CgroupError as e:
            first_error = first_error or e
    if first_error is not None:
        raise first_error


def rmdir_if_empty(path):
    """One rmdir: a shared parent still holding other cgroups stays."""
    import errno

    try:
        os.rmdir(path)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise CgroupError("rmdir %s: %s" % (path, e.strerror), e.errno) from None


def _rmdir_retry(path, attempts):
    delay = 0.01
    for i in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or i == attempts - 1:
                err = CgroupError("remove cgroup %s: %s" % (path, e.strerror), e.errno)
                err.filename = path  # which one: a sub-cgroup of the one asked for
                raise err from None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
