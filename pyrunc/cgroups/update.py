"""`update`: runc's flags (or a linux.resources JSON document) turned into
the Resources to apply, and laid over a container's current resources the
way runc lays them (device lists upserted per major:minor, devices never
changed by update, the unified map replaced by the update's own).

    upd = update_resources(doc=json_or_None, flags={"memory": "512m", "pids_limit": "10"})
    mgr.set(merge_update(mgr.resources, upd))
"""
from ..errors import ConfigError
from .resources import BlockIO, Resources

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


def update_resources(doc=None, flags=None):
    """Resources for `update`: from the --resources document when given
    (flags are then ignored, as in runc), else from the per-field flags
    (a dict dest -> string; None/"" = not given)."""
    if doc is None:
        doc = {}
        for dest, section, field, kind in _FLAGS:
            value = (flags or {}).get(dest)
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
    elif not isinstance(doc, dict):
        raise ConfigError("expected a linux.resources object", source="update")
    r = Resources.from_dict(doc, "resources")
    r.devices = None  # runc: update never changes device rules
    if r.memory is not None and r.memory.limit == -1 and r.memory.swap is None:
        r.memory.swap = 0  # unlimited memory: swap limit follows
    return r


def _upsert(current, updates):
    out = list(current or [])
    for u in updates or ():
        for i in range(len(out) - 1, -1, -1):
            if (out[i].major, out[i].minor) == (u.major, u.minor):
                out[i] = out[i].merge(u)
                break
        else:
            out.append(u)
    return out


def merge_update(current, upd):
    """current (Resources or None) with the update laid over it; block IO
    device lists are upserted by major:minor rather than replaced."""
    if current is None:
        return upd
    merged = current.merge(upd)
    # runc's update replaces unified with the update's map, also when it
    # has none: an old map written again (after the other fields) would
    # undo this update's values. {} not None, so set()'s merge keeps it so.
    merged.unified = dict(upd.unified or {})
    if current.block_io is not None and upd.block_io is not None:
        b = merged.block_io
        b.weight_device = _upsert(current.block_io.weight_device, upd.block_io.weight_device)
        for _, attr in BlockIO.THROTTLES:
            setattr(b, attr, _upsert(getattr(current.block_io, attr), getattr(upd.block_io, attr)))
    return merged
