"""`checkpoint`: dump a running container with CRIU (swrk RPC), as runc
does: its processes, with the mounts and namespaces that come from outside
described so that `restore` can map them back; then, unless
--leave-running (or --pre-dump), the container is gone and deleted."""
import os

from . import criu_rpc as rpc
from . import criu_setup as cs
from .errors import PyruncError, StateError


def checkpoint(cid, root, opts):
    """Checkpoint container `cid` under `root` with CriuOptions `opts`."""
    c = _running_container(cid, root)
    rpc_opts = cs.CriuOptions.common_rpc_opts(opts)  # the flags first
    image_path = os.path.abspath(opts.image_path or "checkpoint")
    parent = _check_parent(image_path, opts.parent_path)
    page_server = _page_server(opts.page_server)
    if opts.lazy_pages:
        if opts.status_fd >= 0:
            _check_status_fd(opts.status_fd)
        blocker = cs.lazy_page_server_blocker()
        if blocker:
            raise PyruncError(blocker)
    binary, _, found = cs.ready_criu(opts, _wanted_features(opts, parent))
    _check_features(opts, parent, found)
    spec = c.spec()
    rpc_opts.update(pid=c.pid, root=c.record.get("rootfs"), leave_running=bool(opts.leave_running),
                    log_file="dump.log", external=_external_namespaces(spec), **_config_file(spec))
    if parent:
        rpc_opts.update(parent_img=parent, track_mem=True)
    if page_server:
        rpc_opts["ps"] = page_server
    freezer = _freezer_path(c.record.get("cgroup"))
    if freezer:
        rpc_opts["freeze_cgroup"] = freezer
    _dump_into(image_path, binary, c, spec, rpc_opts, opts)
    if not (opts.leave_running or opts.pre_dump):
        # CRIU has killed the processes: delete what is left (cgroups,
        # poststop hooks, the state directory), as runc destroys it.
        c.delete(force=True)


def _running_container(cid, root):
    from .container import CREATED, STOPPED, Container

    c = Container.load(cid, root)
    status = c.status()
    if status in (CREATED, STOPPED):
        raise StateError("container cannot be checkpointed in %s state" % status)
    return c


def _wanted_features(opts, parent):
    features = {}
    if opts.pre_dump or parent:
        features["mem_track"] = True
    if opts.lazy_pages:
        features["lazy_pages"] = True
    return features


def _dump_into(image_path, binary, c, spec, rpc_opts, opts):
    """The image (and work) directory, our records in it, the dump.  An
    image directory made here goes again if the dump fails before CRIU
    wrote its log (otherwise the log stays: the error names it)."""
    made_images = not os.path.isdir(image_path)
    images = cs.make_dir(image_path, "--image-path")
    work = None
    try:
        rpc_opts["images_dir_fd"] = images
        if opts.work_path:
            work = cs.make_dir(os.path.abspath(opts.work_path), "--work-path")
            rpc_opts["work_dir_fd"] = work
        if not opts.pre_dump:
            keys = _dump_external_mounts(spec, c, rpc_opts)
            files = external_stdio(c.pid)
            rpc_opts["external"] += sorted(files)
            _write_image_meta(images, c, keys, files)
        log = os.path.join(os.path.abspath(opts.work_path) if opts.work_path else image_path, "dump.log")
        _dump(binary, rpc_opts, opts, log)
    except BaseException:
        if made_images and not os.path.exists(os.path.join(image_path, "dump.log")):
            _remove_tree(image_path)
        raise
    finally:
        for fd in (images, work):
            if fd is not None:
                os.close(fd)


def _check_parent(image_path, parent):
    """--parent-path: relative to the image directory, an existing one."""
    if not parent:
        return None
    if os.path.isabs(parent):
        raise PyruncError("--parent-path must be relative")
    real = os.path.join(image_path, parent)
    if not os.path.isdir(real):
        raise PyruncError("invalid --parent-path: %s: no such directory" % real)
    return parent


def _check_features(opts, parent, found):
    if (opts.pre_dump or parent) and not found.get("mem_track"):
        what = "--pre-dump" if opts.pre_dump else "--parent-path"
        raise PyruncError("%s needs dirty memory tracking, which this kernel lacks "
                          "(no soft-dirty bits: CONFIG_MEM_SOFT_DIRTY); CRIU cannot pre-dump here" % what)
    if opts.lazy_pages and not found.get("lazy_pages"):
        raise PyruncError("--lazy-pages: CRIU reports no lazy-pages support (userfaultfd) on this kernel")


def _page_server(value):
    if not value:
        return None
    addr, sep, port = value.rpartition(":")
    if not sep or not addr or not port.isdigit():
        raise PyruncError("Use --page-server ADDRESS:PORT to specify page server")
    return {"address": addr.strip("[]"), "port": int(port)}


def _check_status_fd(fd):
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise PyruncError("invalid --status-fd argument %d: %s" % (fd, e.strerror)) from None
    if not flags & (os.O_WRONLY | os.O_RDWR):
        raise PyruncError("invalid --status-fd argument %d: not writable" % fd)


def _config_file(spec):
    """runc's CRIU configuration file: annotation org.criu.config (empty:
    none), else /etc/criu/runc.conf (CRIU ignores a missing file)."""
    ann = spec.annotations or {}
    if "org.criu.config" in ann:
        return {"config_file": ann["org.criu.config"]} if ann["org.criu.config"] else {}
    return {"config_file": "/etc/criu/runc.conf"}


def _external_namespaces(spec):
    """Network and pid namespaces joined by path stay outside the image:
    restore expects them to exist (`net[<inode>]:extRootNetNS`)."""
    out = []
    for ns_type, path in cs.joined_namespaces(spec):
        if ns_type not in ("network", "pid"):
            continue
        try:
            ino = os.stat(path).st_ino
        except OSError as e:
            raise PyruncError("linux.namespaces: %s: %s" % (path, e.strerror)) from None
        out.append("%s[%d]:%s" % (cs.CRIU_NS_NAMES[ns_type], ino, cs.ns_key(ns_type)))
    return out


def _freezer_path(cg):
    """The cgroup CRIU freezes the tasks with (else it uses ptrace)."""
    if not cg:
        return None
    if cg.get("version") == 2:
        return cg.get("path")
    return (cg.get("paths") or {}).get("freezer")


def _dump_external_mounts(spec, c, rpc_opts):
    """ext_mnt entries (mount point -> its key, the mount point itself, as
    runc names them) for the external mounts the container has."""
    present = cs.mount_points(c.pid)
    mounts = cs.external_mounts(spec, c.record.get("cgroup"), c.record.get("bundle", ""),
                                c.record.get("rootfs") or "/")
    keys = [key for key, _ in mounts if key in present]
    rpc_opts["ext_mnt"] = [{"key": k, "val": k} for k in keys]
    return keys


def external_stdio(pid):
    """The init's stdio opened outside the container's mount namespace (the
    host's /dev/null or a log file its caller gave it): CRIU cannot find
    their mount, so each is an external file, `file[<mnt_id>:<inode>]`
    (CRIU's key), given back at restore.  -> {key: {"path", "fds"}}."""
    inside = cs.mount_ids(pid)
    out = {}
    for n in (0, 1, 2):
        try:
            with open("/proc/%d/fdinfo/%d" % (pid, n)) as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            mnt_id = int(info["mnt_id"])
            st = os.stat("/proc/%d/fd/%d" % (pid, n))
            path = os.readlink("/proc/%d/fd/%d" % (pid, n))
        except (OSError, KeyError, ValueError):
            continue
        if mnt_id in inside or mnt_id == 0 or path.startswith(("pipe:", "socket:", "anon_inode:")):
            continue
        key = "file[%x:%x]" % (mnt_id, st.st_ino)
        out.setdefault(key, {"path": path, "fds": []})["fds"].append(n)
    return out


def _write_image_meta(images, c, keys, files):
    """runc's descriptors.json (the init's stdio, so restore can hand new
    pipes to the restored process) and our record of which container this
    is and which external mounts it had.  Written through the image
    directory's fd: whoever can rename things in its parent cannot make
    these root-written files land anywhere else."""
    from .jsonio import dumps

    fds = []
    for n in (0, 1, 2):
        try:
            fds.append(os.readlink("/proc/%d/fd/%d" % (c.pid, n)))
        except OSError:
            fds.append("/dev/null")
    _write_in_dir(images, cs.DESCRIPTORS, dumps(fds).encode())
    meta = {"id": c.id, "bundle": c.record.get("bundle"), "rootfs": c.record.get("rootfs"),
            "external_mounts": keys, "external_files": files}
    _write_in_dir(images, cs.META, dumps(meta).encode())


def _write_in_dir(dirfd, name, data):
    """Atomically replace `name` in the directory open at `dirfd` (0600;
    a symlink at either name is never followed)."""
    tmp = "%s.%d.tmp" % (name, os.getpid())
    try:
        os.unlink(tmp, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=dirfd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def _dump(binary, rpc_opts, opts, log):
    # criu opens images_dir_fd, work_dir_fd and status_fd as
    # /proc/<its peer>/fd/N: they stay ours, nothing is passed.
    swrk = rpc.Swrk(binary)
    try:
        kind = rpc.PRE_DUMP if opts.pre_dump else rpc.DUMP
        status_fd = opts.status_fd if opts.lazy_pages else -1

        def on_notify(script, pid, fds):
            if script == "status-ready" and status_fd >= 0:
                try:
                    os.write(status_fd, b"\0")
                except OSError:
                    pass

        try:
            swrk.request(kind, rpc_opts, on_notify=on_notify)
        except rpc.CriuError as e:
            raise cs.failure("criu %s failed" % rpc.TYPE_NAMES[kind], e, log) from None
    finally:
        code = swrk.close()
    if code and not opts.pre_dump:
        raise cs.failure("criu exited with %s" % rpc.status_text(code), "", log)


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
