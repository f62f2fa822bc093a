"""`events --stats` data in runc's JSON shape (runc types/events.go): the
same keys, nanoseconds for CPU time, zero values left out where runc's
`omitempty` leaves them out."""
import os

from . import fs

NS_PER_TICK = 10**9 // 100  # cpuacct.stat counts USER_HZ (100) ticks


def _drop_zero(d, keep=()):
    return {k: v for k, v in d.items() if k in keep or v not in (0, None, [], {}, "")}


def hugepage_sizes():
    """["2MB", "1GB", ...] from /sys/kernel/mm/hugepages (the names the
    hugetlb controller uses in its file names)."""
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for name in sorted(names):
        kb = int(name[len("hugepages-"):-len("kB")])
        for unit, size in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % size == 0:
                out.append("%d%s" % (kb // size, unit))
                break
    return out


def _cpuset_list(text):
    out = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _ints(text):
    return [int(x) for x in (text or "").split()]


def empty():
    return {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": {},
        "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                   "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _entry(limit, usage, max_usage, failcnt):
    return _drop_zero({"limit": limit or 0, "usage": usage, "max": max_usage, "failcnt": failcnt or 0},
                      keep=("limit", "failcnt"))


def _throttling(cpu_stat, scale=1):
    return _drop_zero({
        "periods": cpu_stat.get("nr_periods", 0),
        "throttledPeriods": cpu_stat.get("nr_throttled", 0),
        "throttledTime": cpu_stat.get("throttled_time", cpu_stat.get("throttled_usec", 0) * scale),
    })


def _cpuset(d):
    if d is None:
        return {}
    out = {"cpus": _cpuset_list(fs.read_or_none(d, "cpuset.cpus")),
           "mems": _cpuset_list(fs.read_or_none(d, "cpuset.mems"))}
    for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                "memory_spread_page", "memory_spread_slab", "memory_pressure",
                "sched_load_balance", "sched_relax_domain_level"):
        out[key] = fs.read_int(d, "cpuset." + key, 0) or 0
    return _drop_zero(out, keep=[k for k in out if k not in ("cpus", "mems")])


# -- v1 ------------------------------------------------------------------

def _v1_memory(d):
    def data(prefix):
        return _entry(fs.read_int(d, prefix + ".limit_in_bytes", 0), fs.read_int(d, prefix + ".usage_in_bytes", 0),
                      fs.read_int(d, prefix + ".max_usage_in_bytes", 0), fs.read_int(d, prefix + ".failcnt", 0))
    raw = fs.read_keyed(d, "memory.stat")
    return _drop_zero({
        "cache": raw.get("cache", 0),
        "usage": data("memory"),
        "swap": data("memory.memsw"),
        "kernel": data("memory.kmem"),
        "kernelTCP": data("memory.kmem.tcp"),
        "raw": raw,
    }, keep=("usage", "swap", "kernel", "kernelTCP"))


def _v1_blkio(d):
    def entries(name):
        out = []
        for line in (fs.read_or_none(d, name) or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                out.append(_drop_zero({"major": int(major), "minor": int(minor), "op": parts[1],
                                       "value": int(parts[2])}))
            elif len(parts) == 2 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                out.append(_drop_zero({"major": int(major), "minor": int(minor), "value": int(parts[1])}))
        return out
    for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
        if fs.exists(d, prefix + "io_service_bytes_recursive"):
            break
    out = {"ioServiceBytesRecursive": entries(prefix + "io_service_bytes_recursive"),
           "ioServicedRecursive": entries(prefix + "io_serviced_recursive")}
    if prefix != "blkio.throttle.":
        out.update({
            "ioQueueRecursive": entries(prefix + "io_queued_recursive"),
            "ioServiceTimeRecursive": entries(prefix + "io_service_time_recursive"),
            "ioWaitTimeRecursive": entries(prefix + "io_wait_time_recursive"),
            "ioMergedRecursive": entries(prefix + "io_merged_recursive"),
            "ioTimeRecursive": entries(prefix + "time_recursive"),
            "sectorsRecursive": entries(prefix + "sectors_recursive"),
        })
    return _drop_zero(out)


def _hugetlb(d, suffixes):
    out = {}
    usage_sfx, max_sfx, fail_sfx = suffixes
    for size in hugepage_sizes():
        prefix = "hugetlb." + size
        if fs.exists(d, prefix + ".rsvd" + usage_sfx):
            prefix += ".rsvd"
        if not fs.exists(d, prefix + usage_sfx):
            continue
        out[size] = _drop_zero({"usage": fs.read_int(d, prefix + usage_sfx, 0),
                                "max": fs.read_int(d, prefix + max_sfx, 0) if max_sfx else 0,
                                "failcnt": fs.read_int(d, prefix + fail_sfx, 0) if fail_sfx
                                else fs.read_keyed(d, prefix + ".events").get("max", 0)},
                               keep=("failcnt",))
    return out


def v1_stats(paths):
    s = empty()
    d = paths.get("cpuacct")
    if d:
        percpu = _ints(fs.read_or_none(d, "cpuacct.usage_percpu"))
        ticks = fs.read_keyed(d, "cpuacct.stat")
        usage = {"total": fs.read_int(d, "cpuacct.usage", 0) or 0, "percpu": percpu,
                 "percpu_kernel": _ints(fs.read_or_none(d, "cpuacct.usage_percpu_sys")),
                 "percpu_user": _ints(fs.read_or_none(d, "cpuacct.usage_percpu_user")),
                 "kernel": ticks.get("system", 0) * NS_PER_TICK, "user": ticks.get("user", 0) * NS_PER_TICK}
        s["cpu"]["usage"] = _drop_zero(usage, keep=("kernel", "user"))
    d = paths.get("cpu")
    if d:
        s["cpu"]["throttling"] = _throttling(fs.read_keyed(d, "cpu.stat"))
    s["cpuset"] = _cpuset(paths.get("cpuset"))
    d = paths.get("memory")
    if d:
        s["memory"] = _v1_memory(d)
    d = paths.get("pids")
    if d:
        s["pids"] = _drop_zero({"current": fs.read_int(d, "pids.current", 0),
                                "limit": fs.read_int(d, "pids.max", 0) or 0})
    d = paths.get("blkio")
    if d:
        s["blkio"] = _v1_blkio(d)
    d = paths.get("hugetlb")
    if d:
        s["hugetlb"] = _hugetlb(d, (".usage_in_bytes", ".max_usage_in_bytes", ".failcnt"))
    return s


# -- v2 ------------------------------------------------------------------

def _v2_io(d):
    service_bytes, serviced = [], []
    for line in (fs.read_or_none(d, "io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        for item in parts[1:]:
            key, _, value = item.partition("=")
            op = {"rbytes": ("Read", service_bytes), "wbytes": ("Write", service_bytes),
                  "rios": ("Read", serviced), "wios": ("Write", serviced)}.get(key)
            if op:
                op[1].append(_drop_zero({"major": major, "minor": minor, "op": op[0], "value": int(value)}))
    return _drop_zero({"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced})


def _v2_memory(d):
    raw = fs.read_keyed(d, "memory.stat")
    usage, limit = fs.read_int(d, "memory.current", 0), fs.read_int(d, "memory.max", 0)
    swap_usage, swap_limit = fs.read_int(d, "memory.swap.current", 0), fs.read_int(d, "memory.swap.max", 0)
    events = fs.read_keyed(d, "memory.events")
    max64 = 2**64 - 1
    limit = max64 if limit is None else limit
    swap_limit = max64 if swap_limit is None else swap_limit
    return _drop_zero({
        "cache": raw.get("file", 0),
        "usage": _entry(limit, usage, fs.read_int(d, "memory.peak", 0), events.get("max", 0)),
        "swap": _entry(max64 if max64 in (limit, swap_limit) else limit + swap_limit,
                       (swap_usage or 0) + (usage or 0), 0, 0),
        "kernel": {"limit": 0, "failcnt": 0},
        "kernelTCP": {"limit": 0, "failcnt": 0},
        "raw": raw,
    }, keep=("usage", "swap", "kernel", "kernelTCP"))


def v2_stats(d):
    s = empty()
    cpu = fs.read_keyed(d, "cpu.stat")
    s["cpu"]["usage"] = _drop_zero({"total": cpu.get("usage_usec", 0) * 1000,
                                    "kernel": cpu.get("system_usec", 0) * 1000,
                                    "user": cpu.get("user_usec", 0) * 1000}, keep=("kernel", "user"))
    s["cpu"]["throttling"] = _throttling(cpu, 1000)
    if fs.exists(d, "cpuset.cpus.effective"):
        s["cpuset"] = _drop_zero({"cpus": _cpuset_list(fs.read_or_none(d, "cpuset.cpus.effective")),
                                  "mems": _cpuset_list(fs.read_or_none(d, "cpuset.mems.effective"))})
    if fs.exists(d, "memory.current"):
        s["memory"] = _v2_memory(d)
    current = fs.read_int(d, "pids.current", None)
    if current is None:
        current = len(fs.procs(d, recursive=True))
    s["pids"] = _drop_zero({"current": current, "limit": fs.read_int(d, "pids.max", 0) or 0})
    if fs.exists(d, "io.stat"):
        s["blkio"] = _v2_io(d)
    s["hugetlb"] = _hugetlb(d, (".current", ".max", None))
    return s
