"""The CLI layer's second half: runc's flags turned into the typed requests
the library takes (exec, update, ps, events).  Nothing below this module
sees an argv namespace."""
from .errors import ConfigError, PyruncError


# -- exec ---------------------------------------------------------------------------

def exec_request(ns):
    """-> (container id, execute.ExecRequest)."""
    from .execute import ExecRequest, ProcessOverrides

    try:
        preserve = int(ns.preserve_fds)
    except ValueError:
        raise PyruncError("invalid value %r for --preserve-fds" % ns.preserve_fds) from None
    uid = gid = None
    if ns.user:
        u, sep, g = ns.user.partition(":")
        uid = _id(u, "uid")
        gid = _id(g, "gid") if sep else None
    overrides = ProcessOverrides(
        ns.args[1:], cwd=ns.cwd, env=ns.env, terminal=bool(ns.tty), uid=uid, gid=gid,
        additional_gids=[_id(x, "additional gid") for x in ns.additional_gids],
        apparmor_profile=ns.apparmor, selinux_label=ns.process_label, add_caps=ns.cap,
        no_new_privileges=bool(ns.no_new_privs))
    return ns.args[0], ExecRequest(
        process_file=ns.process, overrides=overrides, detach=ns.detach, pid_file=ns.pid_file,
        console_socket=ns.console_socket, preserve_fds=preserve, cgroups=ns.cgroup,
        ignore_paused=ns.ignore_paused)


def _id(text, what):
    try:
        v = int(text)
    except ValueError:
        raise PyruncError("parsing %s as int for %s failed" % (text, what)) from None
    if v < 0:
        raise PyruncError("%s %d is negative" % (what, v))
    return v


# -- update --------------------------------------------------------------------------

def update_document(ns, stdin):
    """The linux.resources document `update` applies: --resources FILE|-
    (the per-field flags are then ignored, as in runc), else the flags."""
    if ns.resources:
        from .jsonio import loads

        data = stdin.read() if ns.resources == "-" else open(ns.resources).read()
        try:
            return loads(data)
        except ValueError as e:
            raise PyruncError("--resources: invalid JSON: %s" % e) from None
    return resources_from_flags(vars(ns))


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_ram(text, flag):
    """docker/go-units RAMInBytes: "512m", "1.5g", "100", "64KiB"; "-1"."""
    s = text.strip()
    if s == "-1":
        return -1
    low = s.lower()
    if low.endswith("b"):
        low = low[:-1]
    if low.endswith("i"):
        low = low[:-1]
    unit = low[-1:] if low[-1:] in "kmgtp" and low[-1:] else ""
    number = low[:len(low) - len(unit)].strip()
    try:
        value = float(number)
        if not number or value < 0 or not number.replace(".", "", 1).isdigit():
            raise ValueError
    except ValueError:
        raise ConfigError("invalid value for %s: invalid size: %r" % (flag, text), source="update") from None
    return int(value * _UNITS[unit])


def _int(text, flag, unsigned=False):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError("invalid value for %s: %r is not an integer" % (flag, text), source="update") from None
    if unsigned and value < 0:
        raise ConfigError("invalid value for %s: %r is negative" % (flag, text), source="update")
    return value


# flag dest -> (section, OCI field, parser)
_FLAGS = (
    ("blkio_weight", "blockIO", "weight", "uint"),
    ("cpuset_cpus", "cpu", "cpus", "str"),
    ("cpuset_mems", "cpu", "mems", "str"),
    ("cpu_idle", "cpu", "idle", "int"),
    ("cpu_burst", "cpu", "burst", "uint"),
    ("cpu_period", "cpu", "period", "uint"),
    ("cpu_rt_period", "cpu", "realtimePeriod", "uint"),
    ("cpu_share", "cpu", "shares", "uint"),
    ("cpu_quota", "cpu", "quota", "int"),
    ("cpu_rt_runtime", "cpu", "realtimeRuntime", "int"),
    ("memory", "memory", "limit", "ram"),
    ("memory_swap", "memory", "swap", "ram"),
    ("kernel_memory", "memory", "kernel", "ram"),
    ("kernel_memory_tcp", "memory", "kernelTCP", "ram"),
    ("memory_reservation", "memory", "reservation", "ram"),
    ("pids_limit", "pids", "limit", "int"),
)


def resources_from_flags(flags):
    """runc's per-field update flags (a dict dest -> string; None/"" = not
    given) as a linux.resources document."""
    doc = {}
    for dest, section, field, kind in _FLAGS:
        value = flags.get(dest)
        if value is None or value == "":
            continue
        flag = "--" + dest.replace("_", "-")
        if kind == "str":
            parsed = value
        elif kind == "ram":
            parsed = parse_ram(str(value), flag)
        else:
            parsed = _int(value, flag, unsigned=(kind == "uint"))
            if dest == "blkio_weight" and parsed == 0:
                continue  # runc: 0 = not given
        doc.setdefault(section, {})[field] = parsed
    return doc


# -- events --------------------------------------------------------------------------

def parse_duration(text):
    """Go durations as runc's --interval takes them: 5s, 100ms, 1m, 1.5s."""
    units = (("ms", 0.001), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise PyruncError("invalid --interval %r: a positive duration such as 5s or 500ms" % text)
