"""cgroup v2 manager: one directory in the unified hierarchy; v1-phrased
OCI resources converted as runc converts them; devices by eBPF."""
import errno
import os
import time

from . import convert
from . import fs
from .base import Manager
from .fs import CgroupError
from .v1 import set_hugetlb, set_rdma, write_pids_max

P = "linux.resources."


class V2Manager(Manager):
    __slots__ = ("path", "root")
    version = 2

    def __init__(self, path, resources=None, rootless=False, created=None, root="/sys/fs/cgroup"):
        super().__init__(resources, rootless, created)
        self.path = path
        self.root = root  # the hierarchy's mount point: controllers are enabled below it

    def dirs(self):
        return [self.path]

    def procs_dir(self):
        return self.path

    def v2_dir(self):
        return self.path

    def _create(self):
        # controllers must be enabled in every ancestor's subtree_control
        # before the leaf can use them (runc's CreateCgroupPath)
        try:
            self._enable_controllers()
        except BaseException:
            self._remove_created()
            raise
        super()._create()

    def _enable_controllers(self):
        rel = os.path.relpath(self.path, self.root)
        if rel.startswith(".."):
            raise CgroupError("cgroup %s is not under %s" % (self.path, self.root))
        from .paths import V2_ROOT, host_is_v2
        # In cgroups we make, every available controller is enabled (runc);
        # in ancestors that already exist, all of them only on a pure v2
        # host (runc again), else just those the resources need, so that a
        # hybrid host's shared unified root is left as it is.
        everything = self.root == V2_ROOT and host_is_v2()
        needed = needed_controllers(self.resources)
        current = self.root
        for part in rel.split("/"):
            ours = current in self.created
            available = (fs.read_or_none(current, "cgroup.controllers") or "").split()
            enabled = set((fs.read_or_none(current, "cgroup.subtree_control") or "").split())
            for ctrl in available:
                if ctrl in enabled or not (ours or everything or ctrl in needed):
                    continue
                try:
                    fs.write(current, "cgroup.subtree_control", "+" + ctrl)
                except CgroupError as e:
                    # a controller in use by a process-holding parent, or
                    # threaded mode: runc goes on without it too
                    if e.errno not in (errno.EBUSY, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM,
                                       errno.EACCES, errno.EINVAL):
                        raise
            current = current + "/" + part
            if current != self.path:
                self._make(current)

    def controllers(self):
        return set((fs.read_or_none(self.path, "cgroup.controllers") or "").split())

    # -- resources ----------------------------------------------------------
    def _apply(self, r):
        d = self.path
        if r.pids is not None and r.pids.limit is not None:
            write_pids_max(d, r.pids.limit)
        if r.memory is not None:
            self._set_memory(r.memory)
        if r.block_io is not None:
            self._set_io(r.block_io)
        if r.cpu is not None:
            self._set_cpu(r.cpu)
        if r.devices is not None:
            from .ebpf import apply_v2
            try:
                apply_v2(d, r.devices)
            except CgroupError:
                # in a user namespace bpf() is refused; runc goes on when
                # the rules would only have allowed everything anyway
                if not (self.rootless and _all_allow_rwm(r.devices)):
                    raise
        if r.cpu is not None:
            self._set_cpuset(r.cpu)
        if r.hugepage_limits:
            set_hugetlb(d, r.hugepage_limits, ".max")
        if r.rdma:
            set_rdma(d, r.rdma)
        if r.network is not None and (r.network.class_id is not None or r.network.priorities):
            raise CgroupError("%snetwork: net_cls/net_prio do not exist on cgroup v2 (use an eBPF program)" % P)
        if r.unified:
            self._set_unified(r.unified)

    def _set_memory(self, m):
        d = self.path
        limit, swap = m.limit, m.swap
        if (limit or 0) > 0 or (swap or 0) > 0:
            if m.check_before_update:
                usage = fs.read_int(d, "memory.current", 0) or 0
                if (swap or 0) > 0 and swap <= usage:
                    raise CgroupError("%smemory.swap: rejecting memory+swap limit %d <= usage %d" % (P, swap, usage))
                if (limit or 0) > 0 and limit <= usage:
                    raise CgroupError("%smemory.limit: rejecting memory limit %d <= usage %d" % (P, limit, usage))
        if limit is not None or swap is not None:
            try:
                swap_max = convert.memory_swap_to_v2(swap, limit)
            except ValueError as e:
                raise CgroupError("%smemory.swap: %s" % (P, e)) from None
            if swap_max is not None:
                if fs.exists(d, "memory.swap.max"):
                    fs.write(d, "memory.swap.max", convert.v2_number(swap_max), P + "memory.swap")
                elif swap_max not in (-1, 0):
                    raise CgroupError("%smemory.swap: memory.swap.max is missing (swap accounting off?)" % P)
            if limit:
                fs.write(d, "memory.max", convert.v2_number(limit), P + "memory.limit")
        if m.reservation:
            fs.write(d, "memory.low", convert.v2_number(m.reservation), P + "memory.reservation")
        # kernel, kernelTCP, swappiness, disableOOMKiller and useHierarchy
        # have no v2 file: runc ignores them there, and so do we

    def _set_io(self, b):
        d = self.path
        bfq = fs.exists(d, "io.bfq.weight")
        if b.weight:
            if bfq:
                fs.write(d, "io.bfq.weight", b.weight, P + "blockIO.weight")
            else:
                fs.write(d, "io.weight", convert.blkio_weight_to_io_weight(b.weight), P + "blockIO.weight")
        for i, wd in enumerate(b.weight_device or ()):
            if wd.weight and bfq:
                fs.write(d, "io.bfq.weight", "%d:%d %d" % (wd.major, wd.minor, wd.weight),
                         "%sblockIO.weightDevice[%d]" % (P, i))
        for name, attr in b.THROTTLES:
            key = {"throttle_read_bps_device": "rbps", "throttle_write_bps_device": "wbps",
                   "throttle_read_iops_device": "riops", "throttle_write_iops_device": "wiops"}[attr]
            for i, td in enumerate(getattr(b, attr) or ()):
                fs.write(d, "io.max", "%d:%d %s=%s" % (td.major, td.minor, key, td.rate if td.rate else "max"),
                         "%sblockIO.%s[%d]" % (P, name, i))

    def _set_cpu(self, c):
        d = self.path
        if c.idle is not None:
            fs.write(d, "cpu.idle", c.idle, P + "cpu.idle")
        if c.shares:
            fs.write(d, "cpu.weight", convert.cpu_shares_to_weight(c.shares), P + "cpu.shares")
        pending_burst = None
        if c.burst is not None:
            try:
                fs.write(d, "cpu.max.burst", c.burst, P + "cpu.burst")
            except CgroupError as e:
                if e.errno != errno.EINVAL or not c.quota:
                    raise
                pending_burst = c.burst  # above the old quota: retry after it
        if c.quota or c.period:
            value = "%s %d" % (c.quota if (c.quota or 0) > 0 else "max", c.period or 100000)
            fs.write(d, "cpu.max", value, P + ("cpu.quota" if c.quota else "cpu.period"))
            if pending_burst is not None:
                fs.write(d, "cpu.max.burst", pending_burst, P + "cpu.burst")
        if c.realtime_runtime or c.realtime_period:
            raise CgroupError("%scpu.realtimeRuntime: realtime scheduling limits do not exist on cgroup v2" % P)

    def _set_cpuset(self, c):
        if c.cpus:
            fs.write(self.path, "cpuset.cpus", c.cpus, P + "cpu.cpus")
        if c.mems:
            fs.write(self.path, "cpuset.mems", c.mems, P + "cpu.mems")

    def _set_unified(self, unified):
        available = self.controllers()
        for key, value in unified.items():
            field = "%sunified.%s" % (P, key)
            if "/" in key:
                raise CgroupError("%s: must be a file name (no slashes)" % field)
            try:
                for line in value.split("\n") if "\n" in value else [value]:
                    fs.write(self.path, key, line, field)
            except CgroupError as e:
                ctrl, dot, _ = key.partition(".")
                if e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
                    if not dot:
                        raise CgroupError("%s: must be of the form CONTROLLER.PARAMETER" % field) from None
                    if ctrl != "cgroup" and ctrl not in available:
                        raise CgroupError("%s: controller %s is not available" % (field, ctrl)) from None
                raise

    # -- freezer ------------------------------------------------------------
    def can_freeze(self):
        return fs.exists(self.path, "cgroup.freeze")

    def freeze(self):
        self._freeze("1")

    def thaw(self):
        self._freeze("0")

    def _freeze(self, value):
        fs.write(self.path, "cgroup.freeze", value)
        # the write returns at once; cgroup.events says when it took effect
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            events = fs.read_keyed(self.path, "cgroup.events")
            if str(events.get("frozen", value)) == value:
                return
            time.sleep(0.001)
        raise CgroupError("%s %s: timed out" % ("freeze" if value == "1" else "thaw", self.path))

    def is_frozen(self):
        return fs.read_keyed(self.path, "cgroup.events").get("frozen") == 1

    def kill_all(self, sig):
        # cgroup.kill is atomic against forks: no freeze needed for SIGKILL
        if sig == 9 and fs.exists(self.path, "cgroup.kill"):
            fs.write(self.path, "cgroup.kill", "1")
            return
        super().kill_all(sig)

    # -- events -------------------------------------------------------------
    def oom_events(self):
        return fs.read_keyed(self.path, "memory.events").get("oom_kill", 0)

    def stats(self):
        from .stats import v2_stats
        return v2_stats(self.path)

    def mount_paths(self):
        from .mount import v2_mount_plan
        return v2_mount_plan(self.path)

    def to_dict(self):
        d = super().to_dict()
        d["path"] = self.path
        d["root"] = self.root
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(d["path"], root=d.get("root") or "/sys/fs/cgroup", **cls._common_from_dict(d))


def needed_controllers(r):
    """The v2 controllers the resources write to."""
    need = set()
    if r is None:
        return need
    if r.memory is not None and (r.memory.limit or r.memory.swap or r.memory.reservation):
        need.add("memory")
    if r.cpu is not None:
        if any(getattr(r.cpu, f) is not None for f in ("shares", "quota", "period", "burst", "idle")):
            need.add("cpu")
        if r.cpu.cpus or r.cpu.mems:
            need.add("cpuset")
    if r.pids is not None and r.pids.limit is not None:
        need.add("pids")
    if r.block_io is not None and r.block_io.to_dict():
        need.add("io")
    if r.hugepage_limits:
        need.add("hugetlb")
    if r.rdma:
        need.add("rdma")
    for key in r.unified or ():
        if key.partition(".")[0] != "cgroup":
            need.add(key.partition(".")[0])
    return need


def _all_allow_rwm(rules):
    from .devices import normalize
    return all(allow and access == "rwm" for allow, _t, _a, _b, access in normalize(rules))
