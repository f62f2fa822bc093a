"""cgroup v1 (and hybrid) manager: one directory per mounted hierarchy,
resources written in runc's order and with runc's special cases."""
import errno
import os
import time

from . import fs
from .base import Manager
from .fs import CgroupError
from .paths import UNIFIED

P = "linux.resources."


class V1Manager(Manager):
    __slots__ = ("paths",)
    version = 1

    def __init__(self, paths, resources=None, rootless=False, created=None):
        super().__init__(resources, rootless, created)
        self.paths = dict(paths)  # controller -> host dir ("" = unified on hybrid)

    def dirs(self):
        seen, out = set(), []
        for d in self.paths.values():
            if d not in seen:
                seen.add(d)
                out.append(d)
        return out

    def join_self(self):
        """Writing 0 (the writer itself) to a v1 `tasks` file moves one
        thread without taking the kernel's global threadgroup lock, whose
        first writer waits for an RCU grace period (5-12 ms of wall time
        here for a pid written to cgroup.procs).  For a single-threaded
        caller that is the same move.  The unified hierarchy of a hybrid
        host has no such file: there the pid goes to cgroup.procs."""
        seen = set()
        for ctrl, d in self.paths.items():
            if d in seen:
                continue
            seen.add(d)
            if ctrl == UNIFIED:
                if not self.v2_placed:
                    self._join(d, "cgroup.procs", os.getpid())
            else:
                self._join(d, "tasks", 0)

    def v2_dir(self):
        return self.paths.get(UNIFIED)

    def procs_dir(self):
        for ctrl in ("devices", "freezer", "memory", "pids", "cpu", "cpuset"):
            if ctrl in self.paths:
                return self.paths[ctrl]
        return next(iter(self.paths.values()), None)

    def path(self, ctrl):
        return self.paths.get(ctrl)

    def _create(self):
        if self.rootless:
            # rootless: hierarchies we may not write to are dropped (runc
            # ignores those permission errors too)
            for ctrl, d in list(self.paths.items()):
                try:
                    self._make(d)
                except CgroupError as e:
                    if e.errno not in (errno.EPERM, errno.EACCES, errno.EROFS):
                        raise
                    del self.paths[ctrl]
        super()._create()

    def _make(self, d):
        super()._make(d)
        if d == self.paths.get("cpuset"):
            # A new cpuset cgroup is empty: it takes its parent's cpus/mems.
            # Not only the levels made here: a concurrent create may have
            # made a level and not filled it yet (then every join: ENOSPC).
            _cpuset_fill(d)

    # -- resources ----------------------------------------------------------
    def _need(self, ctrl, field):
        d = self.paths.get(ctrl)
        if d is None:
            raise CgroupError("%s: the %s cgroup controller is not mounted on this host" % (P + field, ctrl))
        return d

    def _apply(self, r):
        if r.cpu is not None:
            self._set_cpuset(r.cpu)
        if r.devices is not None and not self.rootless:
            from . import devices as devmod

            devmod.apply_v1(self._need("devices", "devices"), r.devices)
        if r.memory is not None:
            self._set_memory(r.memory)
        if r.cpu is not None:
            self._set_cpu(r.cpu)
        if r.pids is not None and r.pids.limit is not None:
            write_pids_max(self._need("pids", "pids.limit"), r.pids.limit)
        if r.block_io is not None:
            self._set_blkio(r.block_io)
        if r.hugepage_limits:
            d = self._need("hugetlb", "hugepageLimits")
            set_hugetlb(d, r.hugepage_limits, ".limit_in_bytes")
        if r.network is not None:
            self._set_network(r.network)
        if r.rdma:
            set_rdma(self._need("rdma", "rdma"), r.rdma)
        if r.unified:
            self._set_unified(r.unified)

    def _set_cpuset(self, cpu):
        if cpu.cpus is None and cpu.mems is None:
            return
        d = self._need("cpuset", "cpu.cpus" if cpu.cpus is not None else "cpu.mems")
        if cpu.cpus is not None:
            fs.write(d, "cpuset.cpus", cpu.cpus, P + "cpu.cpus")
        if cpu.mems is not None:
            fs.write(d, "cpuset.mems", cpu.mems, P + "cpu.mems")

    def _set_memory(self, m):
        names = [n for n in ("limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness",
                             "disable_oom_killer", "use_hierarchy") if getattr(m, n) is not None]
        if not names:
            return
        d = self._need("memory", "memory")
        limit, swap = m.limit, m.swap
        if m.check_before_update and (limit or 0) > 0:
            usage = fs.read_int(d, "memory.usage_in_bytes", 0)
            if limit <= usage:
                raise CgroupError("%smemory.limit: rejecting memory limit %d <= usage %d (checkBeforeUpdate)"
                                  % (P, limit, usage))
        if limit == -1 and not swap and fs.exists(d, "memory.memsw.limit_in_bytes"):
            swap = -1
        if limit and swap:
            current = fs.read_int(d, "memory.limit_in_bytes", 0)
            # raise the combined limit first when growing, so that
            # memory <= memory+swap holds after every single write
            if swap == -1 or current is None or current < swap:
                _write_swap(d, swap)
                _write_memory(d, limit)
                swap = limit = None
        if limit:
            _write_memory(d, limit)
        if swap:
            _write_swap(d, swap)
        if m.reservation is not None:
            fs.write(d, "memory.soft_limit_in_bytes", m.reservation, P + "memory.reservation")
        if m.kernel is not None and fs.exists(d, "memory.kmem.limit_in_bytes"):
            _write_ignoring_unsupported(d, "memory.kmem.limit_in_bytes", m.kernel, P + "memory.kernel")
        if m.kernel_tcp is not None and fs.exists(d, "memory.kmem.tcp.limit_in_bytes"):
            fs.write(d, "memory.kmem.tcp.limit_in_bytes", m.kernel_tcp, P + "memory.kernelTCP")
        if m.disable_oom_killer is not None:
            fs.write(d, "memory.oom_control", 1 if m.disable_oom_killer else 0, P + "memory.disableOOMKiller")
        if m.swappiness is not None and m.swappiness != -1:
            if not 0 <= m.swappiness <= 100:
                raise CgroupError("%smemory.swappiness: invalid value %d (valid range is 0-100)"
                                  % (P, m.swappiness))
            fs.write(d, "memory.swappiness", m.swappiness, P + "memory.swappiness")
        if m.use_hierarchy is not None:
            _write_use_hierarchy(d, m.use_hierarchy)

    def _set_cpu(self, c):
        fields = ("shares", "quota", "burst", "period", "realtime_runtime", "realtime_period", "idle")
        if all(getattr(c, f) is None for f in fields):
            return
        d = self._need("cpu", "cpu")
        if c.shares:
            fs.write(d, "cpu.shares", c.shares, P + "cpu.shares")
            got = fs.read_int(d, "cpu.shares")
            if got is not None and got != c.shares:
                raise CgroupError("%scpu.shares: the %s allowed cpu-shares is %d" % (
                    P, "maximum" if c.shares > got else "minimum", got))
        _write_pair(d, "cpu.cfs_period_us", c.period, "cpu.cfs_quota_us", c.quota,
                    P + "cpu.period", P + "cpu.quota")
        if c.burst is not None:
            if not fs.exists(d, "cpu.cfs_burst_us"):
                raise CgroupError("%scpu.burst: cpu.cfs_burst_us is not supported by this kernel" % P)
            fs.write(d, "cpu.cfs_burst_us", c.burst, P + "cpu.burst")
        if c.idle is not None:
            fs.write(d, "cpu.idle", c.idle, P + "cpu.idle")
        _write_pair(d, "cpu.rt_period_us", c.realtime_period, "cpu.rt_runtime_us", c.realtime_runtime,
                    P + "cpu.realtimePeriod", P + "cpu.realtimeRuntime")

    def _set_blkio(self, b):
        if not b.to_dict():
            return
        d = self._need("blkio", "blockIO")
        bfq = not fs.exists(d, "blkio.weight") and fs.exists(d, "blkio.bfq.weight")
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        if b.weight and not fs.exists(d, weight_file):
            raise CgroupError("%sblockIO.weight: this host has neither blkio.weight nor blkio.bfq.weight "
                              "(no CFQ or BFQ I/O scheduler)" % P)
        if b.weight:
            fs.write(d, weight_file, b.weight, P + "blockIO.weight")
        if b.leaf_weight:
            fs.write(d, "blkio.leaf_weight", b.leaf_weight, P + "blockIO.leafWeight")
        for i, wd in enumerate(b.weight_device or ()):
            field = "%sblockIO.weightDevice[%d]" % (P, i)
            if wd.weight:
                fs.write(d, weight_file + "_device", "%d:%d %d" % (wd.major, wd.minor, wd.weight), field)
            if wd.leaf_weight:
                fs.write(d, "blkio.leaf_weight_device", "%d:%d %d" % (wd.major, wd.minor, wd.leaf_weight), field)
        for name, attr in b.THROTTLES:
            file = "blkio.throttle.%s_device" % {
                "throttle_read_bps_device": "read_bps", "throttle_write_bps_device": "write_bps",
                "throttle_read_iops_device": "read_iops", "throttle_write_iops_device": "write_iops"}[attr]
            for i, td in enumerate(getattr(b, attr) or ()):
                fs.write(d, file, "%d:%d %d" % (td.major, td.minor, td.rate),
                         "%sblockIO.%s[%d]" % (P, name, i))

    def _set_network(self, n):
        if n.class_id is not None:
            fs.write(self._need("net_cls", "network.classID"), "net_cls.classid", n.class_id,
                     P + "network.classID")
        for i, prio in enumerate(n.priorities or ()):
            d = self._need("net_prio", "network.priorities")
            fs.write(d, "net_prio.ifpriomap", "%s %d" % (prio.name, prio.priority),
                     "%snetwork.priorities[%d]" % (P, i))

    def _set_unified(self, unified):
        """v2 keys on a v1 host: only where the key's controller (or the
        core "cgroup." files) lives on the hybrid unified hierarchy."""
        d = self.paths.get(UNIFIED)
        available = set()
        if d is not None:
            available = set((fs.read_or_none(os.path.dirname(d), "cgroup.controllers") or "").split())
        for key, value in unified.items():
            field = "%sunified.%s" % (P, key)
            ctrl = key.partition(".")[0]
            if "/" in key or not key.partition(".")[2]:
                raise CgroupError("%s: must be a file name of the form CONTROLLER.PARAMETER" % field)
            if d is None or (ctrl != "cgroup" and ctrl not in available):
                # runc's "invalid configuration" (tools match on it)
                raise CgroupError("%s: invalid configuration: cgroup v1 host: the %s controller is not "
                                  "on the unified hierarchy" % (field, ctrl))
            fs.write(d, key, value, field)

    # -- freezer ------------------------------------------------------------
    def can_freeze(self):
        return "freezer" in self.paths

    def freeze(self):
        d = self._need("freezer", "freezer")
        try:
            for i in range(1000):
                if i % 50 == 49:
                    # a task stuck in FREEZING: thaw and try again (as runc)
                    fs.write(d, "freezer.state", "THAWED")
                    time.sleep(0.01)
                fs.write(d, "freezer.state", "FROZEN")
                state = fs.read(d, "freezer.state").strip()
                if state == "FROZEN":
                    return
                if state != "FREEZING":
                    raise CgroupError("freeze %s: unexpected state %s" % (d, state))
                time.sleep(0.0001 if i % 25 == 24 else 0)
            raise CgroupError("freeze %s: unable to freeze" % d)
        except BaseException:
            fs.write(d, "freezer.state", "THAWED")
            raise

    def thaw(self):
        fs.write(self._need("freezer", "freezer"), "freezer.state", "THAWED")

    def is_frozen(self):
        d = self.paths.get("freezer")
        return d is not None and (fs.read_or_none(d, "freezer.state") or "").strip() == "FROZEN"

    # -- events -------------------------------------------------------------
    def oom_events(self):
        d = self.paths.get("memory")
        return fs.read_keyed(d, "memory.oom_control").get("oom_kill", 0) if d else 0

    def stats(self):
        from .stats import v1_stats
        return v1_stats(self.paths)

    # -- rootfs -------------------------------------------------------------
    def mount_paths(self):
        from .mount import v1_mount_plan
        return v1_mount_plan(self.paths)

    def to_dict(self):
        d = super().to_dict()
        d["paths"] = dict(self.paths)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(d["paths"], **cls._common_from_dict(d))


def _cpuset_fill(d):
    """Fill d and its still-empty ancestors from their parents, top-down."""
    empty = []
    while fs.exists(d, "cpuset.cpus") and not all((fs.read_or_none(d, n) or "").strip()
                                                  for n in ("cpuset.cpus", "cpuset.mems")):
        empty.append(d)
        d = os.path.dirname(d)
    for level in reversed(empty):
        _cpuset_inherit(level)


def _cpuset_inherit(d):
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (fs.read_or_none(d, name) or "").strip():
            fs.write(d, name, (fs.read_or_none(parent, name) or "").strip() or "\n")


def _write_memory(d, limit):
    try:
        fs.write(d, "memory.limit_in_bytes", limit, P + "memory.limit")
    except CgroupError as e:
        if e.errno != errno.EBUSY:
            raise
        raise CgroupError("%smemory.limit: unable to set memory limit to %d (current usage: %s, peak usage: %s)"
                          % (P, limit, fs.read_int(d, "memory.usage_in_bytes"),
                             fs.read_int(d, "memory.max_usage_in_bytes")), e.errno) from None


def _write_swap(d, swap):
    if not fs.exists(d, "memory.memsw.limit_in_bytes"):
        raise CgroupError("%smemory.swap: swap accounting is not enabled on this host "
                          "(memory.memsw.limit_in_bytes missing)" % P)
    fs.write(d, "memory.memsw.limit_in_bytes", swap, P + "memory.swap")


def _write_ignoring_unsupported(d, name, value, field):
    try:
        fs.write(d, name, value, field)
    except CgroupError as e:
        # kernels >= 5.16 keep the file but refuse kernel memory limits;
        # runc ignores the setting altogether
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, 524, errno.EINVAL):
            raise


def _write_use_hierarchy(d, enabled):
    want = 1 if enabled else 0
    if fs.read_int(d, "memory.use_hierarchy") == want:
        return
    try:
        fs.write(d, "memory.use_hierarchy", want, P + "memory.useHierarchy")
    except CgroupError as e:
        # kernels >= 5.x are always hierarchical and refuse 0 (EINVAL);
        # runc ignores the field altogether
        if want or e.errno != errno.EINVAL:
            raise


def _write_pair(d, period_file, period, value_file, value, period_field, value_field):
    """cfs/rt period + quota/runtime: the kernel checks each write against
    the other value, so a period refused with EINVAL is retried after the
    quota/runtime (runc's order)."""
    pending = None
    if period:
        try:
            fs.write(d, period_file, period, period_field)
        except CgroupError as e:
            if e.errno != errno.EINVAL or not value:
                raise
            pending = period
    if value:
        fs.write(d, value_file, value, value_field)
        if pending:
            fs.write(d, period_file, pending, period_field)


def write_pids_max(d, limit):
    # negative = unlimited; 0 becomes 1 as in runc (systemd can't say 0,
    # and both drivers should agree)
    value = "max" if limit < 0 else str(limit) if limit > 0 else "1"
    fs.write(d, "pids.max", value, P + "pids.limit")


def set_hugetlb(d, limits, suffix):
    skip_rsvd = False
    for i, h in enumerate(limits):
        field = "%shugepageLimits[%d]" % (P, i)
        prefix = "hugetlb." + (h.page_size or "")
        fs.write(d, prefix + suffix, h.limit, field)
        if not skip_rsvd:
            if fs.exists(d, prefix + ".rsvd" + suffix):
                fs.write(d, prefix + ".rsvd" + suffix, h.limit, field)
            else:
                skip_rsvd = True


def set_rdma(d, rdma):
    for name, limits in rdma.items():
        line = "%s hca_handle=%s hca_object=%s" % (
            name, "max" if limits.hca_handles is None else limits.hca_handles,
            "max" if limits.hca_objects is None else limits.hca_objects)
        fs.write(d, "rdma.max", line, "%srdma.%s" % (P, name))
