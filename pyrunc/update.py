"""`update`: change a running container's resources (a linux.resources
document; runc's flags become one in cli_requests) and Intel RDT schemata."""
from .errors import PyruncError


def update(c, resources_doc, l3_cache_schema="", mem_bw_schema=""):
    """Lay `resources_doc` over container `c`'s resources (device rules are
    never changed by update, as in runc) and record the result."""
    from .cgroups.update import merge_update, update_resources
    from .container import STOPPED

    if c.status() == STOPPED:
        raise PyruncError("container not running")
    if l3_cache_schema or mem_bw_schema:
        from .intelrdt import update_schemata

        update_schemata(c.record.get("intel_rdt"), l3_cache_schema or "", mem_bw_schema or "")
    mgr = c.cgroup_manager()
    if mgr is None:
        raise PyruncError("container has no cgroup to update")
    mgr.set(merge_update(mgr.resources, update_resources(resources_doc)))
    c.record["cgroup"] = mgr.to_dict()
    c.save()
