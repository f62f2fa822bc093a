"""`update`: a linux.resources document turned into the Resources to
apply, and laid over a container's current resources the way runc lays
them (device lists upserted per major:minor, devices never changed by
update, the unified map replaced by the update's own).  (runc's per-field
flags become such a document in the CLI layer, cli_requests.py.)

    mgr.set(merge_update(mgr.resources, update_resources(doc)))
"""
from ..errors import ConfigError
from .resources import BlockIO, Resources

def update_resources(doc):
    """Resources for `update` from a linux.resources document."""
    if not isinstance(doc, dict):
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
