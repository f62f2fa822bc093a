#!/usr/bin/env python3
"""pyrunc vs runc vs crun: one busybox bundle, one config, one run.

Every scenario is measured in rounds, interleaved (each round runs every
runtime once, starting with a different one each round) so that machine
noise hits all runtimes alike.  Reported: medians with p10/p90 and the
ratios pyrunc/runc and pyrunc/crun.  Stdlib only.

How CPU time is counted, the same way for every runtime: the bench is a
child subreaper and starts each runtime with posix_spawn; the runtime's CPU
is the user+sys rusage from wait4() on it, which already holds every
descendant the runtime (or its descendants) reaped.  A descendant that is
orphaned (a created container's init once `create` exits, say) comes back
to the bench, which reaps it and adds its rusage to the scenario in which
it exits.  So each process a runtime starts, the container's own included,
is counted once, whoever reaps it.

Process layout: the outer process builds the bundle in a temporary
directory, runs the measurements in a child (by default inside a private
mount namespace, see --cgroups), then checks that nothing is left (mounts,
cgroups, processes) and removes the directory.
"""
import argparse
import ctypes
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNTIMES = ("pyrunc", "runc", "crun")
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = CGROUP_ROOT + "/unified"
PR_SET_CHILD_SUBREAPER = 36
MNT_DETACH = 2
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
TRUE_ARGS = ["/bin/true"]
SLEEP_ARGS = ["/bin/sleep", "3600"]
APPLETS = ("true", "sleep", "sh")
GONE_TIMEOUT_S = 10.0

# Scenario name -> label printed in the tables (order = table order).
SCENARIOS = {
    "run": "run /bin/true",
    "lifecycle": "create+start+delete",
    "state": "state (created)",
    "exec": "exec /bin/true",
    "burst": "run -d, per container",
    "kill": "kill KILL (running)",
    "parallel": "N created+started, -P2",  # N: the plan's; see scenario_label
}
# Per-verb view: verb -> (scenario, field of its CPU, field of its peak RSS)
VERBS = (
    ("create", "lifecycle", "create_cpu_ms", "create_rss_kb"),
    ("start", "lifecycle", "start_cpu_ms", "start_rss_kb"),
    ("state", "state", "cpu_ms", "maxrss_kb"),
    ("kill", "kill", "cpu_ms", "maxrss_kb"),
    ("delete", "lifecycle", "delete_cpu_ms", "delete_rss_kb"),
    ("exec", "exec", "cpu_ms", "maxrss_kb"),
    ("run", "run", "cpu_ms", "maxrss_kb"),
)


# --------------------------------------------------------------------------
# statistics and report (pure functions: unit-tested)

def summarize(values):
    """median, p10, p90 of a non-empty list of numbers."""
    vals = sorted(values)
    if len(vals) == 1:
        return {"median": vals[0], "p10": vals[0], "p90": vals[0], "n": 1}
    deciles = statistics.quantiles(vals, n=10, method="inclusive")
    return {"median": statistics.median(vals), "p10": deciles[0], "p90": deciles[8], "n": len(vals)}


def ratio(a, b):
    return a / b if b else float("nan")


def scenario_label(raw, scen):
    if scen == "parallel":
        return "%d containers created+started, -P2" % raw.get("parallel", 0)
    return SCENARIOS[scen]


def metric_rows(raw):
    """(label, unit, {runtime: summary}) for every metric the run measured."""
    rows = []
    samples = raw["samples"]
    for scen in SCENARIOS:
        label = scenario_label(raw, scen)
        per_rt = samples.get(scen)
        if not per_rt or not all(per_rt.values()):
            continue
        for key, unit, name in (("wall_ms", "ms", "wall"), ("cpu_ms", "ms", "CPU")):
            rows.append(("%s, %s" % (label, name), unit,
                         {rt: summarize([s[key] for s in ss]) for rt, ss in per_rt.items()}))
    for scen in ("run", "state", "lifecycle") if raw.get("rss_valid", True) else ():
        per_rt = samples.get(scen)
        if per_rt and all(per_rt.values()):
            rows.append(("peak RSS, %s" % ("create" if scen == "lifecycle" else scen), "MiB",
                         {rt: summarize([s["maxrss_kb"] / 1024.0 for s in ss]) for rt, ss in per_rt.items()}))
    per_rt = samples.get("lifecycle")
    if per_rt and all(per_rt.values()) and all(s.get("charged_kb") is not None for ss in per_rt.values() for s in ss):
        rows.append(("memory charged to the container's cgroup (peak), create+start", "MiB",
                     {rt: summarize([s["charged_kb"] / 1024.0 for s in ss]) for rt, ss in per_rt.items()}))
    return rows


def verb_lines(raw, markdown=False):
    """Each verb's CPU (median) beside the Python floor, and its peak RSS,
    per runtime."""
    samples = raw["samples"]
    floor = samples.get("floor")
    if not floor:
        return []
    floor_cpu = summarize([s["cpu_ms"] for s in floor])["median"]
    runtimes = raw["runtimes"]
    head = ["verb (median)"] + ["%s CPU [ms]" % rt for rt in runtimes]
    if "pyrunc" in runtimes:
        head.append("pyrunc - floor [ms]")
    if raw.get("rss_valid", True):
        head += ["%s RSS [MiB]" % rt for rt in runtimes]
    body = []
    for verb, scen, cpu_key, rss_key in VERBS:
        per_rt = samples.get(scen) or {}
        if not all(per_rt.get(rt) and cpu_key in per_rt[rt][0] for rt in runtimes):
            continue
        cpu = {rt: summarize([s[cpu_key] for s in per_rt[rt]])["median"] for rt in runtimes}
        row = [verb] + [_fmt(cpu[rt]) for rt in runtimes]
        if "pyrunc" in runtimes:
            row.append("%+.1f" % (cpu["pyrunc"] - floor_cpu))
        if raw.get("rss_valid", True):
            row += [_fmt(summarize([s[rss_key] / 1024.0 for s in per_rt[rt]])["median"]) for rt in runtimes]
        body.append(row)
    floor_row = ["python floor"] + [_fmt(floor_cpu) if rt == "pyrunc" else "" for rt in runtimes]
    if "pyrunc" in runtimes:
        floor_row.append("0")
    if raw.get("rss_valid", True):
        floor_row += [_fmt(summarize([s["maxrss_kb"] / 1024.0 for s in floor])["median"]) if rt == "pyrunc" else ""
                      for rt in runtimes]
    body.append(floor_row)
    return ["Per verb (CPU of the verb's process tree; run: the container's included):"] + \
        ([""] if markdown else []) + _layout(head, body, markdown)


def _layout(head, body, markdown):
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body]


def _fmt(x):
    return "%.1f" % x if x < 100 else "%.0f" % x


def _cell(summary):
    return "%s (%s–%s)" % (_fmt(summary["median"]), _fmt(summary["p10"]), _fmt(summary["p90"]))


def _ratio_cells(stats, runtimes):
    cells = []
    for peer in runtimes:
        if peer == "pyrunc" or "pyrunc" not in stats:
            continue
        cells.append("%.2f" % ratio(stats["pyrunc"]["median"], stats[peer]["median"]))
    return cells


def table_lines(raw, markdown=False):
    runtimes = raw["runtimes"]
    peers = [rt for rt in runtimes if rt != "pyrunc"] if "pyrunc" in runtimes else []
    head = ["measure (median, p10–p90)"] + runtimes + ["pyrunc/%s" % p for p in peers]
    body = []
    for label, unit, stats in metric_rows(raw):
        body.append(["%s [%s]" % (label, unit)] + [_cell(stats[rt]) for rt in runtimes]
                    + _ratio_cells(stats, runtimes))
    return _layout(head, body, markdown)


def floor_lines(raw):
    floor = raw["samples"].get("floor")
    if not floor:
        return []
    cpu = summarize([s["cpu_ms"] for s in floor])
    wall = summarize([s["wall_ms"] for s in floor])
    rss = ""
    if raw.get("rss_valid", True):
        rss = " RSS %.1f MiB," % (summarize([s["maxrss_kb"] for s in floor])["median"] / 1024.0)
    lines = ["Python floor (`%s -I -S -c pass`): CPU %s ms, wall %s ms,%s median (no Python runtime goes below)"
             % (raw["floor_python"], _fmt(cpu["median"]), _fmt(wall["median"]), rss)]
    run = raw["samples"].get("run", {}).get("pyrunc")
    if run:
        run_cpu = summarize([s["cpu_ms"] for s in run])["median"]
        lines.append("pyrunc run /bin/true CPU = %.1f x the floor" % ratio(run_cpu, cpu["median"]))
    return lines


def breakdown_lines(raw):
    """Where create+start+delete's CPU goes, per runtime (medians)."""
    per_rt = raw["samples"].get("lifecycle") or {}
    parts = ("create", "start", "init", "delete")
    lines = []
    for rt in raw["runtimes"]:
        ss = per_rt.get(rt)
        if ss and all("%s_cpu_ms" % p in ss[0] for p in parts):
            cells = ["%s %s" % (p, _fmt(summarize([s["%s_cpu_ms" % p] for s in ss])["median"])) for p in parts]
            lines.append("  %-6s %s" % (rt, ", ".join(cells)))
    return ["create+start+delete CPU by step, ms (init: the container process, reaped by the bench):"] + lines \
        if lines else []


def report_lines(raw, markdown=False):
    meta = raw["meta"]
    lines = ["pyrunc benchmark: %d rounds (+1 warm-up), interleaved, %s; %s" % (
        raw["rounds"], meta["host"], meta["cgroups_note"])]
    for rt in raw["runtimes"]:
        lines.append("  %-6s %s" % (rt, meta["versions"].get(rt, "?")))
    lines.append("  container: %s, namespaces %s, terminal false" % (
        " ".join(TRUE_ARGS), ",".join(meta["namespaces"])))
    lines.append("  CPU = user+sys of the runtime and all its descendants, the container's processes "
                 "included (wait4 rusage; orphans reaped by the bench as child subreaper are added)")
    if raw.get("rss_valid", True):
        lines.append("  peak RSS = ru_maxrss from wait4 on the runtime process, forked from a small C helper "
                     "(largest process of the tree it reaped)")
    if raw.get("burst_size"):
        lines.append("  run -d: %d containers back to back (sleep), %d rounds; figures per container"
                     % (raw["burst_size"], raw["burst_rounds"]))
    for note in raw.get("notes", []):
        lines.append("  note: " + note)
    lines.append("")
    lines += table_lines(raw, markdown)
    lines.append("")
    lines += breakdown_lines(raw)
    lines += floor_lines(raw)
    lines.append("")
    lines += verb_lines(raw, markdown)
    lines.append("load average before/after: %s / %s" % (meta.get("load_before"), meta.get("load_after")))
    return lines


# --------------------------------------------------------------------------
# the bundle

def make_rootfs(path, busybox="/bin/busybox"):
    """A static busybox rootfs: /bin/busybox and the applets the bench runs."""
    os.makedirs(path + "/bin")
    shutil.copy2(busybox, path + "/bin/busybox")
    for applet in APPLETS:
        os.symlink("busybox", "%s/bin/%s" % (path, applet))
    for d in ("proc", "sys", "dev", "tmp", "etc", "run"):
        os.mkdir("%s/%s" % (path, d))


def base_config(runc, workdir):
    """runc's own default config (`runc spec`), made non-interactive: the one
    config every runtime gets (only args and cgroupsPath vary)."""
    spec_dir = os.path.join(workdir, "spec")
    os.mkdir(spec_dir)
    subprocess.run([runc, "spec", "--bundle", spec_dir], check=True, env=ENV)
    with open(os.path.join(spec_dir, "config.json")) as f:
        config = json.load(f)
    shutil.rmtree(spec_dir)
    config["process"]["terminal"] = False
    config["hostname"] = "bench"
    return config


class Bundles:
    """One bundle directory per container: the shared base config with that
    container's args and its own cgroupsPath under the bench's cgroup parent
    (never under the caller's cgroup, which on this host is not ours)."""

    def __init__(self, workdir, config, cgroup_parent):
        self.dir = os.path.join(workdir, "bundles")
        self.rootfs = os.path.join(workdir, "rootfs")
        self.config = config
        self.cgroup_parent = cgroup_parent
        os.makedirs(self.dir, exist_ok=True)

    def make(self, cid, args):
        path = os.path.join(self.dir, cid)
        os.mkdir(path)
        cfg = dict(self.config)
        cfg["root"] = dict(cfg["root"], path=self.rootfs)
        cfg["process"] = dict(cfg["process"], args=list(args))
        cfg["linux"] = dict(cfg["linux"], cgroupsPath="%s/%s" % (self.cgroup_parent, cid))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f)
        return path

    def remove(self, cid):
        shutil.rmtree(os.path.join(self.dir, cid), ignore_errors=True)


# --------------------------------------------------------------------------
# spawning and reaping

class RuntimeError_(Exception):
    """A runtime verb failed: the bench stops (no figure from a failed run)."""


class Call:
    __slots__ = ("argv", "rc", "wall_ns", "cpu_s", "maxrss_kb", "out", "err")

    def check(self):
        if self.rc != 0:
            why = self.err.strip() or self.out.strip()
            raise RuntimeError_("%s: exit %s: %s" % (" ".join(self.argv), self.rc, why))
        return self


class Spawner:
    """Start a command (stdin /dev/null, stdout/stderr into files) and wait
    for it.  With the C helper, the helper forks the command and reports its
    wait4 figures (see rusage_helper.c for why); without it, posix_spawn +
    wait4 from here, and ru_maxrss then includes the bench's own RSS."""

    def __init__(self, workdir, helper=None):
        self.helper = helper
        self.result = os.path.join(workdir, "rusage")
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.out = os.open(os.path.join(workdir, "stdout"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.err = os.open(os.path.join(workdir, "stderr"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.actions = [(os.POSIX_SPAWN_DUP2, self.devnull, 0),
                        (os.POSIX_SPAWN_DUP2, self.out, 1),
                        (os.POSIX_SPAWN_DUP2, self.err, 2)]

    def _reset(self):
        for fd in (self.out, self.err):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)

    def _read(self, fd):
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0).decode(errors="replace") if size else ""

    def call(self, argv):
        self._reset()
        c = Call()
        c.argv = argv
        if self.helper:
            self._via_helper(c)
        else:
            self._direct(c)
        c.out = self._read(self.out)
        c.err = self._read(self.err)
        return c

    def _direct(self, c):
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(c.argv[0], c.argv, ENV, file_actions=self.actions)
        _, status, ru = os.wait4(pid, 0)
        c.wall_ns = time.perf_counter_ns() - t0
        c.rc = os.waitstatus_to_exitcode(status)
        c.cpu_s = ru.ru_utime + ru.ru_stime
        c.maxrss_kb = ru.ru_maxrss

    def _via_helper(self, c):
        argv = [self.helper, self.result] + c.argv
        pid = os.posix_spawn(self.helper, argv, ENV, file_actions=self.actions)
        _, status, _ = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError_("rusage helper failed (exit %d) for %s: %s"
                                % (os.waitstatus_to_exitcode(status), " ".join(c.argv), self._read(self.err).strip()))
        with open(self.result) as f:
            status, wall_ns, user_us, sys_us, maxrss = (int(x) for x in f.read().split())
        c.rc = os.waitstatus_to_exitcode(status)
        c.wall_ns = wall_ns
        c.cpu_s = (user_us + sys_us) / 1e6
        c.maxrss_kb = maxrss


def build_helper(workdir):
    """Compile rusage_helper.c into the work dir (static if the C library
    allows); None, with the reason, when no compiler works."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rusage_helper.c")
    exe = os.path.join(workdir, "rusage_helper")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    err = ""
    for extra in (["-static"], []):
        r = subprocess.run([cc, "-O2", "-o", exe, src] + extra, capture_output=True, text=True)
        if r.returncode == 0:
            return exe, None
        err = r.stderr.strip().splitlines()[-1:] or ["?"]
    return None, "%s failed: %s" % (cc, err[0])


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans():
    """Reap every exited child (orphans the runtimes left to us); return
    (count, cpu seconds)."""
    n, cpu = 0, 0.0
    while True:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        n += 1
        cpu += ru.ru_utime + ru.ru_stime
    return n, cpu


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return data[data.rindex(b")") + 2:data.rindex(b")") + 3]


def wait_gone(pid, timeout=GONE_TIMEOUT_S):
    """Wait until `pid` has exited; reap it if it is our child and return its
    CPU seconds (0.0 when somebody else reaped it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wpid, _, ru = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            # Not ours: its reaper is the runtime; wait for it to vanish.
            state = _proc_state(pid)
            if state is None or state in (b"Z", b"X"):
                return 0.0
        else:
            if wpid == pid:
                return ru.ru_utime + ru.ru_stime
        if time.monotonic() > deadline:
            raise RuntimeError_("process %d still there %.0f s after its container ended" % (pid, timeout))
        time.sleep(0.0005)


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


# --------------------------------------------------------------------------
# the runtimes and scenarios

class Runtime:
    __slots__ = ("name", "path", "root", "seq", "live")

    def __init__(self, name, path, workdir):
        self.name = name
        self.path = path
        self.root = os.path.join(workdir, "root-" + name)
        self.seq = 0
        self.live = {}  # cid -> init pid (or None): what cleanup must delete

    def argv(self, *args):
        return [self.path, "--root", self.root] + list(args)

    def new_id(self):
        self.seq += 1
        return "%s-%d" % (self.name, self.seq)


class Bench:
    def __init__(self, plan):
        self.plan = plan
        self.workdir = plan["workdir"]
        self.token = plan["token"]
        self.bundles = Bundles(self.workdir, plan["config"], plan["cgroup_parent"])
        self.sp = Spawner(self.workdir, plan["helper"])
        self.rts = [Runtime(n, plan["runtime_paths"][n], self.workdir) for n in plan["runtimes"]]
        self.pidfile = os.path.join(self.workdir, "init.pid")
        self.notes = []

    # -- helpers ----------------------------------------------------------
    def _pidfile(self):
        """A fresh pid file path (a stale one must never be read back)."""
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass
        return self.pidfile

    def _sample(self, wall_ns, cpu_s, maxrss_kb, orphans=0):
        return {"wall_ms": wall_ns / 1e6, "cpu_ms": cpu_s * 1e3, "maxrss_kb": maxrss_kb, "orphans": orphans}

    def _gone_from_state(self, rt, cid):
        if os.path.exists(os.path.join(rt.root, cid)):
            raise RuntimeError_("%s left state behind for %s in %s" % (rt.name, cid, rt.root))

    def _finish(self, rt, cid):
        rt.live.pop(cid, None)
        self.bundles.remove(cid)
        self._gone_from_state(rt, cid)

    def _create(self, rt, args):
        """Create a container (not measured); returns (cid, init pid)."""
        cid = rt.new_id()
        bundle = self.bundles.make(cid, args)
        rt.live[cid] = None
        self.sp.call(rt.argv("create", "--bundle", bundle, "--pid-file", self._pidfile(), cid)).check()
        rt.live[cid] = read_pid(self.pidfile)
        return cid, rt.live[cid]

    def _force_delete(self, rt, cid):
        """delete --force, wait for the init; returns its CPU seconds."""
        self.sp.call(rt.argv("delete", "--force", cid)).check()
        pid = rt.live.get(cid)
        cpu = wait_gone(pid) if pid else 0.0
        self._finish(rt, cid)
        return cpu

    # -- scenarios ----------------------------------------------------------
    def floor(self, _rt=None):
        c = self.sp.call([self.plan["floor_python"], "-I", "-S", "-c", "pass"]).check()
        return self._sample(c.wall_ns, c.cpu_s, c.maxrss_kb)

    def run(self, rt):
        cid = rt.new_id()
        bundle = self.bundles.make(cid, TRUE_ARGS)
        rt.live[cid] = None
        c = self.sp.call(rt.argv("run", "--bundle", bundle, "--pid-file", self._pidfile(), cid)).check()
        init_cpu = wait_gone(read_pid(self.pidfile))  # 0.0 when the runtime reaped it
        n, orphan_cpu = reap_orphans()
        self._finish(rt, cid)
        s = self._sample(c.wall_ns, c.cpu_s + init_cpu + orphan_cpu, c.maxrss_kb, n)
        s["init_cpu_ms"] = init_cpu * 1e3
        return s

    def lifecycle(self, rt):
        cid = rt.new_id()
        bundle = self.bundles.make(cid, TRUE_ARGS)
        rt.live[cid] = None
        t0 = time.perf_counter_ns()
        create = self.sp.call(rt.argv("create", "--bundle", bundle, "--pid-file", self._pidfile(), cid)).check()
        pid = rt.live[cid] = read_pid(self.pidfile)
        start = self.sp.call(rt.argv("start", cid)).check()
        init_cpu = wait_gone(pid)  # /bin/true exits at once; delete then needs no --force
        charged = self._charged_kb(cid)  # before delete removes the cgroup
        delete = self.sp.call(rt.argv("delete", cid)).check()
        wall = time.perf_counter_ns() - t0
        n, orphan_cpu = reap_orphans()
        self._finish(rt, cid)
        cpu = create.cpu_s + start.cpu_s + delete.cpu_s + init_cpu + orphan_cpu
        s = self._sample(wall, cpu, create.maxrss_kb, n)
        s["init_cpu_ms"] = init_cpu * 1e3  # the container init, reaped by the bench
        s.update(create_cpu_ms=create.cpu_s * 1e3, start_cpu_ms=start.cpu_s * 1e3, delete_cpu_ms=delete.cpu_s * 1e3,
                 create_rss_kb=create.maxrss_kb, start_rss_kb=start.maxrss_kb, delete_rss_kb=delete.maxrss_kb,
                 charged_kb=charged)
        return s

    def _charged_kb(self, cid):
        """Peak memory charged to the container's own memory cgroup (v1
        memory.max_usage_in_bytes, v2 memory.peak), KiB; None without one."""
        rel = "%s/%s" % (self.plan["cgroup_parent"], cid)
        for path in (CGROUP_ROOT + "/memory" + rel + "/memory.max_usage_in_bytes",
                     CGROUP_ROOT + rel + "/memory.peak", UNIFIED + rel + "/memory.peak"):
            try:
                with open(path) as f:
                    return int(f.read()) // 1024
            except (OSError, ValueError):
                continue
        return None

    def kill(self, rt):
        """`kill <id> KILL` of a running container (sleep); then wait for
        the init and delete it (not measured)."""
        cid, pid = self._create(rt, SLEEP_ARGS)
        self.sp.call(rt.argv("start", cid)).check()
        reap_orphans()
        c = self.sp.call(rt.argv("kill", cid, "KILL")).check()
        wait_gone(pid)
        self.sp.call(rt.argv("delete", cid)).check()
        self._finish(rt, cid)
        reap_orphans()
        return self._sample(c.wall_ns, c.cpu_s, c.maxrss_kb)

    def parallel(self, rt):
        """N containers (sleep) created and started, two at a time (-P2):
        wall from the first create to the last start; CPU of every call,
        every orphan reaped meanwhile and every init (reaped once the
        containers are deleted, not measured)."""
        n, slots = self.plan["parallel"], 2
        jobs, cids = [], []
        for _ in range(n):
            cid = rt.new_id()
            cids.append(cid)
            rt.live[cid] = None
            jobs.append((cid, [rt.argv("create", "--bundle", self.bundles.make(cid, SLEEP_ARGS), cid),
                               rt.argv("start", cid)]))
        err = os.open(os.path.join(self.workdir, "parallel.err"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        actions = [(os.POSIX_SPAWN_DUP2, self.sp.devnull, 0), (os.POSIX_SPAWN_DUP2, self.sp.devnull, 1),
                   (os.POSIX_SPAWN_DUP2, err, 2)]
        running, cpu, failed = {}, 0.0, None
        t0 = time.perf_counter_ns()
        try:
            while (jobs or running) and failed is None:
                while jobs and len(running) < slots:
                    cid, steps = jobs.pop(0)
                    running[os.posix_spawn(steps[0][0], steps[0], ENV, file_actions=actions)] = (cid, steps[1:])
                pid, status, ru = os.wait4(-1, 0)
                cpu += ru.ru_utime + ru.ru_stime
                if pid not in running:
                    continue  # an orphan (an intermediate the runtime left): counted
                cid, rest = running.pop(pid)
                if os.waitstatus_to_exitcode(status) != 0:
                    failed = "%s: %s" % (" ".join(rest[0] if rest else ["start", cid]), status)
                elif rest:
                    running[os.posix_spawn(rest[0][0], rest[0], ENV, file_actions=actions)] = (cid, rest[1:])
            wall = time.perf_counter_ns() - t0
            for pid in running:  # only after a failure
                os.waitpid(pid, 0)
        finally:
            os.close(err)
        if failed:
            raise RuntimeError_("%s parallel: %s" % (rt.name, failed))
        for cid in cids:
            rt.live[cid] = json.loads(self.sp.call(rt.argv("state", cid)).check().out).get("pid")
            cpu += self._force_delete(rt, cid)
        _, orphan_cpu = reap_orphans()
        return self._sample(wall, cpu + orphan_cpu, 0)

    def state(self, rt):
        c = self.sp.call(rt.argv("state", self.created[rt.name])).check()
        status = json.loads(c.out).get("status")
        if status != "created":
            raise RuntimeError_("%s state: status %r, expected 'created'" % (rt.name, status))
        n, orphan_cpu = reap_orphans()
        return self._sample(c.wall_ns, c.cpu_s + orphan_cpu, c.maxrss_kb, n)

    def exec(self, rt):
        c = self.sp.call(rt.argv("exec", self.running[rt.name], *TRUE_ARGS)).check()
        n, orphan_cpu = reap_orphans()
        return self._sample(c.wall_ns, c.cpu_s + orphan_cpu, c.maxrss_kb, n)

    def burst(self, rt):
        """K detached containers started back to back; the inits' own CPU is
        added when they are reaped after teardown."""
        k = self.plan["burst_size"]
        wall, cpu, rss, cids = 0, 0.0, 0, []
        for _ in range(k):
            cid = rt.new_id()
            bundle = self.bundles.make(cid, SLEEP_ARGS)
            rt.live[cid] = None
            c = self.sp.call(rt.argv("run", "--detach", "--bundle", bundle, "--pid-file", self._pidfile(), cid)).check()
            rt.live[cid] = read_pid(self.pidfile)
            cids.append(cid)
            wall += c.wall_ns
            cpu += c.cpu_s
            rss = max(rss, c.maxrss_kb)
        for cid in cids:
            cpu += self._force_delete(rt, cid)
        n, orphan_cpu = reap_orphans()
        return self._sample(wall / k, (cpu + orphan_cpu) / k, rss, n)

    # -- setup, rounds, teardown ----------------------------------------------
    def setup(self):
        for rt in self.rts:
            os.makedirs(rt.root)
        self.created = {rt.name: self._create(rt, TRUE_ARGS)[0] for rt in self.rts}
        self.running = {}
        if self.plan["exec"]:
            for rt in self.rts:
                cid, _ = self._create(rt, SLEEP_ARGS)
                self.sp.call(rt.argv("start", cid)).check()
                self.running[rt.name] = cid
            self._probe_exec()
        reap_orphans()  # intermediates the setup left: not part of any figure

    def _probe_exec(self):
        for rt in self.rts:
            c = self.sp.call(rt.argv("exec", self.running[rt.name], *TRUE_ARGS))
            reap_orphans()
            if c.rc != 0:
                last = (c.err.strip() or c.out.strip()).splitlines()[-1:] or ["no output"]
                self.notes.append("exec skipped: `%s exec` fails here (exit %d: %s)" % (rt.name, c.rc, last[0]))
                self.plan["exec"] = False
                return

    def scenarios(self, round_no):
        names = ["floor", "run", "lifecycle", "state", "kill"]
        if self.plan["exec"]:
            names.append("exec")
        every = self.plan["burst_every"]
        if self.plan["burst_size"] and every and round_no % every == 0:
            names.append("burst")
        every = self.plan.get("parallel_every")
        if self.plan.get("parallel") and every and round_no % every == 0:
            names.append("parallel")
        return names

    def rounds(self, progress):
        samples = {}
        total = self.plan["rounds"]
        for r in range(total + 1):  # round 0: warm-up, not recorded
            shift = r % len(self.rts)
            order = self.rts[shift:] + self.rts[:shift]
            for scen in self.scenarios(r - 1 if r else 0):
                fn = getattr(self, scen)
                if scen == "floor":
                    s = fn()
                    if r:
                        samples.setdefault("floor", []).append(s)
                    continue
                for rt in order:
                    s = fn(rt)
                    if r:
                        samples.setdefault(scen, {}).setdefault(rt.name, []).append(s)
            progress(r, total)
        return samples

    def teardown(self):
        """delete --force everything still known, then whatever `list` shows."""
        problems = []
        for rt in self.rts:
            for cid in reversed(list(rt.live)):  # last made, first deleted
                try:
                    self._force_delete(rt, cid)
                except Exception as e:  # keep cleaning the rest
                    problems.append(str(e))
            if os.path.isdir(rt.root):
                listed = self.sp.call(rt.argv("list", "--quiet"))
                for cid in listed.out.split():
                    self.sp.call(rt.argv("delete", "--force", cid))
                    problems.append("%s: %s was still listed after cleanup" % (rt.name, cid))
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while True:
            reap_orphans()
            try:
                os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if time.monotonic() > deadline:
                problems.append("children of the bench still alive after cleanup")
                break
            time.sleep(0.01)
        return problems


def hide_unified_cgroup(outer_mnt_ns):
    """In our private mount namespace, unmount the cgroup2 mount of this
    hybrid host so every runtime sees a pure cgroup v1 host (crun refuses a
    hybrid host whose unified hierarchy lists controllers)."""
    if os.readlink("/proc/self/ns/mnt") == outer_mnt_ns:
        raise SystemExit("bench: refusing to unmount %s: not in a private mount namespace" % UNIFIED)
    if not _is_cgroup2(UNIFIED):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(UNIFIED.encode(), MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount2 " + UNIFIED)


def _is_cgroup2(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == path and right.split()[0] == "cgroup2":
                return True
    return False


def inner_main(plan_path):
    with open(plan_path) as f:
        plan = json.load(f)
    if plan["cgroups"] == "private":
        hide_unified_cgroup(plan["outer_mnt_ns"])
    become_subreaper()
    bench = Bench(plan)
    result = {"ok": False}
    t0 = time.monotonic()
    try:
        bench.setup()

        def progress(r, total):
            if r == 0:
                print("bench: warm-up done (%.1f s)" % (time.monotonic() - t0), flush=True)
            elif r % 5 == 0 or r == total:
                print("bench: round %d/%d (%.0f s)" % (r, total, time.monotonic() - t0), flush=True)

        result["samples"] = bench.rounds(progress)
        result["ok"] = True
    except RuntimeError_ as e:
        result["error"] = str(e)
    finally:
        result["cleanup_problems"] = bench.teardown()
        result["notes"] = bench.notes
        result["exec"] = plan["exec"]
        with open(os.path.join(plan["workdir"], "raw.json"), "w") as f:
            json.dump(result, f)
    return 0 if result["ok"] and not result["cleanup_problems"] else 1


# --------------------------------------------------------------------------
# outer process: plan, inner run, leftovers check, report

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def launcher_python(pyrunc):
    """The interpreter pyrunc's launcher runs (the floor is measured with it)."""
    beside = os.path.join(os.path.dirname(os.path.abspath(pyrunc)), "python3")
    return beside if os.access(beside, os.X_OK) else shutil.which("python3")


def editable_note(pyrunc):
    """A warning when pyrunc is an editable install: its launcher then needs
    `site` and the editable import hook, a cost users of a real install
    don't pay (use a regular `pip install .` to measure)."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(pyrunc)))
    for sp in glob.glob(prefix + "/lib/python3*/site-packages"):
        if not os.path.isdir(sp + "/pyrunc") and glob.glob(sp + "/__editable__*pyrunc*"):
            return ("pyrunc at %s is an EDITABLE install: its figures include the editable "
                    "import hook (a regular install is faster)" % pyrunc)
    return None


def find_leftovers(workdir, cgroup_parent):
    """Mounts under the work dir, our cgroup parents, processes in them."""
    found = []
    with open("/proc/self/mountinfo") as f:
        found += ["mount " + line.split()[4] for line in f if line.split()[4].startswith(workdir)]
    name = cgroup_parent.lstrip("/")
    cg_dirs = glob.glob("%s/*/%s" % (CGROUP_ROOT, name)) + glob.glob("%s/%s" % (CGROUP_ROOT, name))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cgroup" % pid) as f:
                inside = cgroup_parent + "/" in f.read()
        except OSError:
            continue
        if inside and _proc_state(int(pid)) not in (None, b"Z", b"X"):
            found.append("process %s" % pid)
    return found, cg_dirs


def cgroup_mounts():
    """(mount point, fstype, super options) of every cgroup hierarchy."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = (right.split() + ["", "", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((left.split()[4], fstype, opts.split(",")))
    return found


def make_cgroup_parent(cgroup_parent):
    """Create the bench's parent cgroup in every hierarchy beforehand, as a
    real host has one (/docker, /kubepods...): no runtime then owns it, and
    a runtime deleting its container only removes its own leaf."""
    for mnt, _fstype, opts in cgroup_mounts():
        path = mnt + cgroup_parent
        os.mkdir(path)
        if "cpuset" in opts:  # a new v1 cpuset is empty: give it the root's
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(mnt, name)) as src, open(os.path.join(path, name), "w") as dst:
                    dst.write(src.read())


def remove_cgroup_tree(path):
    """rmdir bottom-up (cgroup directories only go away empty)."""
    left = []
    for base, dirs, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(base)
        except OSError as e:
            left.append("cgroup %s (%s)" % (base, e.strerror))
    return left


def check_and_clean(workdir, cgroup_parent):
    found, cg_dirs = find_leftovers(workdir, cgroup_parent)
    for d in cg_dirs:
        found += remove_cgroup_tree(d)
    if not any(x.startswith("mount ") for x in found):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        found.append("kept %s (mounts under it)" % workdir)
    return found


def parse_args(argv):
    p = argparse.ArgumentParser(description="pyrunc vs runc (host view) and crun (private view), interleaved")
    p.add_argument("--pyrunc", default=shutil.which("pyrunc") or "pyrunc")
    p.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    p.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    p.add_argument("--runtimes", help="comma-separated subset of %s (one block, --cgroups view)" % ",".join(RUNTIMES))
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--private-rounds", type=int, default=12,
                   help="rounds of the second block (crun, private view)")
    p.add_argument("--burst", type=int, default=10, help="containers per back-to-back burst (0: none)")
    p.add_argument("--burst-every", type=int, default=3, help="a burst every Nth round")
    p.add_argument("--parallel", type=int, default=50, help="containers created+started two at a time (0: none)")
    p.add_argument("--parallel-rounds", type=int, default=3)
    p.add_argument("--engines", type=int, default=10, metavar="N",
                   help="ctr run --rm / podman run --rm of /bin/true, N interleaved rounds (0: none)")
    p.add_argument("--no-exec", action="store_true")
    p.add_argument("--quick", action="store_true", help="3 rounds, small bursts (for tests)")
    p.add_argument("--cgroups", choices=("both", "host", "private"), default="both",
                   help="both (default): the host's own cgroup layout for pyrunc and runc (on a hybrid "
                        "host the unified hierarchy included), then crun in a private mount namespace with "
                        "the unified cgroup2 mount hidden (crun refuses the hybrid host); host or private: "
                        "that one view, every runtime it can run")
    p.add_argument("--json", metavar="FILE", help="write the raw numbers here")
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    p.add_argument("--update-readme", metavar="FILE",
                   help="write the tables between FILE's bench:begin/bench:end markers (README.md)")
    p.add_argument("--inner", metavar="PLAN", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.private_rounds, args.burst, args.burst_every = 3, 2, 3, 3
        args.parallel, args.parallel_rounds, args.engines = 4, 1, 1
    return args


def crun_refuses_host():
    """crun refuses a hybrid host whose unified hierarchy lists controllers."""
    return _is_cgroup2(UNIFIED) and _unified_has_controllers()


def choose_runtimes(args, view):
    if args.runtimes:
        names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    elif view == "host" and crun_refuses_host():
        names = ["pyrunc", "runc"]
    elif view == "private" and args.cgroups == "both":
        names = ["pyrunc", "crun"]
    else:
        names = list(RUNTIMES)
    bad = [n for n in names if n not in RUNTIMES]
    if bad:
        raise SystemExit("bench: unknown runtime(s): %s" % ",".join(bad))
    paths = {}
    for n in names:
        path = shutil.which(getattr(args, n)) or getattr(args, n)
        if not os.access(path, os.X_OK):
            raise SystemExit("bench: %s not found at %s" % (n, path))
        paths[n] = os.path.abspath(path)
    return names, paths


def _unified_has_controllers():
    try:
        with open(UNIFIED + "/cgroup.controllers") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def cgroups_note(view, names):
    if view == "private":
        if _is_cgroup2(UNIFIED):
            return "cgroups: PRIVATE VIEW (private mount namespace, the hybrid host's cgroup2 mount hidden: pure v1)"
        return "cgroups: as the host has them (private mount namespace)"
    note = "cgroups: HOST VIEW (the host's own layout%s)" % (
        ": v1 + the unified cgroup2 hierarchy" if _is_cgroup2(UNIFIED) else "")
    if "crun" not in names and crun_refuses_host():
        note += "; crun left out: it refuses this hybrid host"
    return note


def views(args):
    """[(view, rounds)] to run: by default the host view, then crun's
    private view where crun cannot run in the host's."""
    if args.cgroups != "both":
        return [(args.cgroups, args.rounds)]
    out = [("host", args.rounds)]
    if not args.runtimes and crun_refuses_host() and args.private_rounds > 0 \
            and os.access(shutil.which(args.crun) or args.crun, os.X_OK):
        out.append(("private", args.private_rounds))
    return out


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def make_plan(args, workdir, token, names, paths, view, rounds):
    config = base_config(paths.get("runc") or shutil.which("runc"), workdir)
    full = view == "host" or args.cgroups != "both"  # the second block: the core scenarios only
    parallel_every = max(1, rounds // max(1, args.parallel_rounds)) if args.parallel_rounds else 0
    return {
        "workdir": workdir, "token": token, "config": config,
        "cgroup_parent": "/" + token, "runtimes": names, "runtime_paths": paths,
        "rounds": rounds, "burst_size": args.burst if full else 0, "burst_every": args.burst_every,
        "parallel": args.parallel if full else 0, "parallel_every": parallel_every,
        "exec": not args.no_exec, "cgroups": view,
        "outer_mnt_ns": os.readlink("/proc/self/ns/mnt"),
        "floor_python": launcher_python(paths.get("pyrunc") or sys.executable),
    }


def run_inner(plan, plan_path):
    argv = [sys.executable, "-I", os.path.abspath(__file__), "--inner", plan_path]
    if plan["cgroups"] == "private":
        argv = ["unshare", "--mount", "--propagation", "private", "--"] + argv
    return subprocess.run(argv, env=ENV).returncode


README_BEGIN = "<!-- bench:begin (bench/bench.py --update-readme writes from here) -->"
README_END = "<!-- bench:end -->"


def readme_block(blocks, engines):
    """The markdown README shows: the host view's tables, the private
    view's pyrunc/crun ratios in one line, the engines' table."""
    lines = []
    for raw in blocks:
        meta = raw["meta"]
        lines.append("%s, %s; %d rounds; load %s before, %s after; %s." % (
            meta["date"], meta["host"], raw["rounds"], meta["load_before"], meta["load_after"],
            meta["cgroups_note"]))
        lines.append("")
        if raw["view"] == "host" or len(blocks) == 1:
            lines += table_lines(raw, markdown=True) + [""] + verb_lines(raw, markdown=True) + [""]
            continue
        stats = {label: st for label, _, st in metric_rows(raw)}
        peer = [rt for rt in raw["runtimes"] if rt != "pyrunc"][0]
        cells = ["%s %.2f" % (label, ratio(st["pyrunc"]["median"], st[peer]["median"]))
                 for label, st in stats.items() if "CPU" in label or "RSS" in label]
        lines += ["pyrunc/%s (medians): %s." % (peer, "; ".join(cells)), ""]
    if engines:
        import engines_latency

        lines += engines_latency.report_lines(engines, markdown=True) + [""]
    return lines


def update_readme(path, lines):
    with open(path) as f:
        text = f.read()
    a, b = text.find(README_BEGIN), text.find(README_END)
    if a < 0 or b < a:
        raise SystemExit("bench: %s has no %s ... %s markers" % (path, README_BEGIN, README_END))
    text = text[:a + len(README_BEGIN)] + "\n" + "\n".join(lines) + "\n" + text[b:]
    with open(path, "w") as f:
        f.write(text)


def run_block(args, view, rounds):
    """One block: a view, its runtimes, interleaved rounds; prints its
    report; -> (ok, raw)."""
    names, paths = choose_runtimes(args, view)
    workdir = tempfile.mkdtemp(prefix="pyrunc-bench-")
    token = os.path.basename(workdir)
    inner, rc, plan, why = {}, 1, None, None
    print("bench: %s view: %s, %d rounds" % (view, ", ".join(names), rounds), flush=True)
    try:
        make_rootfs(os.path.join(workdir, "rootfs"))
        plan = make_plan(args, workdir, token, names, paths, view, rounds)
        plan["helper"], why = build_helper(workdir)
        make_cgroup_parent(plan["cgroup_parent"])
        plan_path = os.path.join(workdir, "plan.json")
        with open(plan_path, "w") as f:
            json.dump(plan, f)
        load_before = load_avg()
        rc = run_inner(plan, plan_path)
        with open(os.path.join(workdir, "raw.json")) as f:
            inner = json.load(f)
    finally:
        leftovers = check_and_clean(workdir, "/" + token)
    if leftovers:
        print("bench: LEFT BEHIND:\n  " + "\n  ".join(leftovers), file=sys.stderr)
    if inner.get("cleanup_problems"):
        print("bench: cleanup problems:\n  " + "\n  ".join(inner["cleanup_problems"]), file=sys.stderr)
    if not inner.get("ok"):
        print("bench: FAILED: %s" % inner.get("error", "inner run exit %d" % rc), file=sys.stderr)
        return False, None
    raw = {
        "view": view, "runtimes": names, "rounds": rounds,
        "burst_size": plan["burst_size"] if plan["burst_every"] else 0,
        "burst_rounds": len(next(iter(inner["samples"].get("burst", {"": []}).values()))),
        "parallel": plan["parallel"],
        "floor_python": plan["floor_python"], "samples": inner["samples"],
        "notes": inner["notes"] + ([] if plan["helper"] else ["peak RSS not reported: helper not built (%s)" % why])
        + [n for n in [editable_note(paths["pyrunc"]) if "pyrunc" in paths else None] if n],
        "rss_valid": bool(plan["helper"]),
        "meta": {
            "host": "%s, %d CPUs" % (os.uname().release, os.cpu_count()),
            "cgroups_note": cgroups_note(view, names),
            "versions": {n: first_line([paths[n], "--version"]) for n in names},
            "namespaces": [ns["type"] for ns in plan["config"]["linux"]["namespaces"]],
            "load_before": load_before, "load_after": load_avg(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "workdir": workdir,
        },
    }
    print("\n".join(report_lines(raw, args.markdown)))
    print("", flush=True)
    return not leftovers and rc == 0, raw


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.inner:
        return inner_main(args.inner)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (real containers)")
    ok, blocks = True, []
    for view, rounds in views(args):
        good, raw = run_block(args, view, rounds)
        ok = ok and good
        if raw is not None:
            blocks.append(raw)
    engines = None
    if args.engines and ok:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import engines_latency

        names, paths = choose_runtimes(argparse.Namespace(**dict(vars(args), runtimes="pyrunc,runc")), "host")
        engines = engines_latency.measure(paths, args.engines)
        print("\n".join(engines_latency.report_lines(engines, args.markdown)))
        ok = ok and not engines.get("problems")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"blocks": blocks, "engines": engines}, f, indent=1)
    if args.update_readme and ok:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        update_readme(args.update_readme, readme_block(blocks, engines))
        print("bench: %s updated" % args.update_readme)
    if not ok:
        return 1
    print("cleanup: no containers, mounts, cgroups or processes left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
