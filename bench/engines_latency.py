"""What users of an engine feel: `ctr run --rm` and `podman run --rm` of
/bin/true with pyrunc and with runc as the runtime, wall time, interleaved
round by round (each round starts with the other runtime), medians.

The engines are the tests' private instances (tests/engines): containerd
with its own root, state and socket (never the system containerd's), the
runtime given per run with `ctr run --runc-binary`; podman with its own
store and config, `--runtime PATH`.  Containers get no network: ctr's
default is a fresh network namespace with only lo, podman runs with
`--network none`; nothing is sent anywhere.  Everything is removed after.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "localhost/pyrunc-busybox:latest"
TIMEOUT_S = 60


def _engines():
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from engines import oci_image
    from engines.containerd import Containerd
    from engines.podman import Podman

    return oci_image, Containerd, Podman


def _busybox():
    for path in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                if b"ld-linux" not in f.read(4096):
                    return path
    return None


def _timed(argv, env=None):
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    wall = (time.perf_counter_ns() - t0) / 1e6
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv[:4]), p.returncode, (p.stderr or p.stdout).strip()[-300:]))
    return wall


def measure(paths, rounds):
    """paths: {"pyrunc": ..., "runc": ...}; -> {"samples": {engine: {rt: [ms]}},
    "notes": [...], "problems": [...]}."""
    result = {"samples": {}, "notes": [], "problems": [], "rounds": rounds}
    missing = [t for t in ("ctr", "containerd", "podman", "conmon") if shutil.which(t) is None]
    busybox = _busybox()
    if missing or busybox is None:
        result["notes"].append("engines skipped: missing %s" % ", ".join(missing + ([] if busybox else ["busybox-static"])))
        return result
    oci_image, Containerd, Podman = _engines()
    base = tempfile.mkdtemp(prefix="pyrunc-bench-engines-")
    archive = os.path.join(base, "busybox-oci.tar")
    oci_image.build_oci_archive(archive, busybox, IMAGE)
    token = os.path.basename(base)
    ctrd = podman = None
    runtimes = ["pyrunc", "runc"]
    seq = [0]

    def ctr_run(rt):
        seq[0] += 1
        return _timed(ctrd.ctr_argv("run", "--rm", "--runc-binary", paths[rt], IMAGE, "b%d" % seq[0], "/bin/true"))

    def podman_run(rt):
        podman.runtime = paths[rt]  # the binary itself, no logging wrapper
        return _timed(podman.argv("run", "--rm", *podman.run_args(), IMAGE, "/bin/true"), env=podman.env)

    try:
        ctrd = Containerd(os.path.join(base, "containerd"), paths["pyrunc"], archive, IMAGE)
        ctrd.start()
        podman = Podman(os.path.join(base, "podman"), paths["pyrunc"], archive, IMAGE, "/" + token)
        podman.start()
        for r in range(rounds + 1):  # round 0: warm-up
            order = runtimes if r % 2 == 0 else runtimes[::-1]
            for engine, fn in (("ctr run --rm", ctr_run), ("podman run --rm", podman_run)):
                for rt in order:
                    wall = fn(rt)
                    if r:
                        result["samples"].setdefault(engine, {}).setdefault(rt, []).append(wall)
    except (RuntimeError, AssertionError, OSError, subprocess.TimeoutExpired) as e:
        result["problems"].append("engines: %s" % str(e).strip().splitlines()[0][:400])
    finally:
        for eng in (podman, ctrd):
            if eng is not None:
                try:
                    eng.stop()
                except Exception as e:  # keep cleaning
                    result["problems"].append("engines cleanup: %s" % e)
        shutil.rmtree(base, ignore_errors=True)
    return result


def report_lines(result, markdown=False):
    lines = ["Engines, end to end (host view; %d interleaved rounds, wall, median (p10-p90)):" % result["rounds"]]
    lines += ["  note: " + n for n in result["notes"]]
    lines += ["  PROBLEM: " + p for p in result["problems"]]
    rows = []
    for engine, per_rt in result["samples"].items():
        if set(per_rt) != {"pyrunc", "runc"}:
            continue
        med = {rt: statistics.median(v) for rt, v in per_rt.items()}
        cells = []
        for rt in ("pyrunc", "runc"):
            v = sorted(per_rt[rt])
            q = statistics.quantiles(v, n=10, method="inclusive") if len(v) > 1 else [v[0]] * 9
            cells.append("%.0f (%.0f-%.0f)" % (med[rt], q[0], q[8]))
        rows.append(["%s /bin/true, wall [ms]" % engine] + cells + ["%.2f" % (med["pyrunc"] / med["runc"])])
    if not rows:
        return lines
    head = ["engine", "pyrunc", "runc", "pyrunc/runc"]
    if markdown:
        return lines + ["", "| " + " | ".join(head) + " |", "|---|---:|---:|---:|"] + \
            ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(4)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return lines + ["  " + fmt(head)] + ["  " + fmt(r) for r in rows]
