"""Process attributes applied in the init (or exec child) before execve:
scheduler, I/O priority, CPU affinity, personality, oom_score_adj, and the
NUMA memory policy (linux.memoryPolicy)."""
import os

from ..errors import ConfigError

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
IOPRIO_WHO_PROCESS = 1
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
# set_mempolicy(2): these take no nodes, these at least one (MPOL_PREFERRED either).
MPOL_NO_NODES = frozenset(("MPOL_DEFAULT", "MPOL_LOCAL"))
MPOL_NEED_NODES = frozenset(("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"))


def check(process, linux_spec):
    """Refuse unknown names before anything is created."""
    s = process.scheduler
    if s is not None:
        if s.policy not in SCHED_POLICIES:
            raise ConfigError("process.scheduler.policy: unknown policy %r" % s.policy)
        for i, f in enumerate(s.flags):
            if f not in SCHED_FLAGS:
                raise ConfigError("process.scheduler.flags[%d]: unknown flag %r" % (i, f))
    io = process.io_priority
    if io is not None and io.class_ not in IOPRIO_CLASSES:
        raise ConfigError("process.ioPriority.class: unknown class %r" % io.class_)
    p = linux_spec.personality
    if p is not None:
        if p.domain not in PERSONALITY_DOMAINS:
            raise ConfigError("linux.personality.domain: unknown domain %r" % p.domain)
        if p.flags:
            raise ConfigError("linux.personality.flags: no flags are supported")
    if linux_spec is not None and linux_spec.memory_policy is not None:
        check_memory_policy(linux_spec.memory_policy)
    a = process.exec_cpu_affinity
    if a is not None:
        for field in ("initial", "final"):
            if getattr(a, field):
                parse_cpu_list(getattr(a, field), "process.execCPUAffinity." + field)


def check_memory_policy(mp, possible_nodes="/sys/devices/system/node/possible"):
    """The mode and its nodes as set_mempolicy(2) wants them, and at least
    one node this host has (unless relative to the cpuset's): the kernel
    itself keeps the nodes it has and refuses only an empty result."""
    field = "linux.memoryPolicy"
    if mp.mode is None:
        raise ConfigError("%s.mode: is required" % field)
    if mp.mode not in MPOL_MODES:
        raise ConfigError("%s.mode: unknown mode %r" % (field, mp.mode))
    for i, f in enumerate(mp.flags):
        if f not in MPOL_FLAGS:
            raise ConfigError("%s.flags[%d]: unknown flag %r" % (field, i, f))
    nodes = parse_cpu_list(mp.nodes, field + ".nodes", "node") if mp.nodes else set()
    if nodes and mp.mode in MPOL_NO_NODES:
        raise ConfigError("%s.nodes: %s takes no nodes" % (field, mp.mode))
    if not nodes and mp.mode in MPOL_NEED_NODES:
        raise ConfigError("%s.nodes: %s needs at least one node" % (field, mp.mode))
    if nodes and "MPOL_F_RELATIVE_NODES" not in mp.flags:
        try:
            with open(possible_nodes) as f:
                host = parse_cpu_list(f.read().strip(), possible_nodes, "node")
        except OSError:
            return  # a kernel without NUMA: set_mempolicy will say what it takes
        if not nodes & host:
            raise ConfigError("%s.nodes: none of nodes %s exists on this host (nodes %s)"
                              % (field, format_id_list(nodes), format_id_list(host)))


def format_id_list(ids):
    return ",".join(str(i) for i in sorted(ids))


def apply_memory_policy(mp):
    """set_mempolicy(2); inherited by children and kept across execve."""
    from .. import linux

    mode = MPOL_MODES[mp.mode]
    for f in mp.flags:
        mode |= MPOL_FLAGS[f]
    nodes = parse_cpu_list(mp.nodes, "linux.memoryPolicy.nodes", "node") if mp.nodes else set()
    words = [0] * (max(nodes) // 64 + 1) if nodes else []
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    try:
        linux.set_mempolicy(mode, words)
    except OSError as e:
        raise ConfigError("linux.memoryPolicy: set_mempolicy(%s, nodes %r): %s"
                          % (mp.mode, mp.nodes or "", e.strerror)) from None


def parse_cpu_list(text, field, what="CPU"):
    """'0-3,7' -> {0,1,2,3,7}."""
    cpus = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                cpus.update(range(int(lo), int(hi) + 1))
            elif part:
                cpus.add(int(part))
    except ValueError:
        raise ConfigError("%s: invalid %s list %r" % (field, what, text)) from None
    return cpus


def apply(process, linux_spec):
    from .. import linux

    if process.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process.oom_score_adj))
    s = process.scheduler
    if s is not None:
        flags = 0
        for f in s.flags:
            flags |= SCHED_FLAGS[f]
        linux.sched_setattr(0, SCHED_POLICIES[s.policy], flags, s.nice, s.priority,
                            s.runtime, s.deadline, s.period)
    io = process.io_priority
    if io is not None:
        linux.ioprio_set(IOPRIO_WHO_PROCESS, 0, (IOPRIO_CLASSES[io.class_] << 13) | io.priority)
    a = process.exec_cpu_affinity
    if a is not None and a.final:
        os.sched_setaffinity(0, parse_cpu_list(a.final, "process.execCPUAffinity.final"))
    p = linux_spec.personality if linux_spec is not None else None
    if p is not None:
        linux.personality(PERSONALITY_DOMAINS[p.domain])
