"""The validation layer: validate once, early, typed.

Schema: config.json, process.json, state and features documents against
our schemas (oci-schemas/), through the generated pyrunc._validator.
Semantics (load_spec, check_spec): the typed model (spec.py) with the
sections whose owners type them, linux.seccomp and linux.resources (with
runc's device rules), parsed at load time, so a bad one fails before
create makes a state directory, a cgroup or runs a hook; then what pyrunc
cannot honour for the namespace plan (runc's validator checks).  Nothing
here touches the system.

No jsonschema and no `re` here: this runs on every create/run/exec.  A
failure raises ConfigError with one line: the JSON path, then the rule in
jsonschema's words, e.g.

    config.json: linux.namespaces[2].type: 'pidd' is not one of [...]
"""
import os

from . import _validator
from .errors import ConfigError


def validate_config(doc, source="config.json"):
    """Raise ConfigError unless `doc` is a valid config.json; return it.

    Unless --strict, what runc 1.1.5 accepts outside the spec is first
    taken as runc takes it, with a warning (pyrunc.compat)."""
    return _check_relaxed(_validator.config, doc, source, "config")


def validate_process(doc, source="process.json"):
    """A `runc exec --process` file: the `process` object of a config."""
    return _check_relaxed(_validator.process, doc, source, "process")


def _check_relaxed(check, doc, source, kind):
    from .compat import hidden_from_schema, relax

    with hidden_from_schema(relax(doc, source, kind)):
        return _check(check, doc, source)


def validate_state(doc, source="state"):
    return _check(_validator.state, doc, source)


def validate_features(doc, source="features"):
    return _check(_validator.features, doc, source)


def load_config(path, source=None):
    """Read, parse and validate a config.json; return the document.

    Every failure (unreadable file, bad UTF-8, bad JSON, schema violation)
    is a ConfigError whose source names the file."""
    return _load(path, validate_config, source)


def load_process(path, source=None):
    return _load(path, validate_process, source)


DEFAULT_MAX_BYTES = 64 << 20


def max_bytes():
    """The largest config/process file accepted: $PYRUNC_MAX_CONFIG_BYTES,
    else 64 MiB.  Checked before parsing: an absurd file is one line,
    not minutes of CPU and gigabytes of memory."""
    value = os.environ.get("PYRUNC_MAX_CONFIG_BYTES", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_BYTES


def _load(path, validate, source):
    source = source or path
    limit = max_bytes()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
    except OSError as e:
        raise ConfigError("cannot read: %s" % (e.strerror or e), source) from None
    if size > limit or len(data) > limit:
        raise ConfigError("%d bytes is over the limit of %d (PYRUNC_MAX_CONFIG_BYTES)"
                          % (max(size, len(data)), limit), source)
    return validate(parse_json(data, source), source)


def parse_json(data, source):
    """JSON text (bytes or str) -> document; ConfigError on bad input."""
    from .jsonio import loads

    try:
        return loads(data)
    except UnicodeDecodeError as e:
        raise ConfigError("invalid JSON: not UTF-8 (byte %d)" % e.start, source) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source) from None
    except (ValueError, SystemError):
        # Bad JSON.  (_json's bare scanner raises SystemError for some
        # errors while json.decoder is not loaded yet.)  The json package
        # says where, as "msg: line L column C (char N)".
        pass
    import json

    try:
        return json.loads(data)
    except ValueError as e:
        raise ConfigError("invalid JSON: %s" % e, source) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source) from None


def _check(check, doc, source):
    err = check(doc)
    if err is not None:
        raise ConfigError(format_error(err), source)
    return doc


def format_error(err):
    """[message, innermost segment, ..., outermost] -> 'a.b[2].c: message'."""
    return "%s: %s" % (format_path(reversed(err[1:])), err[0])


def format_path(segments):
    out = []
    for seg in segments:
        if isinstance(seg, int):
            out.append("[%d]" % seg)
        elif _plain(seg):
            out.append("." + seg if out else seg)
        else:
            out.append("[%s]" % _quote(seg))
    return "".join(out) or "(root)"


def _plain(key):
    """A key that reads unambiguously after a dot: letters, digits, _ and -."""
    return key.isascii() and key.replace("_", "a").replace("-", "a").isalnum() and not key[0] == "-"


def _quote(key):
    from _json import encode_basestring

    return encode_basestring(key)


# -- the semantic pass -------------------------------------------------------------

_LOADED = {}


def load_spec(bundle):
    """(raw dict, Spec) of <bundle>/config.json: schema-checked, typed,
    seccomp and resources parsed.  Memoized per file identity: a
    foreground `run` looks at the config before create."""
    path = os.path.join(bundle, "config.json")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("no such file (bundle %s)" % bundle) from None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _LOADED:
        raw = load_config(path)
        spec = typed_spec(raw)
        spec.linux.resources = container_resources(spec)
        _LOADED[key] = (raw, spec)
    return _LOADED[key]


def typed_spec(raw):
    """The typed model of an already validated config (create's, or the
    copy a container keeps for exec) with linux.seccomp parsed."""
    from .spec import Spec

    spec = Spec(raw)
    if spec.linux.seccomp_doc is not None:
        from .security.seccomp import Seccomp

        spec.linux.seccomp = Seccomp.from_dict(spec.linux.seccomp_doc)
    return spec


def container_resources(spec):
    """linux.resources with runc's device rules: the config's rules, then
    runc's default allow-list (cgroups.with_default_devices).  A
    linux.devices node gets no rule of its own: as in runc, the config's
    resources.devices say whether it may be opened."""
    from .cgroups import with_default_devices
    from .cgroups.resources import Resources

    doc = dict(spec.linux.resources_doc or {})
    doc["devices"] = list(doc.get("devices") or ())
    return with_default_devices(Resources.from_dict(doc), spec.linux.devices)


def _under_proc(m):
    """A mount at or under /proc other than the usual fresh procfs there."""
    dest = "/" + m.destination.strip("/")
    return (dest == "/proc" and m.type != "proc") or dest.startswith("/proc/")


def check_spec(spec, plan):
    """Refuse configs pyrunc cannot honour, before touching the system."""
    if spec.process is None:
        raise ConfigError("process: is required to create a container")
    if not spec.process.args:
        raise ConfigError("process.args: must not be empty")
    if spec.root is None:
        raise ConfigError("root: is required on Linux")
    if spec.hostname and not plan.has("uts"):
        raise ConfigError("hostname: cannot set hostname without a private UTS namespace")
    if spec.domainname and not plan.has("uts"):
        raise ConfigError("domainname: cannot set domainname without a private UTS namespace")
    if spec.process.apparmor_profile or spec.process.selinux_label or spec.linux.mount_label:
        from .security.lsm import check_labels

        check_labels(spec.process, spec.linux.mount_label)
    from .security import process_attrs

    process_attrs.check(spec.process, spec.linux)
    if spec.linux.intel_rdt is not None:
        from .intelrdt import check as check_intel_rdt

        check_intel_rdt(spec.linux.intel_rdt)
    if spec.process.capabilities is not None:
        from .security.capabilities import check, check_within_bounding

        check(spec.process.capabilities)
        check_within_bounding(spec.process.capabilities)
    if spec.process.rlimits:
        import resource

        for i, rl in enumerate(spec.process.rlimits):
            if not rl.type.startswith("RLIMIT_") or not hasattr(resource, rl.type):
                raise ConfigError("process.rlimits[%d].type: unknown rlimit %r" % (i, rl.type))
    if plan.new_user and not spec.linux.uid_mappings:
        raise ConfigError("linux.uidMappings: user namespace needs uid mappings")
    if spec.linux.uid_mappings and not plan.has("user"):
        raise ConfigError("linux.uidMappings: mappings given without a user namespace")
    if any(_under_proc(m) for m in spec.mounts):
        from .rootfs import check_proc_destinations

        check_proc_destinations(spec.mounts)
    if any(m.idmapped for m in spec.mounts):
        from .idmap import check as check_idmapped_mounts

        check_idmapped_mounts(spec, plan)
    if spec.linux.seccomp is not None and os.geteuid() != 0:
        spec.linux.seccomp.check_notify_sent_by_process()
    if spec.linux.time_offsets and "time" not in plan.new_types:
        raise ConfigError("linux.timeOffsets: requires a new time namespace")
    for key in spec.linux.sysctl:
        check_sysctl(key, plan)
    if spec.linux.net_devices:
        from .netdevices import check

        check(spec, plan)


_IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))


def check_sysctl(key, plan):
    """Only namespaced sysctls, each with its namespace (as runc checks)."""
    field = "linux.sysctl[%r]" % key
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if not plan.has("ipc"):
            raise ConfigError("%s: requires a new IPC namespace" % field)
        return
    if key.startswith("net."):
        if not plan.has("network"):
            raise ConfigError("%s: requires a new network namespace" % field)
        return
    if key in ("kernel.hostname", "kernel.domainname"):
        if not plan.has("uts"):
            raise ConfigError("%s: requires a new UTS namespace" % field)
        return
    raise ConfigError("%s: sysctl is not namespaced and cannot be set in a container" % field)
