"""What runc works out around CRIU, shared by `checkpoint` and `restore`:
the flags, a criu that works on this kernel, the image directory, the
container's external mounts and the namespaces it joined by path.

CRIU dumps what belongs to the container (tmpfs contents, procfs, sysfs,
devpts, mqueue, the processes) itself.  What comes from outside the
container (bind mounts from the config, the host's cgroup directories bound
under /sys/fs/cgroup, namespaces given by path) must be named: at dump a
mount point gets a key, at restore the key gets a host source.
"""
import os

from . import criu_rpc as rpc
from .errors import PyruncError

CLONE_NEWNET = 0x40000000
# runc's namespace names for CRIU (`--external net[<inode>]:extRootNetNS`).
CRIU_NS_NAMES = {"network": "net", "pid": "pid", "mount": "mnt", "ipc": "ipc", "uts": "uts",
                 "user": "user", "cgroup": "cgroup", "time": "time"}
DESCRIPTORS = "descriptors.json"  # runc's: the init's stdio, for inherit_fd at restore
META = "pyrunc-checkpoint.json"   # ours: which container, which external mounts
MIN_VERSION = 30000               # the VERSION RPC (CRIU 3.0), as runc requires


class CriuOptions:
    """The flags checkpoint and restore share with runc (`page_server`:
    "ADDRESS:PORT"; `empty_ns`: namespace types)."""

    __slots__ = ("criu", "image_path", "work_path", "parent_path", "leave_running", "tcp_established",
                 "ext_unix_sk", "shell_job", "file_locks", "pre_dump", "manage_cgroups_mode",
                 "empty_ns", "auto_dedup", "lazy_pages", "status_fd", "page_server",
                 "lsm_profile", "lsm_mount_context")

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw.get(name))
        self.criu = self.criu or "criu"
        self.empty_ns = list(self.empty_ns or ())
        if self.status_fd is None:
            self.status_fd = -1

    def common_rpc_opts(self):
        """The criu_opts both verbs send (runc's CriuOpts)."""
        opts = {
            "log_level": 4, "manage_cgroups": True, "notify_scripts": True,
            "shell_job": bool(self.shell_job), "tcp_established": bool(self.tcp_established),
            "ext_unix_sk": bool(self.ext_unix_sk), "file_locks": bool(self.file_locks),
            "empty_ns": empty_ns_mask(self.empty_ns), "orphan_pts_master": True,
            "auto_dedup": bool(self.auto_dedup), "lazy_pages": bool(self.lazy_pages),
        }
        if self.lsm_profile:
            opts["lsm_profile"] = self.lsm_profile
        if self.lsm_mount_context:
            opts["lsm_mount_context"] = self.lsm_mount_context
        mode = self.manage_cgroups_mode
        if mode:
            if mode not in rpc.CG_MODES:
                raise PyruncError("--manage-cgroups-mode: invalid value %r (soft, full or strict)" % mode)
            opts["manage_cgroups_mode"] = rpc.CG_MODES[mode]
        return opts


def empty_ns_mask(types):
    """runc always gives CRIU an empty network namespace (it does not manage
    network devices); `network` is the only type --empty-ns takes."""
    for t in types:
        if t != "network":
            raise PyruncError("--empty-ns: namespace %r is not supported (only 'network')" % t)
    return CLONE_NEWNET


def ready_criu(opts, features=None):
    """The criu binary, checked: it answers VERSION (>= 3.0) and CHECK (it
    works on this kernel).  `features`: a criu_features query; -> (binary,
    version, the features CRIU reports)."""
    binary = rpc.find_criu(opts.criu)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        swrk = rpc.Swrk(binary, stdio=(devnull, devnull, devnull))
    finally:
        os.close(devnull)
    try:
        try:
            version = rpc.version_number(swrk.request(rpc.VERSION, keep_open=True))
        except rpc.CriuError as e:
            raise rpc.CriuError("%s does not answer CRIU's VERSION RPC (%s)" % (binary, e)) from None
        if version < MIN_VERSION:
            raise rpc.CriuError("CRIU version %d must be %d or higher (%s)" % (version, MIN_VERSION, binary))
        found = {}
        if features:
            found = swrk.request(rpc.FEATURE_CHECK, keep_open=True, features=features).get("features") or {}
        try:
            swrk.request(rpc.CHECK, opts={"images_dir_fd": -1})
        except rpc.CriuError:
            raise rpc.CriuError("%s (CRIU %s) does not work on this kernel: `criu check` fails"
                                % (binary, _dotted(version))) from None
    finally:
        swrk.close()
    return binary, version, found


CAP_SYS_RESOURCE = 24
PIPE_BUFFER_SIZE = 40  # sizeof(struct pipe_buffer) on 64-bit kernels


def lazy_page_server_blocker():
    """Why CRIU's page server cannot serve lazy pages here, or None.  It
    grows a pipe to (8 pages / sizeof(pipe_buffer)) pages, which the kernel
    rounds up to a power of two and allows above fs.pipe-max-size only with
    CAP_SYS_RESOURCE; CRIU ignores the failure and dies at the first page
    asked for ("page-pipe: splice: Bad file descriptor"), leaving the
    restore side waiting."""
    page = os.sysconf("SC_PAGE_SIZE")
    pages = 8 * page // PIPE_BUFFER_SIZE
    wanted = (1 << (pages - 1).bit_length()) * page
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            limit = int(f.read())
        with open("/proc/self/status") as f:
            caps = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))
    except (OSError, ValueError, StopIteration):
        return None  # cannot tell: let CRIU try
    if wanted <= limit or caps >> CAP_SYS_RESOURCE & 1:
        return None
    return ("--lazy-pages: CRIU's page server cannot work here: it grows a pipe to %d bytes, above "
            "fs.pipe-max-size (%d), which needs CAP_SYS_RESOURCE, and pyrunc runs without it" % (wanted, limit))


def _dotted(v):
    return "%d.%d.%d" % (v // 10000, v // 100 % 100, v % 100) if v % 100 else "%d.%d" % (v // 10000, v // 100 % 100)


def open_dir(path, what):
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError("%s %s: %s" % (what, path, e.strerror)) from None


def make_dir(path, what):
    """mkdir (one level, 0700; an existing directory is fine: a container
    may be checkpointed more than once) and open it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise PyruncError("%s %s: %s" % (what, path, e.strerror)) from None
    return open_dir(path, what)


def norm(path):
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def is_bind(m):
    return m.type == "bind" or "bind" in m.options or "rbind" in m.options


def external_mounts(spec, cgroup_record, bundle, rootfs):
    """[(key, host source)] for every mount from outside the container, in
    config order: binds, the host's v1 cgroup directories bound under a
    cgroup mount (without a cgroup namespace), bound device nodes.  A key
    is where the mount really is: its destination with the rootfs's
    symlinks followed (create mounts there; CRIU sees it there)."""
    from .rootfs import resolve_in_rootfs

    out = []
    cgroupns = any(ns.type == "cgroup" for ns in spec.linux.namespaces)
    for m in spec.mounts:
        if is_bind(m):
            out.append((resolve_in_rootfs(rootfs, m.destination), os.path.join(bundle, m.source or "")))
        elif m.type == "cgroup" and not cgroupns and cgroup_record and cgroup_record.get("version") == 1:
            from .cgroups.mount import v1_mount_plan

            for h in v1_mount_plan(cgroup_record.get("paths") or {}):
                out.append((norm(m.destination + "/" + h["name"]), h["source"]))
    for d in spec.linux.devices:
        out.append((resolve_in_rootfs(rootfs, d.path), d.path))
    return out


def mount_points(pid):
    """The mount points of `pid`'s mount namespace, as it sees them."""
    from .cgroups.paths import unescape  # mountinfo's octal escapes

    with open("/proc/%d/mountinfo" % pid) as f:
        return {unescape(line.split()[4]) for line in f if line.strip()}


def mount_ids(pid):
    with open("/proc/%d/mountinfo" % pid) as f:
        return {int(line.split(None, 1)[0]) for line in f if line.strip()}


def ns_key(ns_type):
    """runc's key for an external namespace: extRootNetNS, extRootPidNS."""
    return "extRoot%sNS" % CRIU_NS_NAMES[ns_type].capitalize()


def joined_namespaces(spec):
    """[(type, path)] of the namespaces the config joins by path."""
    return [(ns.type, ns.path) for ns in spec.linux.namespaces if ns.path]


def read_json(path):
    from .jsonio import loads

    try:
        with open(path, "rb") as f:
            return loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError:
        raise PyruncError("%s: not valid JSON" % path) from None


def failure(what, err, log):
    """One line for a failed CRIU request: the first real error CRIU logged
    (its reply carries the first logged error, often the harmless rlimit
    one; the last is only "... FAILED.") and the log's path."""
    first = ""
    try:
        with open(log, errors="replace") as f:
            errors = [ln for ln in f.read().splitlines() if "Error (" in ln]
        real = [e for e in errors if "RLIMIT_NOFILE" not in e and not e.rstrip().endswith("FAILED.")]
        pick = real[0] if real else (errors[-1] if errors else "")
        first = pick.split("): ", 1)[-1].strip()
    except OSError:
        log = None
    if isinstance(err, rpc.CriuTimeout):  # the log says where criu was, not that it hung
        first = str(err) + ("; its last error: " + first if first else "")
    elif not first:
        first = str(err).replace("\n", " ").strip()
    return rpc.CriuError("%s: %s%s" % (what, first, " (log: %s)" % log if log else ""))
