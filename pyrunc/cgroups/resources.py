"""Typed view of OCI `linux.resources`.

Every field is None when the config leaves it out, so that `set()` writes
only what was asked for and `merge()` can lay an `update` over the
resources a container was created with (runc's update semantics).

    r = Resources.from_dict(config["linux"]["resources"])
    r.memory.limit, r.cpu.shares, r.pids.limit, r.devices[0].access
    r.to_dict() == the OCI form again (None fields dropped)
"""
from ..errors import ConfigError

PREFIX = "linux.resources"


def _check_int(value, path):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("%s: expected an integer, got %r" % (path, value))
    return value


def _check_str(value, path):
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("%s: expected a string, got %r" % (path, value))
    return value


def _check_bool(value, path):
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError("%s: expected a boolean, got %r" % (path, value))
    return value


_CHECK = {"int": _check_int, "str": _check_str, "bool": _check_bool}


class _Group:
    """A flat JSON object of scalars: subclasses list (json name, attr, kind)."""

    __slots__ = ()
    FIELDS = ()

    def __init__(self, **kw):
        for _, attr, _kind in self.FIELDS:
            setattr(self, attr, kw.pop(attr, None))
        if kw:
            raise TypeError("unknown fields: %s" % ", ".join(sorted(kw)))

    @classmethod
    def from_dict(cls, d, path):
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ConfigError("%s: expected an object, got %r" % (path, d))
        self = cls.__new__(cls)
        for name, attr, kind in cls.FIELDS:
            setattr(self, attr, _CHECK[kind](d.get(name), "%s.%s" % (path, name)))
        return self

    def to_dict(self):
        out = {}
        for name, attr, _kind in self.FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[name] = value
        return out

    def merge(self, other):
        """A copy of self with other's non-None fields laid over it."""
        if other is None:
            return self
        new = self.__class__.__new__(self.__class__)
        for _, attr, _kind in self.FIELDS:
            value = getattr(other, attr)
            setattr(new, attr, getattr(self, attr) if value is None else value)
        return new

    def is_empty(self):
        return all(getattr(self, attr) is None for _, attr, _k in self.FIELDS)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "%s(%r)" % (self.__class__.__name__, self.to_dict())


class Memory(_Group):
    __slots__ = ("limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness",
                 "disable_oom_killer", "use_hierarchy", "check_before_update")
    FIELDS = (
        ("limit", "limit", "int"),
        ("reservation", "reservation", "int"),
        ("swap", "swap", "int"),
        ("kernel", "kernel", "int"),
        ("kernelTCP", "kernel_tcp", "int"),
        ("swappiness", "swappiness", "int"),
        ("disableOOMKiller", "disable_oom_killer", "bool"),
        ("useHierarchy", "use_hierarchy", "bool"),
        ("checkBeforeUpdate", "check_before_update", "bool"),
    )


class CPU(_Group):
    __slots__ = ("shares", "quota", "burst", "period", "realtime_runtime",
                 "realtime_period", "cpus", "mems", "idle")
    FIELDS = (
        ("shares", "shares", "int"),
        ("quota", "quota", "int"),
        ("burst", "burst", "int"),
        ("period", "period", "int"),
        ("realtimeRuntime", "realtime_runtime", "int"),
        ("realtimePeriod", "realtime_period", "int"),
        ("cpus", "cpus", "str"),
        ("mems", "mems", "str"),
        ("idle", "idle", "int"),
    )


class Pids(_Group):
    __slots__ = ("limit",)
    FIELDS = (("limit", "limit", "int"),)


class DeviceRule(_Group):
    """One linux.resources.devices entry; major/minor None = wildcard."""

    __slots__ = ("allow", "type", "major", "minor", "access")
    FIELDS = (
        ("allow", "allow", "bool"),
        ("type", "type", "str"),
        ("major", "major", "int"),
        ("minor", "minor", "int"),
        ("access", "access", "str"),
    )

    @classmethod
    def from_dict(cls, d, path):
        self = super().from_dict(d, path)
        if self.allow is None:
            raise ConfigError("%s.allow: required" % path)
        if self.type not in (None, "a", "c", "b"):
            raise ConfigError("%s.type: %r is not one of 'a', 'b', 'c'" % (path, self.type))
        if self.access is not None and (not self.access or self.access.strip("rwm")):
            raise ConfigError("%s.access: %r is not a combination of 'r', 'w', 'm'" % (path, self.access))
        return self


class WeightDevice(_Group):
    __slots__ = ("major", "minor", "weight", "leaf_weight")
    FIELDS = (
        ("major", "major", "int"),
        ("minor", "minor", "int"),
        ("weight", "weight", "int"),
        ("leafWeight", "leaf_weight", "int"),
    )


class ThrottleDevice(_Group):
    __slots__ = ("major", "minor", "rate")
    FIELDS = (
        ("major", "major", "int"),
        ("minor", "minor", "int"),
        ("rate", "rate", "int"),
    )


class HugepageLimit(_Group):
    __slots__ = ("page_size", "limit")
    FIELDS = (("pageSize", "page_size", "str"), ("limit", "limit", "int"))


class InterfacePriority(_Group):
    __slots__ = ("name", "priority")
    FIELDS = (("name", "name", "str"), ("priority", "priority", "int"))


class Rdma(_Group):
    __slots__ = ("hca_handles", "hca_objects")
    FIELDS = (("hcaHandles", "hca_handles", "int"), ("hcaObjects", "hca_objects", "int"))


def _list_of(cls, items, path):
    if items is None:
        return None
    if not isinstance(items, list):
        raise ConfigError("%s: expected an array, got %r" % (path, items))
    return [cls.from_dict(item, "%s[%d]" % (path, i)) for i, item in enumerate(items)]


class BlockIO:
    __slots__ = ("weight", "leaf_weight", "weight_device", "throttle_read_bps_device",
                 "throttle_write_bps_device", "throttle_read_iops_device",
                 "throttle_write_iops_device")
    THROTTLES = (
        ("throttleReadBpsDevice", "throttle_read_bps_device"),
        ("throttleWriteBpsDevice", "throttle_write_bps_device"),
        ("throttleReadIOPSDevice", "throttle_read_iops_device"),
        ("throttleWriteIOPSDevice", "throttle_write_iops_device"),
    )

    def __init__(self, weight=None, leaf_weight=None, weight_device=None, **throttles):
        self.weight = weight
        self.leaf_weight = leaf_weight
        self.weight_device = weight_device
        for _, attr in self.THROTTLES:
            setattr(self, attr, throttles.pop(attr, None))
        if throttles:
            raise TypeError("unknown fields: %s" % ", ".join(sorted(throttles)))

    @classmethod
    def from_dict(cls, d, path):
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ConfigError("%s: expected an object, got %r" % (path, d))
        self = cls(
            weight=_check_int(d.get("weight"), path + ".weight"),
            leaf_weight=_check_int(d.get("leafWeight"), path + ".leafWeight"),
            weight_device=_list_of(WeightDevice, d.get("weightDevice"), path + ".weightDevice"),
        )
        for name, attr in cls.THROTTLES:
            setattr(self, attr, _list_of(ThrottleDevice, d.get(name), "%s.%s" % (path, name)))
        return self

    def to_dict(self):
        out = {}
        if self.weight is not None:
            out["weight"] = self.weight
        if self.leaf_weight is not None:
            out["leafWeight"] = self.leaf_weight
        if self.weight_device is not None:
            out["weightDevice"] = [w.to_dict() for w in self.weight_device]
        for name, attr in self.THROTTLES:
            value = getattr(self, attr)
            if value is not None:
                out[name] = [t.to_dict() for t in value]
        return out

    def merge(self, other):
        if other is None:
            return self
        return BlockIO.from_dict(dict(self.to_dict(), **other.to_dict()), PREFIX + ".blockIO")

    def __eq__(self, other):
        return isinstance(other, BlockIO) and self.to_dict() == other.to_dict()


class Network:
    __slots__ = ("class_id", "priorities")

    def __init__(self, class_id=None, priorities=None):
        self.class_id = class_id
        self.priorities = priorities

    @classmethod
    def from_dict(cls, d, path):
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ConfigError("%s: expected an object, got %r" % (path, d))
        return cls(_check_int(d.get("classID"), path + ".classID"),
                   _list_of(InterfacePriority, d.get("priorities"), path + ".priorities"))

    def to_dict(self):
        out = {}
        if self.class_id is not None:
            out["classID"] = self.class_id
        if self.priorities is not None:
            out["priorities"] = [p.to_dict() for p in self.priorities]
        return out

    def merge(self, other):
        if other is None:
            return self
        return Network(self.class_id if other.class_id is None else other.class_id,
                       self.priorities if other.priorities is None else other.priorities)

    def __eq__(self, other):
        return isinstance(other, Network) and self.to_dict() == other.to_dict()


class Resources:
    """linux.resources as a whole.  Lists (devices, hugepageLimits, ...) and
    maps (rdma, unified) are replaced as a whole by merge(), like runc."""

    __slots__ = ("devices", "memory", "cpu", "pids", "block_io", "hugepage_limits",
                 "network", "rdma", "unified")

    def __init__(self, devices=None, memory=None, cpu=None, pids=None, block_io=None,
                 hugepage_limits=None, network=None, rdma=None, unified=None):
        self.devices = devices
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
        self.block_io = block_io
        self.hugepage_limits = hugepage_limits
        self.network = network
        self.rdma = rdma
        self.unified = unified

    @classmethod
    def from_dict(cls, d, path=PREFIX):
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ConfigError("%s: expected an object, got %r" % (path, d))
        rdma = d.get("rdma")
        if rdma is not None:
            if not isinstance(rdma, dict):
                raise ConfigError("%s.rdma: expected an object, got %r" % (path, rdma))
            rdma = {k: Rdma.from_dict(v, "%s.rdma.%s" % (path, k)) for k, v in rdma.items()}
        unified = d.get("unified")
        if unified is not None:
            if not isinstance(unified, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in unified.items()):
                raise ConfigError("%s.unified: expected an object of strings, got %r" % (path, unified))
            unified = dict(unified)
        return cls(
            devices=_list_of(DeviceRule, d.get("devices"), path + ".devices"),
            memory=Memory.from_dict(d.get("memory"), path + ".memory"),
            cpu=CPU.from_dict(d.get("cpu"), path + ".cpu"),
            pids=Pids.from_dict(d.get("pids"), path + ".pids"),
            block_io=BlockIO.from_dict(d.get("blockIO"), path + ".blockIO"),
            hugepage_limits=_list_of(HugepageLimit, d.get("hugepageLimits"), path + ".hugepageLimits"),
            network=Network.from_dict(d.get("network"), path + ".network"),
            rdma=rdma,
            unified=unified,
        )

    def to_dict(self):
        out = {}
        if self.devices is not None:
            out["devices"] = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in self.devices]
        for name, attr in (("memory", "memory"), ("cpu", "cpu"), ("pids", "pids"),
                           ("blockIO", "block_io"), ("network", "network")):
            value = getattr(self, attr)
            if value is not None:
                out[name] = value.to_dict()
        if self.hugepage_limits is not None:
            out["hugepageLimits"] = [h.to_dict() for h in self.hugepage_limits]
        if self.rdma is not None:
            out["rdma"] = {k: v.to_dict() for k, v in self.rdma.items()}
        if self.unified is not None:
            out["unified"] = dict(self.unified)
        return out

    def merge(self, other):
        """self updated by other (what `runc update` does to the stored config)."""
        if other is None:
            return self
        new = Resources()
        for attr in ("memory", "cpu", "pids", "block_io", "network"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(new, attr, theirs if mine is None else mine.merge(theirs))
        for attr in ("devices", "hugepage_limits", "rdma", "unified"):
            theirs = getattr(other, attr)
            setattr(new, attr, getattr(self, attr) if theirs is None else theirs)
        return new

    def __eq__(self, other):
        return isinstance(other, Resources) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Resources(%r)" % (self.to_dict(),)
