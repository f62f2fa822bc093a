"""`update`: change a running container's resources (runc's flags or a
linux.resources document from --resources FILE|-)."""
import sys

from .errors import PyruncError


def update_cli(g, ns):
    from .cgroups.update import merge_update, update_resources
    from .container import STOPPED, Container
    from .jsonio import loads

    c = Container.load(ns.args[0], g.root)
    if c.status() == STOPPED:
        raise PyruncError("container not running")
    if ns.l3_cache_schema or ns.mem_bw_schema:
        from .intelrdt import update_schemata

        update_schemata(c.record.get("intel_rdt"), ns.l3_cache_schema or "", ns.mem_bw_schema or "")
    doc = None
    if ns.resources:
        data = sys.stdin.read() if ns.resources == "-" else open(ns.resources).read()
        try:
            doc = loads(data)
        except ValueError as e:
            raise PyruncError("--resources: invalid JSON: %s" % e) from None
    flags = {k: v for k, v in vars(ns).items() if k not in ("args", "help", "resources")}
    mgr = c.cgroup_manager()
    if mgr is None:
        raise PyruncError("container has no cgroup to update")
    mgr.set(merge_update(mgr.resources, update_resources(doc, flags)))
    c.record["cgroup"] = mgr.to_dict()
    c.save()
