"""cgroups for pyrunc: placement, resources, freezer, stats; v1 and v2.

Interface used by the container lifecycle::

    from pyrunc.cgroups import manager_for, load_manager, default_device_rules
    from pyrunc.cgroups.resources import Resources

    res = Resources.from_dict(linux.get("resources"))   # None-safe; ConfigError on bad types
    # runc semantics for devices: the config's rules, then runc's defaults
    # (dropping a default whose path linux.devices also lists); do this for
    # every container, also one without linux.resources:
    res = with_default_devices(res, linux.get("devices"))
    mgr = manager_for(linux.get("cgroupsPath"), container_id, res,
                      rootless=False, systemd=False)
    mgr.create()          # mkdir (records what it made itself), apply resources;
                          # an existing cgroup is joined, not recreated; a
                          # failure removes what it made
    mgr.add_pid(pid)      # every v1 hierarchy / the one v2 dir
    mgr.set(res)          # `update`: laid over the resources applied before
    mgr.freeze(); mgr.thaw(); mgr.is_frozen() -> bool
    mgr.pids() -> [int]   # every process in the cgroup (and its children)
    mgr.kill_all(sig)     # freeze, signal all, thaw (v2 SIGKILL: cgroup.kill)
    mgr.stats() -> dict   # runc `events --stats` "data"
    mgr.oom_events() -> int
    mgr.destroy()         # rmdir only what create() made (retries while tasks exit)
    remove_recorded(mgr.to_dict())   # the same, from state.json, no manager built
    mgr.exists() -> bool
    mgr.to_dict() -> dict ; load_manager(d) -> manager    # for state.json
    mgr.mount_paths()     # v1: [{"name","options","source","links"}]; v2: {"source"}

    # `update`: runc's flags or a --resources document, laid over the
    # current resources as runc does (device lists upserted, devices kept)
    from pyrunc.cgroups.update import update_resources, merge_update
    mgr.set(merge_update(mgr.resources, update_resources(doc_or_None, flags_dict)))

    # `events`: runc's event objects (print each as one JSON line)
    from pyrunc.cgroups.events import stats_event, watch
    stats_event(cid, mgr); watch(cid, mgr, interval_s, emit, running)

    from pyrunc.cgroups.mount import mount_cgroup
    mount_cgroup(target_path, mgr.to_dict(), cgroupns, readonly)  # in the
        # container's mount namespace, before pivot_root

With systemd=True (`--systemd-cgroup`) the manager is pyrunc.cgroups.systemd's:
the same interface over a transient systemd scope (its record has
"driver": "systemd"; delete stops the unit).

Placement (runc's cgroupfs driver): an absolute cgroupsPath is taken from
each hierarchy's root; a relative one, or the container id when it is
absent, from the runtime's own cgroup (/proc/self/cgroup).

Errors are pyrunc.cgroups.fs.CgroupError (a PyruncError and an OSError), one line naming
the field: ``linux.resources.memory.limit: write /sys/fs/cgroup/memory/x/
memory.limit_in_bytes (1024): Device or resource busy``.

Nothing heavy is imported here: each verb is a fresh process.
"""

__all__ = ["manager_for", "load_manager", "remove_recorded", "default_device_rules",
           "with_default_devices", "host_version", "systemd_running", "features"]


def features():
    """`features` linux.cgroup: the cgroupfs driver on v1 and v2 (rdma
    limits included) and the systemd driver (pyrunc.cgroups.systemd);
    no systemd user instance (rootless systemd) yet."""
    return {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}


def systemd_running():
    """sd_booted(): systemd is PID 1's init when /run/systemd/system exists."""
    from .. import lazyos as os
    return os.path.isdir("/run/systemd/system")


def host_version():
    """2 on a pure cgroup v2 host (cgroup2 at /sys/fs/cgroup), else 1."""
    from .paths import host_is_v2
    return 2 if host_is_v2() else 1


def manager_for(cgroups_path, container_id, resources=None, rootless=False, systemd=False,
                annotations=None):
    """The manager for a container's cgroup on this host (nothing made yet)."""
    from . import paths

    if systemd:
        from .systemd import manager_for as systemd_manager_for  # D-Bus only for this driver

        # annotations: org.systemd.property.* become unit properties
        return systemd_manager_for(cgroups_path, container_id, resources, rootless, annotations)
    try:
        inner = paths.inner_path(cgroups_path, container_id)
    except ValueError as e:
        from ..errors import ConfigError
        raise ConfigError(str(e)) from None
    mountinfo = paths.read_text("/proc/self/mountinfo")
    own = paths.read_text("/proc/self/cgroup")
    if host_version() == 2:
        from .v2 import V2Manager
        mount = paths.unified_mount(mountinfo) or (paths.V2_ROOT, "/")
        return V2Manager(paths.v2_path(inner, mountinfo, own), resources, rootless, root=mount[0])
    from .v1 import V1Manager
    return V1Manager(paths.v1_paths(inner, mountinfo, own), resources, rootless)


def is_frozen(d):
    """Whether the cgroup a to_dict() record describes is frozen, read
    straight from the freezer file: `state` asks this on every call and
    need not import and build a whole manager for it."""
    try:
        if d.get("version") == 2:
            with open(d["path"] + "/cgroup.events", "rb") as f:
                return b"\nfrozen 1" in b"\n" + f.read()
        path = (d.get("paths") or {}).get("freezer")
        if not path:
            return False
        with open(path + "/freezer.state", "rb") as f:
            return f.read().strip() == b"FROZEN"
    except OSError:
        return False


def holds(d, pid):
    """Whether `pid` is in the cgroup a to_dict() record describes (read
    from its cgroup.procs; True when that cannot be read, e.g. a cgroup
    a rootless create could not make).  `state` checks its init this way:
    a pid and start time alone could be forged."""
    if d.get("version") == 2:
        path = d.get("path")
    else:
        paths = d.get("paths") or {}
        path = next((paths[c] for c in ("devices", "freezer", "memory", "pids", "cpu", "cpuset") if c in paths),
                    next(iter(paths.values()), None))
    try:
        with open(path + "/cgroup.procs", "rb") as f:
            if str(pid).encode() in f.read().split():
                return True
    except (OSError, TypeError):
        return True
    return _held_below(path, str(pid).encode())


def _held_below(path, pid):
    """`pid` in a cgroup below `path`: an init may move itself into a child
    cgroup of its own (systemd as a container's init: init.scope; a nested
    runtime) and is still the container's init."""
    import os

    for top, subdirs, _files in os.walk(path):
        if top == path:
            continue
        try:
            with open(top + "/cgroup.procs", "rb") as f:
                if pid in f.read().split():
                    return True
        except OSError:
            pass
    return False


def remove_recorded(d):
    """What destroy() does for the cgroup a to_dict() record describes,
    without building its manager (no resources parsed, no v1/v2 module):
    `delete` of a stopped container needs only this."""
    if d.get("driver") == "systemd":
        from .systemd import remove_recorded as remove_unit

        return remove_unit(d)
    from .fs import leaf_dirs, remove_created

    remove_created(d.get("created") or [], leaf_dirs(d))


def load_manager(d):
    """The manager a to_dict() describes (from state.json)."""
    if d.get("driver") == "systemd":
        from .systemd import SystemdManager
        return SystemdManager.from_dict(d)
    if d.get("version") == 2:
        from .v2 import V2Manager
        return V2Manager.from_dict(d)
    from .v1 import V1Manager
    return V1Manager.from_dict(d)


def default_device_rules(linux_devices=None):
    from .devices import default_device_rules as rules
    return rules(linux_devices)


def with_default_devices(resources, linux_devices=None):
    """`resources` (a Resources or None) with runc's device rules: the
    config's rules, then runc's default allow-list.  runc applies these to
    every container, also one without linux.resources."""
    from .resources import Resources, DeviceRule
    from .devices import default_device_rules as rules

    devs = []
    for d in linux_devices or ():
        devs.append(d if isinstance(d, dict) else {"path": getattr(d, "path", None)})
    extra = [DeviceRule.from_dict(r, "default") for r in rules(devs)]
    merged = Resources() if resources is None else resources.merge(Resources())
    merged.devices = list(resources.devices or []) + extra if resources is not None else extra
    return merged
