"""CVE-2019-5736 class: the container must never get the runtime's own
executable (here: the host's Python interpreter) as a process it can
reopen for writing through /proc/<pid>/exe.

The init is a forked Python, so `/proc/self/exe` inside the container
names the host interpreter.  A config whose process is `/proc/self/exe`
(or a `#!/proc/self/exe` script) would run that binary in the container,
where a root process could reopen it through /proc/<pid>/exe and
overwrite it on the host.  The check runs in the init, just before the
container process is executed.
"""
import os

from ..errors import ExecError

ST_RDONLY = 1


def runtime_exe_identity():
    """(st_dev, st_ino) of the running interpreter: read before pivot_root."""
    st = os.stat("/proc/self/exe")
    return st.st_dev, st.st_ino


def refuse_runtime_binary(path, runtime_identity, display_name):
    """Refuse to exec `path` (or a script's interpreter) if it is the
    runtime's own binary on a writable mount."""
    for candidate in (path, _shebang_interpreter(path)):
        if candidate is None:
            continue
        try:
            fd = os.open(candidate, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != runtime_identity:
                continue
            if os.fstatvfs(fd).f_flag & ST_RDONLY:  # fd, not a /proc path the container could plant
                continue  # e.g. the host's /usr bound read-only: can't be written
        finally:
            os.close(fd)
        raise ExecError('exec: "%s": refusing to run the runtime\'s own binary in the container '
                        '(CVE-2019-5736)' % display_name, 126)


def _shebang_interpreter(path):
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    parts = head[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(parts[0]) if parts else None
