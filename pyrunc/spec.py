"""Typed view of a validated config.json (runtime-spec v1.3.0, Linux).

Plain `__slots__` classes, built once from the validated document, so the
rest of pyrunc reads attributes instead of walking dicts.  Conventions:
attribute names are the JSON names in snake_case; an absent object is None;
an absent array is an empty list.  The resource and seccomp sections are
typed by their own owners (pyrunc.cgroups.resources, pyrunc.security.seccomp):
the validation layer (pyrunc.validate) parses them once, at load time, into
`linux.resources` and `linux.seccomp`; this model imports neither.
"""

# The device nodes every container gets, the one table for both the nodes
# (rootfs) and runc's cgroup allow-list (cgroups.devices): path, type,
# major, minor, in the allow-list's order.
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3), ("/dev/random", "c", 1, 8), ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0), ("/dev/zero", "c", 1, 5), ("/dev/urandom", "c", 1, 9),
)

# /proc/<pid>/ns/<file> for each namespace type
NAMESPACE_FILES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


class _Node:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)


class User(_Node):
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, d):
        self.uid = d.get("uid", 0)
        self.gid = d.get("gid", 0)
        self.umask = d.get("umask")
        self.additional_gids = d.get("additionalGids") or []


class Capabilities(_Node):
    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(self, d):
        self.bounding = d.get("bounding") or []
        self.effective = d.get("effective") or []
        self.permitted = d.get("permitted") or []
        self.inheritable = d.get("inheritable") or []
        self.ambient = d.get("ambient") or []


class Rlimit(_Node):
    __slots__ = ("type", "soft", "hard")

    def __init__(self, d):
        self.type = d["type"]
        self.soft = d["soft"]
        self.hard = d["hard"]


class ConsoleSize(_Node):
    __slots__ = ("height", "width")

    def __init__(self, d):
        self.height = d["height"]
        self.width = d["width"]


class Scheduler(_Node):
    __slots__ = ("policy", "nice", "priority", "flags", "runtime", "deadline", "period")

    def __init__(self, d):
        self.policy = d["policy"]
        self.nice = d.get("nice", 0)
        self.priority = d.get("priority", 0)
        self.flags = d.get("flags") or []
        self.runtime = d.get("runtime", 0)
        self.deadline = d.get("deadline", 0)
        self.period = d.get("period", 0)


class IOPriority(_Node):
    __slots__ = ("class_", "priority")

    def __init__(self, d):
        self.class_ = d["class"]
        self.priority = d.get("priority", 0)


class CPUAffinity(_Node):
    __slots__ = ("initial", "final")

    def __init__(self, d):
        self.initial = d.get("initial")
        self.final = d.get("final")


class Process(_Node):
    __slots__ = (
        "terminal", "console_size", "cwd", "env", "args", "command_line",
        "user", "capabilities", "rlimits", "no_new_privileges",
        "apparmor_profile", "oom_score_adj", "selinux_label", "scheduler",
        "io_priority", "exec_cpu_affinity",
    )

    def __init__(self, d):
        self.terminal = d.get("terminal", False)
        cs = d.get("consoleSize")
        self.console_size = ConsoleSize(cs) if cs else None
        self.cwd = d.get("cwd", "/")
        self.env = d.get("env") or []
        self.args = d.get("args") or []
        self.command_line = d.get("commandLine")
        self.user = User(d.get("user") or {})
        caps = d.get("capabilities")
        self.capabilities = Capabilities(caps) if caps is not None else None
        self.rlimits = [Rlimit(r) for r in d.get("rlimits") or ()]
        self.no_new_privileges = d.get("noNewPrivileges", False)
        self.apparmor_profile = d.get("apparmorProfile")
        self.oom_score_adj = d.get("oomScoreAdj")
        self.selinux_label = d.get("selinuxLabel")
        s = d.get("scheduler")
        self.scheduler = Scheduler(s) if s else None
        io = d.get("ioPriority")
        self.io_priority = IOPriority(io) if io else None
        a = d.get("execCPUAffinity")
        self.exec_cpu_affinity = CPUAffinity(a) if a else None


class Root(_Node):
    __slots__ = ("path", "readonly")

    def __init__(self, d):
        self.path = d["path"]
        self.readonly = d.get("readonly", False)


class IDMapping(_Node):
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, d):
        self.container_id = d["containerID"]
        self.host_id = d["hostID"]
        self.size = d["size"]

    def line(self):
        return "%d %d %d\n" % (self.container_id, self.host_id, self.size)


class Mount(_Node):
    __slots__ = ("destination", "source", "type", "options", "uid_mappings", "gid_mappings")

    def __init__(self, d):
        self.destination = d["destination"]
        self.source = d.get("source")
        self.type = d.get("type")
        self.options = d.get("options") or []
        self.uid_mappings = [IDMapping(m) for m in d.get("uidMappings") or ()]
        self.gid_mappings = [IDMapping(m) for m in d.get("gidMappings") or ()]

    @property
    def idmapped(self):
        """An idmapped mount: mappings of its own, or the idmap/ridmap option."""
        return bool(self.uid_mappings or self.gid_mappings) or "idmap" in self.options or "ridmap" in self.options


class Hook(_Node):
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, d):
        self.path = d["path"]
        self.args = d.get("args") or [d["path"]]
        self.env = d.get("env")  # None (absent): the runtime's own environment, as runc/crun
        self.timeout = d.get("timeout")


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Hooks(_Node):
    __slots__ = ("by_kind",)

    def __init__(self, d):
        self.by_kind = {k: [Hook(h) for h in d.get(k) or ()] for k in HOOK_KINDS}

    def get(self, kind):
        return self.by_kind.get(kind, [])


class Namespace(_Node):
    __slots__ = ("type", "path")

    def __init__(self, d):
        self.type = d["type"]
        self.path = d.get("path")


class Device(_Node):
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, d):
        self.type = d["type"]
        self.path = d["path"]
        self.major = d.get("major", 0)
        self.minor = d.get("minor", 0)
        self.file_mode = d.get("fileMode")
        self.uid = d.get("uid")
        self.gid = d.get("gid")


class TimeOffset(_Node):
    __slots__ = ("secs", "nanosecs")

    def __init__(self, d):
        self.secs = d.get("secs", 0)
        self.nanosecs = d.get("nanosecs", 0)


class NetDevice(_Node):
    __slots__ = ("name",)

    def __init__(self, d):
        self.name = d.get("name")


class Personality(_Node):
    __slots__ = ("domain", "flags")

    def __init__(self, d):
        self.domain = d["domain"]
        self.flags = d.get("flags") or []


class IntelRdt(_Node):
    __slots__ = ("clos_id", "l3_cache_schema", "mem_bw_schema", "schemata", "enable_monitoring")

    def __init__(self, d):
        self.clos_id = d.get("closID")
        self.l3_cache_schema = d.get("l3CacheSchema")
        self.mem_bw_schema = d.get("memBwSchema")
        self.schemata = d.get("schemata") or []
        self.enable_monitoring = d.get("enableMonitoring", False)


class MemoryPolicy(_Node):
    __slots__ = ("mode", "nodes", "flags")

    def __init__(self, d):
        self.mode = d.get("mode")  # required by the spec, not by its schema: checked by security.process_attrs
        self.nodes = d.get("nodes")
        self.flags = d.get("flags") or []


class Linux(_Node):
    __slots__ = (
        "namespaces", "uid_mappings", "gid_mappings", "time_offsets",
        "devices", "net_devices", "cgroups_path", "resources_doc", "rootfs_propagation",
        "seccomp_doc", "sysctl", "masked_paths", "readonly_paths",
        "mount_label", "intel_rdt", "personality", "memory_policy",
        "resources", "seccomp",
    )

    def __init__(self, d):
        self.namespaces = [Namespace(n) for n in d.get("namespaces") or ()]
        self.uid_mappings = [IDMapping(m) for m in d.get("uidMappings") or ()]
        self.gid_mappings = [IDMapping(m) for m in d.get("gidMappings") or ()]
        self.time_offsets = {k: TimeOffset(v) for k, v in (d.get("timeOffsets") or {}).items()}
        self.devices = [Device(x) for x in d.get("devices") or ()]
        self.net_devices = {k: NetDevice(v) for k, v in (d.get("netDevices") or {}).items()}
        self.cgroups_path = d.get("cgroupsPath")
        self.resources_doc = d.get("resources")
        self.rootfs_propagation = d.get("rootfsPropagation")
        self.seccomp_doc = d.get("seccomp")
        self.sysctl = d.get("sysctl") or {}
        self.masked_paths = d.get("maskedPaths") or []
        self.readonly_paths = d.get("readonlyPaths") or []
        self.mount_label = d.get("mountLabel")
        rdt = d.get("intelRdt")
        self.intel_rdt = IntelRdt(rdt) if rdt is not None else None
        p = d.get("personality")
        self.personality = Personality(p) if p else None
        mp = d.get("memoryPolicy")
        self.memory_policy = MemoryPolicy(mp) if mp is not None else None
        self.resources = None  # typed by pyrunc.validate (Resources, runc's device rules added)
        self.seccomp = None  # typed by pyrunc.validate (security.seccomp.Seccomp)

    def namespace(self, ns_type):
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


class Spec(_Node):
    __slots__ = ("oci_version", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux")

    def __init__(self, d):
        self.oci_version = d["ociVersion"]
        p = d.get("process")
        self.process = Process(p) if p is not None else None
        r = d.get("root")
        self.root = Root(r) if r is not None else None
        self.hostname = d.get("hostname")
        self.domainname = d.get("domainname")
        self.mounts = [Mount(m) for m in d.get("mounts") or ()]
        self.hooks = Hooks(d.get("hooks") or {})
        self.annotations = d.get("annotations") or {}
        self.linux = Linux(d.get("linux") or {})
