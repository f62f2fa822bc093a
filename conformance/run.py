#!/usr/bin/env python3
"""Run the opencontainers runtime-tools validation suite against runtimes.

    conformance/run.py [SUITE_DIR] [--runtime NAME|PATH ...] [--json FILE]

SUITE_DIR (or $RUNTIME_TOOLS_DIR) is a prebuilt suite: `runtimetest`,
`rootfs-<arch>.tar.gz` and the `*.t` validation binaries (in validation/ or
validation/*/), as `make runtimetest validation-executables` leaves them; see
conformance/README.md for how to build one.  Every binary runs serially, once
per runtime, with the suite directory as its working directory and
RUNTIME=<runtime>.  Each runtime gets a private state root (a small wrapper
adds `--root`) and a private TMPDIR, so whatever a binary leaves behind can be
found and removed afterwards without touching anyone else's containers.

Exit status: 0 no unexpected failure, 1 unexpected failures (or, with
--strict, unexpected passes), 2 usage error, 77 suite not found (skip).
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import expectations  # noqa: E402
import tap  # noqa: E402

REPO = os.path.dirname(HERE)
EXIT_SKIP = 77
DEFAULT_RUNTIMES = ("pyrunc", "runc", "crun")
# Binaries that leave mounts in the caller's namespace: run them in a private one.
PRIVATE_MOUNT_NS = {"linux_ns_itype"}
# Cgroup names the suite's configs use (cgroups.AbsCgroupPath/RelCgroupPath).
SUITE_CGROUP_NAMES = ("cgrouptest", "testdir")
CGROUP_ROOT = "/sys/fs/cgroup"
DIAG_LIMIT = 1500


# ---------------------------------------------------------------- the suite

class SuiteMissing(Exception):
    pass


def _go_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(machine, machine)


def find_suite(directory):
    """Return (suite_dir, {binary name: path}) or raise SuiteMissing with why."""
    if not directory:
        raise SuiteMissing(
            "runtime-tools validation suite not configured: pass its directory or set "
            "RUNTIME_TOOLS_DIR (build it as conformance/README.md describes)")
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise SuiteMissing("runtime-tools validation suite not found: %s is not a directory" % directory)
    needed = ["runtimetest", "rootfs-%s.tar.gz" % _go_arch()]
    missing = [n for n in needed if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise SuiteMissing("runtime-tools validation suite incomplete: %s lacks %s"
                           % (directory, ", ".join(missing)))
    binaries = {}
    validation = os.path.join(directory, "validation")
    for root, _dirs, files in os.walk(validation):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".t") and os.access(path, os.X_OK):
                binaries.setdefault(name[:-2], path)
    if not binaries:
        raise SuiteMissing("runtime-tools validation suite incomplete: no executable *.t under %s" % validation)
    return directory, dict(sorted(binaries.items()))


# ---------------------------------------------------------------- runtimes

def resolve_runtime(spec):
    """NAME, PATH or NAME=PATH -> (name, absolute path or None)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = os.path.basename(spec) if "/" in spec else spec
    if "/" in path:
        path = os.path.abspath(path)
        return name, path if os.access(path, os.X_OK) else None
    if path == "pyrunc":
        venv = os.path.join(REPO, ".venv", "bin", "pyrunc")
        if os.access(venv, os.X_OK):
            return name, venv
    return name, shutil.which(path)


# Workarounds for crun 1.8 (Debian 12's), applied only through its wrapper:
# - before 1.14.3 it refuses any ociVersion it does not know ("unknown
#   version specified"), and the suite writes runtime-spec 1.3.0 into every
#   config.json: the wrapper rewrites the version before create/run;
# - it refuses a hybrid cgroup host whose v2 mount has controllers ("cgroups
#   in hybrid mode not supported, drop all controllers from cgroupv2"; here
#   hugetlb sits on /sys/fs/cgroup/unified): the wrapper runs it in a
#   private mount namespace without that mount, so it sees plain cgroup v1.
CRUN_KNOWS_ANY_VERSION = (1, 14, 3)
OLD_CRUN_OCI_VERSION = "1.0.2"
UNIFIED = "/sys/fs/cgroup/unified"

_REWRITE_VERSION = """case "$1" in create|run)
    bundle=. prev=
    for a in "$@"; do
        case "$prev" in --bundle|-b) bundle=$a;; esac
        case "$a" in --bundle=*) bundle=${a#--bundle=};; esac
        prev=$a
    done
    sed -i -E 's/"ociVersion"[[:space:]]*:[[:space:]]*"[^"]*"/"ociVersion":"%s"/' "$bundle/config.json"
esac
"""
_HIDE_UNIFIED = "unshare -m --propagation private sh -c 'umount -l %s && exec \"$@\"' sh " % UNIFIED


def _crun_release(version_line):
    words = version_line.split()
    if len(words) >= 3 and words[0] == "crun" and words[1] == "version":
        try:
            return tuple(int(x) for x in words[2].split(".")[:3])
        except ValueError:
            return None
    return None


def default_oci_version_rewrite(version_line):
    """The ociVersion to force for a runtime, from its `--version` line."""
    release = _crun_release(version_line)
    if release is not None and release < CRUN_KNOWS_ANY_VERSION:
        return OLD_CRUN_OCI_VERSION
    return None


def hybrid_v2_has_controllers():
    try:
        with open(os.path.join(UNIFIED, "cgroup.controllers")) as f:
            return bool(f.read().split())
    except OSError:
        return False


class RuntimeSandbox:
    """A private state root, TMPDIR and `--root` wrapper for one runtime."""

    def __init__(self, name, path, workdir, version, oci_version=None, hide_unified=False, flags=()):
        self.name = name
        self.path = path
        self.version = version
        self.oci_version = oci_version
        self.hide_unified = hide_unified
        self.base = os.path.join(workdir, name)
        self.root = os.path.join(self.base, "root")
        self.wrapper = os.path.join(self.base, "bin", name)
        os.makedirs(self.root, mode=0o700)
        os.makedirs(os.path.dirname(self.wrapper))
        body = "#!/bin/sh\n"
        if oci_version:
            body += _REWRITE_VERSION % oci_version
        body += "exec %s%s%s --root %s \"$@\"\n" % (
            _HIDE_UNIFIED if hide_unified else "", _sh_quote(path),
            "".join(" " + _sh_quote(f) for f in flags), _sh_quote(self.root))
        with open(self.wrapper, "w") as f:
            f.write(body)
        os.chmod(self.wrapper, 0o755)

    def workarounds(self):
        done = []
        if self.oci_version:
            done.append("config.json ociVersion rewritten to %s before create/run" % self.oci_version)
        if self.hide_unified:
            done.append("run in a private mount namespace without %s (hybrid cgroups)" % UNIFIED)
        return done

    def tmpdir_for(self, binary):
        d = os.path.join(self.base, "tmp", binary)
        os.makedirs(d)
        return d


def _sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- cleanup

def _unescape_octal(field):
    """mountinfo writes space, tab, newline and backslash as \\NNN."""
    parts = field.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) >= 3 and part[:3].isdigit():
            out.append(chr(int(part[:3], 8)) + part[3:])
        else:
            out.append("\\" + part)
    return "".join(out)


def _mountinfo_points():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            points.append(_unescape_octal(line.split(" ")[4]))
    return points


def unmount_under(prefix):
    """Lazily unmount everything mounted under prefix; return what stayed."""
    prefix = prefix.rstrip("/") + "/"
    for point in sorted((p for p in _mountinfo_points() if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
    return [p for p in _mountinfo_points() if p.startswith(prefix)]


def kill_processes_under(prefix):
    """SIGKILL processes whose root or cwd lies under prefix (the suite's
    bundles, made by this harness); return their pids."""
    prefix = prefix.rstrip("/") + "/"
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for link in ("root", "cwd"):
            try:
                target = os.readlink("/proc/%s/%s" % (entry, link))
            except OSError:
                continue
            if target.startswith(prefix):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
                except ProcessLookupError:
                    pass
                break
    return killed


def delete_containers(sandbox):
    """`delete --force` every container left in the sandbox's root."""
    left = []
    try:
        ids = sorted(os.listdir(sandbox.root))
    except FileNotFoundError:
        return left
    for cid in ids:
        if not os.path.isdir(os.path.join(sandbox.root, cid)):
            continue
        left.append(cid)
        try:
            subprocess.run([sandbox.wrapper, "delete", "--force", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        except subprocess.TimeoutExpired:
            pass
    return left


def _own_cgroups():
    """{controller directory name: this process's cgroup path in it} (v1)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                own[c[len("name="):] if c.startswith("name=") else c] = path
    return own


def suite_cgroups():
    """Cgroup directories named like the suite's (AbsCgroupPath lands at a
    hierarchy's root; RelCgroupPath below the runtime's own cgroup, which is
    the harness's).  Other subtrees of the host's process_api are not
    walked."""
    found = set()
    if not os.path.isdir(CGROUP_ROOT):
        return found
    own = _own_cgroups()
    for controller in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, controller)
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        starts = {top}
        mine = own.get(controller, "/")
        if mine != "/":
            starts.add(top + mine)
        for start in starts:
            for root, dirs, _files in os.walk(start):
                rel = os.path.relpath(root, start).split(os.sep)
                if any(part in SUITE_CGROUP_NAMES for part in rel):
                    found.add(root)
                dirs[:] = [d for d in dirs if d != "process_api"]
    return found


def remove_cgroups(paths):
    """rmdir the given cgroups, deepest first; return those that stayed."""
    stayed = []
    for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            stayed.append(path)
    return stayed


# ---------------------------------------------------------------- running

class BinaryResult:
    __slots__ = ("binary", "runtime", "tests", "plan", "exit", "timed_out", "seconds",
                 "stderr", "leftovers")

    def __init__(self, binary, runtime):
        self.binary = binary
        self.runtime = runtime
        self.tests = []
        self.plan = None
        self.exit = None
        self.timed_out = False
        self.seconds = 0.0
        self.stderr = ""
        self.leftovers = {}

    def count(self, status, tap_only=False):
        return sum(1 for t in self.tests if t.status == status and not (tap_only and t.synthetic))

    def failures(self):
        return [t for t in self.tests if t.status == tap.NOT_OK]

    def as_dict(self):
        outcome = {tap.OK: ".", tap.NOT_OK: "F", tap.SKIP: "s", tap.TODO: "t"}
        d = {
            "ok": self.count(tap.OK), "not_ok": self.count(tap.NOT_OK),
            "skip": self.count(tap.SKIP) + self.count(tap.TODO),
            # The same counts from the TAP lines alone, without the harness's
            # verdicts: what a plain TAP consumer reports.
            "tap_only": [self.count(tap.OK, True), self.count(tap.NOT_OK, True),
                         self.count(tap.SKIP, True) + self.count(tap.TODO, True)],
            "plan": self.plan, "exit": self.exit, "timed_out": self.timed_out,
            "seconds": round(self.seconds, 2),
            # One character per numbered test, in order: '.' ok, 'F' not ok,
            # 's' skip, 't' todo; for comparing runtimes test by test.
            "outcomes": "".join(outcome[t.status] for t in self.tests if t.number is not None),
            "failures": [_failure_dict(t) for t in self.failures()],
        }
        if self.stderr:
            d["stderr_tail"] = self.stderr[-DIAG_LIMIT:]
        if self.leftovers:
            d["leftovers"] = self.leftovers
        return d


def _failure_dict(test):
    d = {"number": test.number, "description": test.description}
    if test.diagnostic:
        d["diagnostic"] = test.diagnostic[:DIAG_LIMIT]
    return d


def _synthetic_failure(description):
    return tap.TapTest(None, tap.NOT_OK, description, synthetic=True)


def run_binary(suite_dir, path, binary, sandbox, timeout):
    result = BinaryResult(binary, sandbox.name)
    tmpdir = sandbox.tmpdir_for(binary)
    env = dict(os.environ, RUNTIME=sandbox.wrapper, TMPDIR=tmpdir)
    argv = [path]
    if binary in PRIVATE_MOUNT_NS:
        argv = ["unshare", "-m", "--propagation", "private", path]
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=suite_dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    result.seconds = time.monotonic() - started
    result.exit = proc.returncode
    result.stderr = err.decode("utf-8", "replace")
    stream = tap.parse(out.decode("utf-8", "replace"))
    result.tests = stream.tests
    result.plan = stream.plan
    _add_harness_failures(result, stream, timeout)
    result.leftovers = clean_after(sandbox, tmpdir)
    return result


def _orphan_error(stream):
    """The first line of an "error" in a YAML block outside any test."""
    for diag in stream.orphan_diagnostics:
        try:
            error = json.loads(diag).get("error")
        except (ValueError, AttributeError):
            continue
        if error:
            return error.splitlines()[0]
    return None


def _add_harness_failures(result, stream, timeout):
    """Verdicts TAP itself does not show: a crash, a timeout, a short plan,
    and the hook binaries' "1..0" plus an error block (read as one failed
    test; without the error block, as one passed test)."""
    if stream.plan == 0 and not stream.tests and not result.timed_out and result.exit == 0:
        error = _orphan_error(stream)
        verdict = tap.TapTest(1, tap.NOT_OK if error else tap.OK, error or "no error reported", synthetic=True)
        verdict.diagnostic = "\n".join(stream.orphan_diagnostics)[:DIAG_LIMIT]
        result.tests.append(verdict)
        return
    if stream.plan is None and not stream.tests and result.exit == 0 and not result.timed_out:
        # The *_fail binaries print nothing and exit 0 when the runtime
        # refuses their bad config, which is what they test; a runtime that
        # accepts it gets the in-container TAP and exit status 1 instead.
        result.tests.append(tap.TapTest(1, tap.OK, "runtime refused the config (silent exit 0)", synthetic=True))
        return
    no_plan = ", no TAP plan" if stream.plan is None else ""
    if result.timed_out:
        result.tests.append(_synthetic_failure("timed out after %ds%s" % (timeout, no_plan)))
    elif result.exit != 0:
        result.tests.append(_synthetic_failure("exit status %d%s" % (result.exit, no_plan)))
    elif no_plan:
        result.tests.append(_synthetic_failure("no TAP plan"))
    if stream.bailed_out:
        result.tests.append(_synthetic_failure("bail out: %s" % stream.bailed_out))
    if stream.plan is not None and stream.plan > len(stream.tests):
        result.tests.append(_synthetic_failure("missing %d planned tests" % (stream.plan - len(stream.tests))))


def clean_after(sandbox, tmpdir):
    """Remove what one binary left: containers, processes, mounts, bundles."""
    leftovers = {}
    containers = delete_containers(sandbox)
    if containers:
        leftovers["containers"] = containers
    killed = kill_processes_under(sandbox.base)
    if killed:
        leftovers["processes_killed"] = killed
    mounts = unmount_under(sandbox.base)
    if mounts:
        leftovers["mounts_stuck"] = mounts
    else:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return leftovers


# ---------------------------------------------------------------- reporting

def print_table(results, runtimes, binaries, marks, out):
    names = [rt for rt in runtimes]
    width = max([len(b) for b in binaries] + [len("TOTAL")]) + 2
    cell = "{:>6} {:>6} {:>6}"
    head = "".join("  %-20s" % (n[:20],) for n in names)
    out.write("%-*s%s\n" % (width, "binary", head))
    out.write("%-*s%s\n" % (width, "", "".join("  " + cell.format("ok", "notok", "skip") for _ in names)))
    totals = {n: [0, 0, 0] for n in names}
    for b in binaries:
        row = []
        for n in names:
            r = results.get((n, b))
            if r is None:
                row.append("  " + cell.format("-", "-", "-"))
                continue
            d = r.as_dict()
            counts = [d["ok"], d["not_ok"], d["skip"]]
            totals[n] = [a + c for a, c in zip(totals[n], counts)]
            row.append(" " + marks.get((n, b), " ") + cell.format(*counts))
        out.write("%-*s%s\n" % (width, b, "".join(row)))
    out.write("%-*s%s\n" % (width, "TOTAL", "".join("  " + cell.format(*totals[n]) for n in names)))
    tap_only = {n: [sum(results[(n, b)].as_dict()["tap_only"][i] for b in binaries if (n, b) in results)
                    for i in range(3)] for n in names}
    out.write("%-*s%s\n" % (width, "TAP lines only", "".join("  " + cell.format(*tap_only[n]) for n in names)))
    return totals, tap_only


def build_report(args, suite_dir, sandboxes, results, unexpected, stale, totals, started):
    commit = ""
    try:
        with open(os.path.join(suite_dir, "COMMIT")) as f:
            commit = f.read().strip()
    except OSError:
        pass
    report = {
        "suite": suite_dir, "suite_commit": commit,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "kernel": platform.release(),
        "runtimes": {s.name: {"path": s.path, "version": s.version, "workarounds": s.workarounds()}
                     for s in sandboxes},
        "totals": {n: dict(zip(("ok", "not_ok", "skip"), t)) for n, t in totals.items()},
        "results": {},
        "unexpected_failures": [
            {"runtime": rt, "binary": b, "number": num, "description": desc}
            for rt, b, num, desc in unexpected],
        "unexpected_passes": [{"entry": e.label(), "reason": e.reason, "line": e.line} for e in stale],
    }
    for (rt, b), r in sorted(results.items()):
        report["results"].setdefault(rt, {})[b] = r.as_dict()
    return report


def _version(path):
    try:
        p = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        return p.stdout.decode("utf-8", "replace").strip().splitlines()[0] if p.stdout else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def print_verdict(unexpected, stale, out):
    if unexpected:
        out.write("\nUNEXPECTED FAILURES (%d):\n" % len(unexpected))
        for rt, b, num, desc in unexpected:
            out.write("  %s %s:%s  %s\n" % (rt, b, num if num is not None else "-", desc))
    if stale:
        out.write("\nUNEXPECTED PASSES (expected-failure entries that matched nothing, %d):\n" % len(stale))
        for e in stale:
            out.write("  %s  # %s  (%s)\n" % (e.label(), e.reason, e.line))
    if not unexpected and not stale:
        out.write("\nno unexpected failures, no unexpected passes\n")


# ---------------------------------------------------------------- baselines

def load_baselines(paths):
    """[(runtime name, {binary: result dict})] from earlier JSON results."""
    loaded = []
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for runtime, binaries in sorted(report.get("results", {}).items()):
            loaded.append((runtime, binaries))
    return loaded


def _synthetic_count(d):
    return sum(1 for f in d["failures"] if f["number"] is None)


def worse_than(mine, other):
    """Test numbers (None: the binary as a whole) that `other` passed and
    `mine` did not.  Test by test when both ran the same plan; otherwise a
    clean baseline binary against a failing one."""
    mo, bo = mine["outcomes"], other["outcomes"]
    if len(mo) == len(bo) and mine["plan"] == other["plan"]:
        worse = [i + 1 for i, (m, o) in enumerate(zip(mo, bo)) if o == "." and m == "F"]
        if _synthetic_count(mine) > _synthetic_count(other):
            worse.append(None)
        return worse
    return [None] if other["not_ok"] == 0 and mine["not_ok"] > 0 else []


def compare(results, baselines):
    """[(runtime, binary, test number or None, baseline runtime)]."""
    found = []
    for (rt, b), r in sorted(results.items()):
        mine = r.as_dict()
        for base_rt, base in baselines:
            if base_rt == rt or b not in base:
                continue
            found.extend((rt, b, n, base_rt) for n in worse_than(mine, base[b]))
    return found


def print_comparison(worse, baselines, out):
    if not baselines:
        return
    names = ", ".join(sorted({rt for rt, _ in baselines}))
    if not worse:
        out.write("\nnothing fails that a baseline (%s) passes\n" % names)
        return
    out.write("\nFAILS WHERE A BASELINE PASSES (%d):\n" % len(worse))
    for rt, b, n, base_rt in worse:
        out.write("  %s %s:%s  (%s passes)\n" % (rt, b, "-" if n is None else n, base_rt))


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite", nargs="?", default=os.environ.get("RUNTIME_TOOLS_DIR", ""),
                   help="prebuilt runtime-tools directory (default: $RUNTIME_TOOLS_DIR)")
    p.add_argument("--runtime", "-r", action="append", default=[],
                   help="NAME, PATH or NAME=PATH; repeatable (default: pyrunc runc crun)")
    p.add_argument("--only", action="append", default=[], help="run only these binaries (repeatable)")
    p.add_argument("--exclude", action="append", default=[], help="skip these binaries (repeatable)")
    p.add_argument("--timeout", type=int, default=300, help="per-binary timeout in seconds (default 300)")
    p.add_argument("--budget", type=int, default=0,
                   help="stop starting binaries after this many seconds in all (0: no limit)")
    p.add_argument("--expected", default=os.path.join(HERE, "expected-failures.txt"),
                   help="expected-failures file (default: conformance/expected-failures.txt)")
    p.add_argument("--json", dest="json_path",
                   default=os.path.join(tempfile.gettempdir(), "pyrunc-conformance.json"),
                   help="where to write the JSON results")
    p.add_argument("--oci-version", action="append", default=[], metavar="NAME=VERSION",
                   help="rewrite config.json's ociVersion for runtime NAME before create/run "
                        "('NAME=' turns it off; default: 1.0.2 for crun < 1.14.3)")
    p.add_argument("--no-workarounds", action="store_true",
                   help="run crun as it is (no ociVersion rewrite, no hidden cgroup2 mount)")
    p.add_argument("--compare", action="append", default=None, metavar="JSON",
                   help="earlier results to compare with, repeatable "
                        "(default: conformance/baseline-*.json; 'none' for no comparison)")
    p.add_argument("--strict", action="store_true", help="unexpected passes fail the run too")
    p.add_argument("--global-flag", action="append", default=[], metavar="NAME=FLAG",
                   help="a global flag the wrapper gives runtime NAME before its verb (repeatable), "
                        "e.g. pyrunc-strict=--strict")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-binary progress lines")
    return p.parse_args(argv)


def select_binaries(binaries, only, exclude):
    unknown = [b for b in only + exclude if b not in binaries]
    if unknown:
        raise SystemExit("run.py: unknown validation binaries: %s" % ", ".join(unknown))
    return [b for b in binaries if (not only or b in only) and b not in exclude]


def select_runtimes(specs):
    explicit = bool(specs)
    chosen = []
    for spec in specs or DEFAULT_RUNTIMES:
        name, path = resolve_runtime(spec)
        if path:
            chosen.append((name, path))
        elif explicit:
            raise SystemExit("run.py: runtime %r not found" % spec)
        else:
            sys.stderr.write("run.py: runtime %s not found, left out\n" % name)
    if not chosen:
        raise SystemExit("run.py: no runtime to test")
    return chosen


def _baseline_paths(flags):
    if flags is None:
        import glob
        return sorted(glob.glob(os.path.join(HERE, "baseline-*.json")))
    return [f for f in flags if f != "none"]


def make_sandbox(name, path, workdir, oci_version_flags, workarounds, global_flags=()):
    version = _version(path)
    flags = [f.partition("=")[2] for f in global_flags if f.partition("=")[0] == name]
    forced = dict(f.partition("=")[::2] for f in oci_version_flags)
    if name in forced:
        oci_version = forced[name] or None
    else:
        oci_version = default_oci_version_rewrite(version) if workarounds else None
    hide = workarounds and _crun_release(version) is not None and hybrid_v2_has_controllers()
    return RuntimeSandbox(name, path, workdir, version, oci_version, hide, flags)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        suite_dir, binaries = find_suite(args.suite)
    except SuiteMissing as e:
        print("SKIP: %s" % e)
        return EXIT_SKIP
    if os.geteuid() != 0:
        print("SKIP: the runtime-tools validation suite needs root (euid is %d)" % os.geteuid())
        return EXIT_SKIP
    try:
        expected = expectations.load(args.expected)
    except expectations.ExpectationError as e:
        sys.stderr.write("run.py: %s\n" % e)
        return 2
    names = select_binaries(list(binaries), args.only, args.exclude)
    runtimes = select_runtimes(args.runtime)
    started = time.time()
    cgroups_before = suite_cgroups()
    workdir = tempfile.mkdtemp(prefix="pyrunc-conformance.", dir="/var/tmp")
    # Bundles live below: a container's mapped root (user namespace tests)
    # must be able to traverse down to them, as it can in /tmp.
    os.chmod(workdir, 0o755)
    sandboxes = [make_sandbox(n, p, workdir, args.oci_version, not args.no_workarounds, args.global_flag)
                 for n, p in runtimes]
    results, runs, not_run = {}, set(), []
    try:
        for sandbox in sandboxes:
            for b in names:
                if args.budget and time.time() - started > args.budget:
                    not_run.append((sandbox.name, b))
                    continue
                r = run_binary(suite_dir, binaries[b], b, sandbox, args.timeout)
                results[(sandbox.name, b)] = r
                runs.add((sandbox.name, b))
                if not args.quiet:
                    d = r.as_dict()
                    sys.stderr.write("%-8s %-36s ok %4d  not ok %3d  skip %4d  %6.1fs%s\n" % (
                        sandbox.name, b, d["ok"], d["not_ok"], d["skip"], r.seconds,
                        "  leftovers: %s" % r.leftovers if r.leftovers else ""))
                    sys.stderr.flush()
    finally:
        stuck_cgroups = remove_cgroups(suite_cgroups() - cgroups_before)
        for s in sandboxes:
            delete_containers(s)
        if not unmount_under(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
    failures = [(rt, b, t.number, t.description)
                for (rt, b), r in sorted(results.items()) for t in r.failures()]
    unexpected, stale = expectations.classify(expected, failures, runs)
    marks = {(rt, b): "!" for rt, b, _n, _d in unexpected}
    out = sys.stdout
    totals, tap_only = print_table(results, [s.name for s in sandboxes], names, marks, out)
    out.write("('!': a binary with unexpected failures.  TAP lines only: the counts without the\n"
              " harness's verdicts for crashes, timeouts, the hook binaries' error blocks and\n"
              " the *_fail binaries' silent exit 0)\n")
    if not_run:
        out.write("\nnot run (budget of %ds spent): %d binary runs\n" % (args.budget, len(not_run)))
    if stuck_cgroups:
        out.write("\ncgroups the suite made that could not be removed: %s\n" % " ".join(stuck_cgroups))
    print_verdict(unexpected, stale, out)
    baselines = load_baselines(_baseline_paths(args.compare))
    worse = compare(results, baselines)
    print_comparison(worse, baselines, out)
    report = build_report(args, suite_dir, sandboxes, results, unexpected, stale, totals, started)
    report["not_run"] = [{"runtime": rt, "binary": b} for rt, b in not_run]
    report["cgroups_stuck"] = stuck_cgroups
    report["totals_tap_only"] = {n: dict(zip(("ok", "not_ok", "skip"), t)) for n, t in tap_only.items()}
    report["workdir"] = workdir
    report["worse_than_baseline"] = [
        {"runtime": rt, "binary": b, "number": n, "baseline": base_rt} for rt, b, n, base_rt in worse]
    with open(args.json_path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    out.write("results: %s\n" % args.json_path)
    if unexpected or (args.strict and stale):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
