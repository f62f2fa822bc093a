"""The systemd cgroup driver (`--systemd-cgroup`), as runc's.

linux.cgroupsPath is "slice:prefix:name" (empty: system.slice, prefix
"runc", the container id).  The container's cgroup is a transient scope
"<prefix>-<name>.scope" in that slice, made by systemd's
StartTransientUnit with Delegate=yes and the init's pid in PIDs; the
resources systemd knows go in as unit properties (runc's mapping for
cgroup v1 and v2), and then every resource is also written to the
cgroup files by the cgroupfs manager (`inner`) over the scope's
directories, as runc does: systemd knows only part of them, and the
controllers it does not manage (freezer, cpuset on v1, ...) get their
directories from us.  `update` = SetUnitProperties + the files; `delete`
= StopUnit + rmdir of the scope's directories.

Everything else (freeze, pids, kill_all, stats) is the inner manager's.
"""
import os

from ..errors import ConfigError, NotSupported
from .fs import CgroupError

SYSTEMD = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UINT64_MAX = (1 << 64) - 1
DEFAULT_QUOTA_PERIOD = 100000  # µs, the kernel's default for v1 and v2
JOB_TIMEOUT_S = 30.0  # runc's wait for a start/stop job


# -- cgroupsPath ----------------------------------------------------------------
def parse_cgroups_path(cgroups_path, container_id):
    """(slice, prefix, name) from "slice:prefix:name"; runc's defaults when
    the path is empty (slice "" = the driver's default slice)."""
    if not cgroups_path:
        return "", "runc", container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError('linux.cgroupsPath: expected "slice:prefix:name" for systemd cgroups, '
                          'got %r' % cgroups_path)
    return parts[0], parts[1], parts[2]


def unit_name(prefix, name):
    """A scope unless the name asks for a slice (runc's getUnitName)."""
    if name.endswith(".slice"):
        return name
    return "%s-%s.scope" % (prefix, name)


def expand_slice(slice_):
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" ("-.slice" -> "/")."""
    err = ConfigError("linux.cgroupsPath: invalid slice name %r" % slice_)
    if not slice_.endswith(".slice") or len(slice_) <= len(".slice") or "/" in slice_:
        raise err
    base = slice_[:-len(".slice")]
    if base == "-":
        return "/"
    path, prefix = "", ""
    for part in base.split("-"):
        if not part:
            raise err
        path += "/" + prefix + part + ".slice"
        prefix += part + "-"
    return path


def check_unit_name(unit):
    # A name systemd would reject or that would climb out of the slice.
    if "/" in unit or unit in (".scope", "-.scope") or "\0" in unit:
        raise ConfigError("linux.cgroupsPath: invalid unit name %r" % unit)


# -- resources -> unit properties -------------------------------------------------
MAX_CPU_OR_NODE = 1 << 16  # above any kernel's NR_CPUS: a bigger index is a typo


def range_to_bits(text, field):
    """"0-2,4" -> the AllowedCPUs byte array (big-endian bit mask, as runc)."""
    mask = 0
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi or lo)
            if lo < 0 or lo > hi or hi >= MAX_CPU_OR_NODE:
                raise ValueError
            for i in range(lo, hi + 1):
                mask |= 1 << i
    except ValueError:
        raise ConfigError("%s: invalid range %r" % (field, text)) from None
    if not mask:
        raise ConfigError("%s: empty range %r" % (field, text))
    return list(mask.to_bytes((mask.bit_length() + 7) // 8, "big"))


def _u64(v):
    return v & UINT64_MAX  # -1 (unlimited) becomes systemd's "infinity"


def cpu_quota_props(quota, period, sd_version):
    """CPUQuotaPerSecUSec rounded up to 10 ms as systemd keeps whole
    percents (runc's addCpuQuota); CPUQuotaPeriodUSec from systemd 242."""
    quota, period = quota or 0, period or 0
    props = []
    if period and sd_version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = UINT64_MAX
        if quota > 0:
            per_sec = quota * 1000000 // (period or DEFAULT_QUOTA_PERIOD)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props


def cpuset_props(cpus, mems, sd_version):
    if sd_version < 244:
        return []  # too old for AllowedCPUs: the files still get them
    props = []
    if cpus:
        props.append(("AllowedCPUs", ("ay", range_to_bits(cpus, "linux.resources.cpu.cpus"))))
    if mems:
        props.append(("AllowedMemoryNodes", ("ay", range_to_bits(mems, "linux.resources.cpu.mems"))))
    return props


def device_props(rules, warn, proc_devices=None):
    """DevicePolicy/DeviceAllow for the effective rule set (runc's
    generateDeviceProperties).  systemd has only allow-lists: a deny-list
    other than allow-all becomes a temporary deny-all (the devices cgroup
    file writes then bring the real rules)."""
    from .devices import WILDCARD, DeviceState, normalize

    state = DeviceState.from_rules(normalize(rules))
    if state.default_allow:
        if not state.exceptions:
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        warn("systemd doesn't support blacklist device rules -- applying temporary deny-all rule")
        return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    allow = []
    for (typ, major, minor), access in sorted(state.exceptions.items(),
                                              key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        kind = "block" if typ == "b" else "char"
        if major == WILDCARD:
            if minor != WILDCARD:
                warn("systemd doesn't support '*:n' device rules -- temporarily ignoring "
                     "%s *:%d" % (typ, minor))
                continue
            path = kind + "-*"
        elif minor == WILDCARD:
            group = device_group(typ, major, proc_devices)
            if group is None:
                warn("no device group for %s %d in /proc/devices -- temporarily ignoring "
                     "the rule" % (typ, major))
                continue
            path = kind + "-" + group
        else:
            path = "/dev/%s/%d:%d" % (kind, major, minor)
            if not (os.path.exists(path) or os.path.exists("/sys" + path)):
                continue  # systemd would only warn; the cgroup file has the rule
        allow.append((path, access))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", [])),
            ("DeviceAllow", ("a(ss)", allow))]


def device_group(typ, major, text=None):
    """The /proc/devices name of a (type, major) group, or None."""
    if text is None:
        with open("/proc/devices") as f:
            text = f.read()
    want = "Block devices:" if typ == "b" else "Character devices:"
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("devices:"):
            section = line
            continue
        fields = line.split()
        if section == want and len(fields) == 2 and fields[0] == str(major):
            return fields[1]
    return None


def resource_props(res, version, sd_version, warn):
    """The unit properties for `res` (a Resources) on cgroup v1 or v2."""
    if res is None:
        return []
    props = device_props(res.devices or [], warn) if res.devices is not None else []
    mem, cpu, pids, bio = res.memory, res.cpu, res.pids, res.block_io
    if version == 1:
        if mem is not None and mem.limit:
            props.append(("MemoryLimit", ("t", _u64(mem.limit))))
        if cpu is not None and cpu.shares:
            props.append(("CPUShares", ("t", cpu.shares)))
    else:
        from .convert import cpu_shares_to_weight, memory_swap_to_v2

        if mem is not None:
            if mem.limit:
                props.append(("MemoryMax", ("t", _u64(mem.limit))))
            if mem.reservation:
                props.append(("MemoryLow", ("t", _u64(mem.reservation))))
            try:
                swap = memory_swap_to_v2(mem.swap, mem.limit)
            except ValueError as e:
                raise ConfigError("linux.resources.memory.swap: %s" % e) from None
            if swap:
                props.append(("MemorySwapMax", ("t", _u64(swap))))
        if cpu is not None and cpu.shares:
            props.append(("CPUWeight", ("t", cpu_shares_to_weight(cpu.shares))))
    if cpu is not None:
        props += cpu_quota_props(cpu.quota, cpu.period, sd_version)
    if version == 1 and bio is not None and bio.weight:
        props.append(("BlockIOWeight", ("t", bio.weight)))
    if pids is not None and pids.limit is not None and (pids.limit > 0 or pids.limit == -1):
        props.append(("TasksMax", ("t", _u64(pids.limit))))
    if cpu is not None:
        props += cpuset_props(cpu.cpus, cpu.mems, sd_version)
    if version == 2 and res.unified:
        props += unified_props(res.unified, sd_version)
    return props


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                   "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                   "memory.swap.max": "MemorySwapMax"}


def unified_props(unified, sd_version):
    """linux.resources.unified entries systemd has a property for; the
    others are only written to the files."""
    props = []
    for key, value in unified.items():
        field = "linux.resources.unified.%s" % key
        value = str(value).strip()
        try:
            if key == "cpu.max":
                fields = value.split()
                if not 1 <= len(fields) <= 2:
                    raise ValueError
                quota = 0 if fields[0] == "max" else int(fields[0])
                period = int(fields[1]) if len(fields) == 2 else DEFAULT_QUOTA_PERIOD
                props += cpu_quota_props(quota, period, sd_version)
            elif key == "cpu.weight":
                props.append(("CPUWeight", ("t", int(value))))
            elif key in ("cpuset.cpus", "cpuset.mems"):
                if sd_version >= 244:
                    name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                    props.append((name, ("ay", range_to_bits(value, field))))
            elif key in _UNIFIED_MEMORY:
                props.append((_UNIFIED_MEMORY[key], ("t", UINT64_MAX if value == "max" else int(value))))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", UINT64_MAX if value == "max" else int(value))))
        except ValueError:
            raise ConfigError("%s: invalid value %r" % (field, value)) from None
    return props


# -- org.systemd.property.<Name> annotations (runc's initSystemdProps) ------------
ANNOTATION_PREFIX = "org.systemd.property."
_TYPE_WORDS = {"byte": "y", "boolean": "b", "int16": "n", "uint16": "q", "int32": "i",
               "uint32": "u", "int64": "x", "uint64": "t", "double": "d", "string": "s",
               "objectpath": "o", "signature": "g"}


def annotation_props(annotations):
    """Extra unit properties from the config's annotations: the name after
    the prefix (ASCII letters only, at least 3), the value in D-Bus's
    variant text form ("uint64 10", "'inactive-or-failed'", "true",
    "['a', 'b']", "@t 5"); a name ending in a lowercase letter + "Sec" is
    sent as ...USec, its number converted to microseconds."""
    props = []
    for key in sorted(annotations or {}):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX):]
        where = "annotations[%s]" % key
        if len(name) < 3 or not all("A" <= c <= "Z" or "a" <= c <= "z" for c in name):
            raise ConfigError("%s: property name must be 3 or more ASCII letters" % where)
        try:
            sig, value = parse_variant(str(annotations[key]))
        except ValueError as e:
            raise ConfigError("%s: %s" % (where, e)) from None
        if name.endswith("Sec") and len(name) > 3 and "a" <= name[-4] <= "z":
            if sig not in "ynqiuxtd" or len(sig) != 1:
                raise ConfigError("%s: %s needs a number of seconds" % (where, name))
            name, sig, value = name[:-3] + "USec", "t", int(value * 1000000) & UINT64_MAX
        props.append((name, (sig, value)))
    return props


def parse_variant(text):
    """(signature, value) of a D-Bus variant in text form (basic types and
    arrays of them)."""
    text = text.strip()
    if text.startswith("@"):
        sig, _, rest = text[1:].partition(" ")
        return sig, _parse_typed(sig, rest.strip())
    word, _, rest = text.partition(" ")
    if word in _TYPE_WORDS and rest.strip():
        sig = _TYPE_WORDS[word]
        return sig, _parse_typed(sig, rest.strip())
    if text.startswith("["):
        items = _split_list(text)
        if not items:
            raise ValueError("an empty array needs a type: @as []")
        sig, _ = parse_variant(items[0])
        return "a" + sig, [_parse_typed(sig, item) for item in items]
    if text in ("true", "false"):
        return "b", text == "true"
    if text[:1] in ("'", '"'):
        return "s", _unquote(text)
    try:
        return "i", int(text)
    except ValueError:
        pass
    try:
        return "d", float(text)
    except ValueError:
        raise ValueError("cannot parse %r as a D-Bus value" % text) from None


def _parse_typed(sig, text):
    if sig.startswith("a"):
        return [_parse_typed(sig[1:], item) for item in _split_list(text)]
    if sig in "ynqiuxt" and len(sig) == 1:
        return int(text, 0)
    if sig == "d":
        return float(text)
    if sig == "b":
        if text not in ("true", "false"):
            raise ValueError("not a boolean: %r" % text)
        return text == "true"
    if sig in ("s", "o", "g"):
        return _unquote(text)
    raise ValueError("unsupported D-Bus type %r" % sig)


def _unquote(text):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        return text[1:-1]
    raise ValueError("not a quoted string: %r" % text)


def _split_list(text):
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError("not an array: %r" % text)
    items, cur, quote = [], "", None
    for c in text[1:-1]:
        if quote:
            cur += c
            quote = None if c == quote else quote
        elif c in ("'", '"'):
            cur += c
            quote = c
        elif c == ",":
            items.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        items.append(cur.strip())
    return items


def base_props(unit, slice_, name, pid, version):
    """What every unit gets (runc's Apply)."""
    props = [("Description", ("s", "libcontainer container " + name))]
    if unit.endswith(".slice"):
        props.append(("Wants", ("as", [slice_])))
    else:
        props += [("Slice", ("s", slice_)), ("Delegate", ("b", True))]
    if pid is not None:
        props.append(("PIDs", ("au", [pid])))
    io = "BlockIOAccounting" if version == 1 else "IOAccounting"
    props += [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
              (io, ("b", True)), ("TasksAccounting", ("b", True)),
              ("DefaultDependencies", ("b", False))]
    return props


# -- talking to systemd ------------------------------------------------------------
class Systemd:
    """One D-Bus connection to systemd's manager object."""

    def __init__(self):
        from .dbus import Bus, DBusError

        try:
            self.bus = Bus.system()
        except OSError as e:
            raise CgroupError("systemd cgroup driver: connect to the system bus: %s" % e,
                              getattr(e, "errno", None)) from None
        self.private = self.bus.peer  # systemd's own socket: no bus daemon, no AddMatch
        self.error = DBusError
        self.subscribed = False

    def close(self):
        self.bus.close()

    def call(self, member, sig="", args=()):
        return self.bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, member, sig, args)

    def version(self):
        reply = self.bus.call(SYSTEMD, SYSTEMD_PATH, "org.freedesktop.DBus.Properties", "Get",
                              "ss", [MANAGER, "Version"])
        digits = ""
        for c in str(reply[0][1]).lstrip("v"):
            if not c.isdigit():
                break
            digits += c
        return int(digits or 0)

    def unit_active(self, unit):
        """Whether `unit` is loaded and active (or activating) now."""
        try:
            (path,) = self.call("GetUnit", "s", [unit])
            reply = self.bus.call(SYSTEMD, path, "org.freedesktop.DBus.Properties", "Get",
                                  "ss", ["org.freedesktop.systemd1.Unit", "ActiveState"])
        except self.error as e:
            if e.name == "org.freedesktop.systemd1.NoSuchUnit":
                return False
            raise CgroupError("systemd: unit %s: %s" % (unit, e)) from None
        return reply[0][1] in ("active", "activating", "reloading")

    def _subscribe(self):
        if self.subscribed:
            return
        if not self.private:
            self.bus.add_match("type='signal',sender='%s',interface='%s',member='JobRemoved'"
                               % (SYSTEMD, MANAGER))
        self.call("Subscribe")
        self.subscribed = True

    def wait_job(self, job):
        """The result ("done", "failed", ...) of a job, or "timeout"."""
        import time

        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            sig = self.bus.next_signal(max(0.0, deadline - time.monotonic()))
            if sig is None:
                return "timeout"
            member, _path, args = sig
            if member == "JobRemoved" and len(args) == 4 and args[1] == job:
                return args[3]

    def start_unit(self, unit, props):
        """-> True when started, False when the unit already existed (runc
        joins it too; it is not the container's to stop)."""
        self._subscribe()
        try:
            (job,) = self.call("StartTransientUnit", "ssa(sv)a(sa(sv))", [unit, "replace", props, []])
        except self.error as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                return False
            raise CgroupError("systemd: start unit %s: %s" % (unit, e)) from None
        result = self.wait_job(job)
        if result != "done":
            self.reset_failed(unit)
            raise CgroupError("systemd: creating unit %s: job %s" % (unit, result))
        return True

    def stop_unit(self, unit, warn=None):
        self._subscribe()
        try:
            (job,) = self.call("StopUnit", "ss", [unit, "replace"])
        except self.error as e:
            if e.name in ("org.freedesktop.systemd1.NoSuchUnit",
                          "org.freedesktop.systemd1.LoadFailed"):
                return
            raise CgroupError("systemd: stop unit %s: %s" % (unit, e)) from None
        result = self.wait_job(job)
        if result == "timeout":
            raise CgroupError("systemd: timed out stopping unit %s" % unit)
        if result != "done" and warn:
            warn("removing unit %s: %s; continuing" % (unit, result))
        self.reset_failed(unit)

    def reset_failed(self, unit):
        try:
            self.call("ResetFailedUnit", "s", [unit])
        except self.error:
            pass  # not failed / already gone

    def set_properties(self, unit, props):
        try:
            self.call("SetUnitProperties", "sba(sv)", [unit, True, props])
        except self.error as e:
            raise CgroupError("systemd: set properties of %s: %s" % (unit, e)) from None


def _warn(msg):
    from ..log import logger

    logger().warning(msg)


# -- placement ----------------------------------------------------------------------
def _init_cgroups():
    """{controller: path} of pid 1 with "init.scope" trimmed (runc's
    getSubsystemPath: the slices hang off init's cgroup root)."""
    from .paths import own_cgroups, read_text

    out = {}
    for ctrl, path in own_cgroups(read_text("/proc/1/cgroup")).items():
        path = os.path.normpath(path)
        if path.endswith("/init.scope"):
            path = path[:-len("init.scope")]
        out[ctrl] = path
    return out


def scope_paths(slice_path, unit):
    """(version, v1 {controller: dir} or the v2 dir) of the unit."""
    from . import paths

    mountinfo = paths.read_text("/proc/self/mountinfo")
    init = _init_cgroups()
    rel = (slice_path.rstrip("/") + "/" + unit)
    if paths.host_is_v2():
        mount = paths.unified_mount(mountinfo) or (paths.V2_ROOT, "/")
        return 2, os.path.normpath(mount[0] + "/" + init.get(paths.UNIFIED, "/") + rel)
    out = {}
    hier = paths.v1_hierarchies(mountinfo)
    for ctrl in paths.V1_CONTROLLERS:
        if ctrl in hier:
            out[ctrl] = os.path.normpath(hier[ctrl][0] + "/" + init.get(ctrl, "/") + rel)
    unified = paths.unified_mount(mountinfo)
    if unified is not None and paths.UNIFIED in init:
        out[paths.UNIFIED] = os.path.normpath(unified[0] + "/" + init[paths.UNIFIED] + rel)
    return 1, out


# -- the manager ----------------------------------------------------------------------
class SystemdManager:
    """A cgroupfs manager (`inner`) over a systemd scope's directories."""

    driver = "systemd"

    def __init__(self, inner, unit, slice_, name, started=False, extra_props=(), joined=False):
        self.inner = inner
        self.unit = unit
        self.slice = slice_
        self.name = name
        self.started = started
        self.extra_props = list(extra_props)  # from annotations: for the start only
        # the unit existed before (another's scope, a host service's):
        # delete neither stops it nor removes its directories
        self.joined = joined

    def __getattr__(self, attr):
        # freeze/thaw/pids/kill_all/stats/paths/...: the cgroup files'
        return getattr(self.inner, attr)

    @property
    def version(self):
        return self.inner.version

    @property
    def resources(self):
        return self.inner.resources

    def create(self, intend=None):
        """Nothing yet: systemd refuses a scope without a pid, so the unit
        is started by the first add_pid (the init's).  The properties are
        checked now, before anything exists; the scope's directories are
        recorded (write-ahead) for a `delete --force` after a crash."""
        resource_props(self.inner.resources, self.inner.version, 999, lambda msg: None)
        # Asked here, in the runtime: the unit is started (or joined) by
        # the init itself, whose copy of this manager the record never sees.
        sd = Systemd()
        try:
            self.joined = sd.unit_active(self.unit)
        finally:
            sd.close()
        if intend is not None:
            intend(self.inner.missing_dirs(), self.inner.dirs())

    def open_v2_dir(self):
        # The scope exists only once systemd starts it with the init's pid:
        # no clone3 into it, the init joins through add_pid.
        return None

    def add_pid(self, pid):
        if not self.started:
            self._start(pid)
        self.inner.add_pid(pid)

    def join_self(self):
        if not self.started:
            # A child forked into a new pid namespace is pid 1 there; the
            # mounted /proc still names it as systemd sees it.
            self._start(int(os.readlink("/proc/self")))
        self.inner.join_self()

    def _start(self, pid):
        sd = Systemd()
        try:
            version = self.inner.version
            props = base_props(self.unit, self.slice, self.name, pid, version) + self.extra_props
            props += resource_props(self.inner.resources, version, sd.version(), _warn)
            self.joined = not sd.start_unit(self.unit, props) or self.joined
            self.started = True
            try:
                self.inner.create()  # the controllers systemd left out, then every file
            except BaseException:
                if not self.joined:
                    sd.stop_unit(self.unit)
                raise
        finally:
            sd.close()

    def set(self, resources):
        """`update`: the unit's properties, then the files (runc's Set)."""
        if resources is None:
            return
        merged = resources if self.inner.resources is None else self.inner.resources.merge(resources)
        sd = Systemd()
        try:
            props = resource_props(merged, self.inner.version, sd.version(), _warn)
            if props:
                # systemd rewrites the device rules from scratch (deny all,
                # then the allow list): a running container could hit EPERM
                # in between, so it is frozen meanwhile, as runc does.
                thaw = (any(name == "DevicePolicy" for name, _ in props) and self.inner.can_freeze()
                        and not self.inner.is_frozen())
                if thaw:
                    self.inner.freeze()
                try:
                    sd.set_properties(self.unit, props)
                finally:
                    if thaw:
                        self.inner.thaw()
        finally:
            sd.close()
        self.inner.set(resources)

    def destroy(self):
        remove_recorded(self.to_dict())
        self.inner.created = []

    def to_dict(self):
        from .fs import leaf_dirs

        d = self.inner.to_dict()
        created = list(d.get("created") or [])
        # The scope's directories go at delete whoever made them (systemd
        # or us), as runc's RemovePaths; the slices above stay systemd's.
        # Not those of a unit that existed before: they are not ours.
        for leaf in sorted(leaf_dirs(d)) if not self.joined else ():
            if leaf not in created:
                created.append(leaf)
        d["created"] = created
        d.update(driver=self.driver, unit=self.unit, slice=self.slice, name=self.name)
        if self.joined:
            d["joined"] = True
        return d

    @classmethod
    def from_dict(cls, d):
        inner_d = {k: v for k, v in d.items() if k not in ("driver", "unit", "slice", "name", "joined")}
        if d.get("version") == 2:
            from .v2 import V2Manager
            inner = V2Manager.from_dict(inner_d)
        else:
            from .v1 import V1Manager
            inner = V1Manager.from_dict(inner_d)
        return cls(inner, d["unit"], d.get("slice") or "", d.get("name") or "", started=True,
                   joined=bool(d.get("joined")))


def manager_for(cgroups_path, container_id, resources=None, rootless=False, annotations=None):
    """The systemd-driven manager for a container (nothing made yet)."""
    from . import systemd_running

    if not systemd_running():
        raise NotSupported("systemd cgroup driver requested but systemd is not running")
    if rootless:
        raise NotSupported("systemd cgroup driver: rootless containers are not supported")
    extra = annotation_props(annotations)
    slice_, prefix, name = parse_cgroups_path(cgroups_path, container_id)
    unit = unit_name(prefix, name)
    check_unit_name(unit)
    slice_ = slice_ or "system.slice"
    slice_path = expand_slice(slice_)
    version, where = scope_paths(slice_path, unit)
    if version == 2:
        from .v2 import V2Manager
        from . import paths

        mount = paths.unified_mount(paths.read_text("/proc/self/mountinfo")) or (paths.V2_ROOT, "/")
        inner = V2Manager(where, resources, False, root=mount[0])
    else:
        if resources is not None and resources.unified:
            raise ConfigError("linux.resources.unified: needs cgroup v2 (the host has v1)")
        from .v1 import V1Manager
        inner = V1Manager(where, resources, False)
    return SystemdManager(inner, unit, slice_, name, extra_props=extra)


def remove_recorded(d, warn=None):
    """delete's part for a systemd container: stop the unit (what systemd
    made goes, any process left is killed), then rmdir the scope's
    directories in the hierarchies systemd does not manage."""
    from .fs import leaf_dirs, remove_created

    if not d.get("joined"):  # a unit that existed before is not ours to stop
        sd = Systemd()
        try:
            sd.stop_unit(d["unit"], warn or _warn)
        finally:
            sd.close()
    remove_created(d.get("created") or [], leaf_dirs(d))
