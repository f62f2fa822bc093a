"""`restore`: bring a checkpointed container back with CRIU (swrk RPC), as
runc does.  The container is made the way `create` makes it (validated
config, state directory, cgroup at the same cgroupsPath with its limits),
then CRIU restores the process tree into it:

- criu joins the cgroup before it restores (the tasks land there; on v1
  its cgroup paths become CRIU's cgroup roots);
- the rootfs is bound at <state dir>/criu-root in criu's private mount
  namespace (CRIU wants a mount point; the bind ends with criu);
- external mounts get their host sources back by key, namespaces joined by
  path are handed over (net/pid as inherited fds, others as join_ns);
- stdio pipes recorded at checkpoint are replaced by restore's own stdio;
- NOTIFY `setup-namespaces` runs the prestart and createRuntime hooks,
  `orphan-pts-master` hands the new pty master to --console-socket (or to
  the foreground proxy), `post-restore` writes state.json and --pid-file.

The restored init is our child (rst_sibling): -d leaves it to be
reparented; in the foreground pyrunc waits for it, forwarding signals,
deletes the container and exits with its status (runc's behaviour).
"""
import os

from . import criu_rpc as rpc
from . import criu_setup as cs
from . import linux
from .errors import ContainerExists, PyruncError


def restore(cid, bundle, root, create_opts, opts, detach=False, no_subreaper=False):
    from .state import StateDir

    bundle = os.path.abspath(bundle or ".")
    sd = StateDir(root, cid)
    if sd.exists():
        raise ContainerExists(cid)
    spec, rootfs = _checked_config(bundle, create_opts, detach)
    rpc_opts = cs.CriuOptions.common_rpc_opts(opts)  # the flags first
    if opts.manage_cgroups_mode == "strict":
        raise PyruncError("--manage-cgroups-mode strict: CRIU requires the cgroups not to exist, and restore "
                          "places the container in its cgroupsPath, made first with the config's limits")
    image_path = os.path.abspath(opts.image_path or "checkpoint")
    images = _check_images(image_path, spec, bundle, rootfs)
    binary, _, found = cs.ready_criu(opts, {"lazy_pages": True} if opts.lazy_pages else None)
    if opts.lazy_pages and not found.get("lazy_pages"):
        raise PyruncError("--lazy-pages: CRIU reports no lazy-pages support (userfaultfd) on this kernel")
    for name in ("pid_file", "console_socket"):  # relative to the caller's cwd
        if getattr(create_opts, name):
            setattr(create_opts, name, os.path.abspath(getattr(create_opts, name)))
    if not detach and not no_subreaper:
        # Processes reparented inside the tree come to us, not to init.
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    restored = _Restore(sd, spec, bundle, rootfs, create_opts, opts, binary)
    restored.run(rpc_opts, image_path, *images)
    if detach:
        return 0
    return restored.wait_and_delete(root)


def _checked_config(bundle, create_opts, detach):
    """The bundle's config, refused as create refuses it, and its rootfs."""
    from .errors import ConfigError, NotSupported
    from .namespaces import NamespacePlan
    from .validate import check_spec, load_spec

    _, spec = load_spec(bundle)
    check_spec(spec, NamespacePlan(spec.linux))
    _check_restorable(spec)
    rootfs = os.path.realpath(os.path.join(bundle, spec.root.path))
    if not os.path.isdir(rootfs):
        raise ConfigError("root.path: %s: no such directory" % spec.root.path)
    terminal = bool(spec.process.terminal)
    if terminal or create_opts.console_socket:
        from .console import check_terminal

        check_terminal(terminal, detach, create_opts.console_socket)
    if create_opts.systemd_cgroup:
        raise NotSupported("--systemd-cgroup: restore places containers with the cgroupfs driver only")
    return spec, rootfs


def _check_restorable(spec):
    """What create does that CRIU's restore would silently skip."""
    if spec.linux.intel_rdt is not None:
        raise PyruncError("linux.intelRdt: restore does not put restored processes in resctrl groups")
    if spec.linux.net_devices:
        raise PyruncError("linux.netDevices: restore does not move network devices")


def _check_images(image_path, spec, bundle, rootfs):
    """The image directory holds a checkpoint, of a container whose external
    mounts this config can give back: -> (runc's descriptors list, our
    metadata or {} for an image another runtime made)."""
    if not os.path.isdir(image_path):
        raise PyruncError("--image-path %s: no such directory" % image_path)
    if not os.path.exists(os.path.join(image_path, "inventory.img")):
        raise PyruncError("--image-path %s: not a checkpoint (no inventory.img)" % image_path)
    descriptors = cs.read_json(os.path.join(image_path, cs.DESCRIPTORS))
    if not isinstance(descriptors, list):
        raise PyruncError("--image-path %s: no %s (not made by checkpoint)" % (image_path, cs.DESCRIPTORS))
    meta = _checked_meta(cs.read_json(os.path.join(image_path, cs.META)), image_path)
    ours = {key for key, _ in cs.external_mounts(spec, None, bundle, rootfs)}
    missing = [k for k in meta.get("external_mounts") or () if k not in ours and not k.startswith("/sys/fs/cgroup/")]
    if missing:
        raise PyruncError("--image-path %s: checkpoint of another container (%r): its external mount%s %s "
                          "%s not in this config" % (image_path, meta.get("id"), "s" if len(missing) > 1 else "",
                                                     ", ".join(missing), "are" if len(missing) > 1 else "is"))
    return descriptors, meta


def _checked_meta(meta, image_path):
    """Our record in the image (None: an image another runtime made), as
    checkpoint writes it: the image directory is input, and its stdio fds
    name what criu hands the restored process (only 0, 1, 2)."""
    if meta is None:
        return {}
    why = None
    files = meta.get("external_files") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        why = "not an object"
    elif not isinstance(meta.get("external_mounts") or [], list) \
            or not all(isinstance(k, str) for k in meta.get("external_mounts") or ()):
        why = "external_mounts: not a list of mount points"
    elif not isinstance(files or {}, dict) or not all(
            isinstance(k, str) and isinstance(f, dict) and isinstance(f.get("path", ""), str)
            and isinstance(f.get("fds") or [], list) and all(fd in (0, 1, 2) and type(fd) is int for fd in f.get("fds") or ())
            for k, f in (files or {}).items()):
        why = "external_files: not what checkpoint writes (stdio fds 0-2 by key)"
    if why:
        raise PyruncError("--image-path %s: %s: %s" % (image_path, cs.META, why))
    return meta


class _Restore:
    """One restore: what it made, so that a failure takes it all back."""

    def __init__(self, sd, spec, bundle, rootfs, create_opts, opts, binary):
        self.sd = sd
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        self.create_opts = create_opts
        self.opts = opts
        self.binary = binary
        self.container = None
        self.criu_dirs = []
        self.master = None  # the new pty master, kept for a foreground proxy
        self.console = None
        self.undo = None

    def run(self, rpc_opts, image_path, descriptors, meta):
        from .container import Container
        from .create import _Undo

        if self.create_opts.console_socket:
            from .console import connect_socket

            self.console = connect_socket(self.create_opts.console_socket)
        extra = []  # fds criu gets from its fd 4 on
        self.sd.make()
        self.container = Container(self.sd, None)
        self.undo = _Undo()
        images = work = None
        try:
            mgr = self._new_container()
            images = cs.open_dir(image_path, "--image-path")
            rpc_opts.update(images_dir_fd=images, log_file="restore.log", evasive_devices=True,
                            rst_sibling=True, root=self._criu_dir("criu-root"),
                            cgroup_yard=self._criu_dir("criu-cgyard"))
            if self.opts.work_path:
                work = cs.make_dir(os.path.abspath(self.opts.work_path), "--work-path")
                rpc_opts["work_dir_fd"] = work
            self._describe_outside(rpc_opts, descriptors, meta, extra)
            log = os.path.join(os.path.abspath(self.opts.work_path) if self.opts.work_path else image_path,
                               "restore.log")
            self._criu(rpc_opts, mgr, extra, log)
        except BaseException:
            self._fail()
            raise
        finally:
            for fd in [images, work] + extra:
                if fd is not None:
                    os.close(fd)
            self._remove_criu_dirs()
            if self.console is not None:
                os.close(self.console)
                self.console = None

    def _new_container(self):
        """config.json, state.json and the cgroup, as create makes them;
        -> the cgroup manager (or None)."""
        from .container import CREATING
        from .create import _make_cgroup
        from .log import rfc3339_now
        from .state import write_atomic

        c, spec = self.container, self.spec
        with open(os.path.join(self.bundle, "config.json"), "rb") as f:
            write_atomic(self.sd.file("config.json"), f.read(), 0o600)
        c.record = {
            "id": c.id, "status": CREATING, "pid": 0, "init_start": None,
            "bundle": self.bundle, "rootfs": self.rootfs, "created": rfc3339_now(),
            "owner": "", "annotations": spec.annotations, "cgroup": None,
            "hook_kinds": [k for k, hooks in spec.hooks.by_kind.items() if hooks],
        }
        mgr = _make_cgroup(spec, c.id, self.create_opts, self.sd)
        if mgr is not None:
            self.undo.cgroup = mgr
            c.record["cgroup"] = mgr.to_dict()
        c.save()
        return mgr

    def _describe_outside(self, rpc_opts, descriptors, meta, extra):
        """What comes from outside the container, for CRIU: mount points
        made, external mounts' sources, inherited stdio and namespaces."""
        from .checkpoint import _config_file

        spec = self.spec
        rpc_opts.update(_config_file(spec))
        _make_mount_points(spec, self.rootfs, self.bundle)
        inherit = _stdio_inherit(descriptors, meta, extra)
        rpc_opts["join_ns"] = self._namespaces(extra, inherit)
        rpc_opts["inherit_fd"] = inherit
        mounts = cs.external_mounts(spec, self.container.record.get("cgroup"), self.bundle, self.rootfs)
        if spec.linux.masked_paths:
            # runc's images name its masks (binds of /dev/null) so
            mounts.append(("/dev/null", "/dev/null"))
        rpc_opts["ext_mnt"] = [{"key": k, "val": src} for k, src in mounts]

    def _criu_dir(self, name):
        """A directory in the state dir that criu mounts on in its private
        mount namespace (see _private_mounts): the host only ever sees it
        empty, and delete removes it even after a kill -9 half-way."""
        path = self.sd.file(name)
        os.mkdir(path, 0o700)
        self.criu_dirs.append(path)
        return path

    def _remove_criu_dirs(self):
        for path in self.criu_dirs:
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.criu_dirs = []

    def _namespaces(self, extra, inherit):
        """Namespaces joined by path: net and pid were left out of the image
        (fds inherited under runc's keys); the others are joined."""
        join = []
        for ns_type, path in cs.joined_namespaces(self.spec):
            if ns_type in ("network", "pid"):
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise PyruncError("linux.namespaces: %s: %s" % (path, e.strerror)) from None
                _pass_fd(extra, inherit, cs.ns_key(ns_type), fd)
            elif ns_type == "cgroup":
                raise PyruncError("linux.namespaces: a cgroup namespace joined by path cannot be restored (CRIU)")
            else:
                join.append({"ns": cs.CRIU_NS_NAMES[ns_type], "ns_file": path})
        return join

    def _criu(self, rpc_opts, mgr, extra, log):
        swrk = rpc.Swrk(self.binary, stdio=(0, 1, 2), extra_fds=extra,
                        prepare=lambda: _private_mounts(self.rootfs, *self.criu_dirs))
        try:
            if mgr is not None:
                mgr.add_pid(swrk.pid)
                rpc_opts["cg_root"] = _cgroup_roots(swrk.pid, mgr)
            try:
                resp = swrk.request(rpc.RESTORE, rpc_opts, on_notify=self._on_notify)
            except rpc.CriuError as e:
                raise cs.failure("criu restore failed", e, log) from None
            pid = (resp.get("restore") or {}).get("pid") or self.container.pid
            if pid and pid != self.container.pid:
                self._restored(pid)
        finally:
            code = swrk.close()
        if code:
            raise cs.failure("criu exited with %s" % rpc.status_text(code), "", log)

    def _on_notify(self, script, pid, fds):
        if script == "setup-namespaces":
            self._run_hooks(pid)
        elif script == "post-restore":
            self._restored(pid)
        elif script == "orphan-pts-master" and fds:
            if self.console is not None:
                from .console import send_fd

                send_fd(self.console, fds[0])
            else:
                self.master = os.dup(fds[0])

    def _run_hooks(self, pid):
        """prestart and createRuntime, once CRIU has made the namespaces
        (runc runs them at this notification)."""
        from .procfs import start_time

        c = self.container
        # recorded first: a restore killed during the hooks leaves a
        # container that `delete --force` can find and kill
        c.record.update(pid=pid, init_start=start_time(pid))
        c.save()
        self.undo.pids.append((pid, c.record["init_start"]))  # killed and waited for on failure
        kinds = [k for k in ("prestart", "createRuntime") if self.spec.hooks.get(k)]
        if not kinds:
            return
        from .hooks import run_hooks

        self.undo.hooks_ran = True
        for kind in kinds:
            run_hooks(kind, self.spec.hooks.get(kind), c.hook_state("creating"))

    def _restored(self, pid):
        """The process tree is back: state.json records a created container
        with the new pid and no exec fifo, which every verb reads as running
        (the stored status is only ever creating or created)."""
        from .container import CREATED
        from .procfs import start_time

        c = self.container
        start = start_time(pid)
        c.record.update(pid=pid, init_start=start, status=CREATED)
        self.undo.pids.append((pid, start))
        c.save()
        if self.create_opts.pid_file:
            from .create import write_pid_file

            write_pid_file(self.create_opts.pid_file, pid)

    def _fail(self):
        """Take back everything: the restored processes (if CRIU got that
        far), the cgroup, the state directory; poststop if hooks ran."""
        c = self.container
        if self.undo is not None and c is not None:
            mgr = self.undo.cgroup
            if mgr is not None:
                _kill_restored(c, mgr)
            self.undo.undo(c)
            if c.pid:
                try:
                    os.waitpid(c.pid, 0)  # our child (rst_sibling), dead by now: no zombie left
                except ChildProcessError:
                    pass
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self._remove_criu_dirs()
        self.sd.remove()

    def wait_and_delete(self, root):
        """Foreground: wait for the restored init (our child), forwarding
        signals; then delete the container; -> its exit status."""
        from .run import _delete
        from .signals import wait_forwarding_signals

        c = self.container
        c.dir.unlock()
        try:
            if self.master is not None:
                from .console import TerminalProxy

                with TerminalProxy(self.master) as proxy:
                    status = proxy.run(c.pid)
            else:
                status = wait_forwarding_signals(c.pid)
        finally:
            if self.master is not None:
                os.close(self.master)
        _delete(c.id, root)
        return status


def _kill_restored(c, mgr):
    """What a failed restore put in its cgroup dies; in a cgroup that held
    older processes (a host cgroup the config names) only its own
    (pyrunc.reclaim.owner), never the others."""
    from . import reclaim

    leaves = mgr.dirs()
    shared = reclaim.shared_leaves(leaves, reclaim.container_birth(c.dir, c.record))
    reclaim.kill_members(leaves, timeout=2.0, shared=shared,
                         owns=reclaim.owner(c.pid, c.record.get("init_start")))


def _make_mount_points(spec, rootfs, bundle):
    """The config's mount points in the rootfs (a file for a bind of a file),
    as create makes them: a rootfs that never ran this container (podman's
    `restore --import`) lacks them, and CRIU mounts only onto what exists
    ("Can't stat mountpoint .../etc/hostname").  As runc: not under a tmpfs
    mount (CRIU brings the tmpfs back with its contents), not for cgroup
    mounts (CRIU's own); each bind is mounted for a moment, so that the
    mount point of a bind nested in it is made in its source, where CRIU
    will look for it.  Done in a child with a mount namespace of its own:
    those binds end with it, even if pyrunc is killed half-way."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_SLAVE | linux.MS_REC)
            _make_mount_points_here(spec, rootfs, bundle)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, one line
            os.write(w, str(e).encode(errors="replace")[:4000] or b"failed")
            code = 1
        os._exit(code)
    os.close(w)
    try:
        with open(r, "rb", closefd=False) as f:
            err = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
    if err or status:
        raise PyruncError(err or "mounts: making the mount points failed (%s)" % rpc.status_text(status))


def _make_mount_points_here(spec, rootfs, bundle):
    from .rootfs import make_path_in_root

    tmpfs = [cs.norm(m.destination) for m in spec.mounts if m.type == "tmpfs"]
    rootfd = os.open(rootfs, linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in spec.mounts:
            dest = cs.norm(m.destination)
            if m.type in ("cgroup", "cgroup2") or any(dest.startswith(t + "/") for t in tmpfs):
                continue
            source = os.path.join(bundle, m.source or "")
            bind = cs.is_bind(m)
            try:
                fd = make_path_in_root(rootfd, dest, is_dir=not bind or os.path.isdir(source))
            except OSError as e:
                raise PyruncError("mounts: %s: cannot make the mount point: %s" % (dest, e.strerror)) from None
            try:
                if bind:
                    linux.mount(source, "/proc/self/fd/%d" % fd, None, linux.MS_BIND | linux.MS_REC)
            except OSError as e:
                raise PyruncError("mounts: %s: cannot bind %s there: %s" % (dest, source, e.strerror)) from None
            finally:
                os.close(fd)
    finally:
        os.close(rootfd)


def _private_mounts(rootfs, root, yard):
    """In criu's child, before exec: a mount namespace of its own, whose
    mounts receive the host's but send nothing back (slave), with the
    rootfs bound at `root` (CRIU's root must be a mount point whose parent
    is not overmounted) and a private tmpfs at `yard` for CRIU's cgroup
    mounts.  (CRIU would make its yard in its work directory, which it
    reaches through /proc/<pyrunc>/fd: pyrunc's namespace, not its own.)"""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_SLAVE | linux.MS_REC)
    linux.mount(rootfs, root, None, linux.MS_BIND | linux.MS_REC)
    linux.mount("none", yard, "tmpfs", 0, "mode=700")
    linux.mount(None, yard, None, linux.MS_PRIVATE)


def _pass_fd(extra, inherit, key, fd):
    """criu gets `fd` as its fd 4 + index (0-2: stdio, 3: the RPC socket)."""
    extra.append(fd)
    inherit.append({"key": key, "fd": 3 + len(extra)})


def _stdio_inherit(descriptors, meta, extra):
    """The restored process's stdio: pipes it had (runc's descriptors) and
    files from outside its mount namespace become restore's own stdio; the
    host's /dev/null is opened afresh (read-write, as any use needs)."""
    inherit = [{"key": s, "fd": i} for i, s in enumerate(descriptors[:3]) if isinstance(s, str) and "pipe:" in s]
    for key, f in sorted((meta.get("external_files") or {}).items()):
        if f.get("path") == "/dev/null":
            _pass_fd(extra, inherit, key, os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC))
        elif f.get("fds"):
            inherit.append({"key": key, "fd": f["fds"][0]})
    return inherit


def _cgroup_roots(pid, mgr):
    """v1: each hierarchy's cgroup of `pid` (criu, already moved into the
    container's cgroup) as CRIU's cgroup root for it; v2 needs none."""
    if getattr(mgr, "version", None) != 1:
        return []
    roots = []
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                roots.append({"ctrl": ctrls, "path": path})
    return roots
