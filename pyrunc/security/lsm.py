"""AppArmor and SELinux labels for the container process.

Labels are written to the process's own /proc attr files through a procfs
handle that is verified to be a real procfs (statfs magic) and opened
relative to it without following symlinks, so a container that mounted
something over /proc cannot redirect the write (CVE-2025-52881 class).
When the LSM is not enabled on the host, asking for a label is an error
that says so (runc refuses an SELinux label likewise).
"""
import os

from ..errors import ConfigError, PyruncError
from ..procfs import PROC_SUPER_MAGIC


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip().upper().startswith("Y")
    except OSError:
        return False


def selinux_enabled():
    try:
        with open("/proc/filesystems") as f:
            if "selinuxfs" not in f.read():
                return False
    except OSError:
        return False
    return os.path.exists("/sys/fs/selinux/enforce")


def check_labels(process, mount_label=None):
    """Before anything is created: refuse labels the host cannot apply."""
    if process.apparmor_profile and not apparmor_enabled():
        raise ConfigError("process.apparmorProfile: %r given but AppArmor is not enabled on this host"
                          % process.apparmor_profile)
    if process.selinux_label and not selinux_enabled():
        raise ConfigError("process.selinuxLabel: selinux label is specified in config, "
                          "but selinux is disabled or not supported")
    # linux.mountLabel is only a mount option for SELinux: without it, it
    # is ignored (runc and crun do the same).


def open_verified_procfs(path="/proc"):
    """An fd of a procfs root; anything else mounted there is refused."""
    from .. import linux

    fd = os.open(path, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        magic = linux.fstatfs_type(fd)
    except BaseException:
        os.close(fd)
        raise
    if magic != PROC_SUPER_MAGIC:
        os.close(fd)
        raise PyruncError("%s is not procfs (statfs type %#x): refusing to write LSM attributes" % (path, magic))
    return fd


def write_attr(procfd, attr_path, value):
    """Write `value` to thread-self/attr/<attr_path> under a verified procfs
    fd, resolving beneath it with no symlinks other than thread-self and
    never across a mount: a file bound over attr/exec inside that procfs
    would take the label silently (CVE-2019-19921 class)."""
    from .. import linux

    tid = os.gettid() if hasattr(os, "gettid") else os.getpid()
    rel = "%d/task/%d/attr/%s" % (os.getpid(), tid, attr_path)
    fd = linux.openat2(procfd, rel, os.O_WRONLY, linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS
                       | linux.RESOLVE_NO_MAGICLINKS | linux.RESOLVE_NO_XDEV)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def apply_exec_labels(process, proc_path="/proc"):
    """In the init/exec child, just before execve: labels take effect on exec."""
    if not process.apparmor_profile and not process.selinux_label:
        return
    procfd = open_verified_procfs(proc_path)
    try:
        if process.apparmor_profile:
            try:
                write_attr(procfd, "apparmor/exec", "exec " + process.apparmor_profile)
            except FileNotFoundError:  # kernels without the per-LSM directory
                write_attr(procfd, "exec", "exec " + process.apparmor_profile)
        if process.selinux_label:
            write_attr(procfd, "exec", process.selinux_label)
    finally:
        os.close(procfd)
