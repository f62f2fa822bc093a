#!/usr/bin/env python3
"""Where pyrunc's start-up goes: `python -X importtime -I -S -c BOOT <launcher> VERB`
for state, list, create, run (and start, delete), on a real busybox bundle.

Prints, per verb, the total import time and the modules with the largest
cumulative import time, and checks that the lean verbs (state, list, run)
import none of the modules that have no place on a hot path; for each one
found, the chain of imports that pulled it in.  Exit 1 when one is found.

    bench/imports.py --pyrunc .venv/bin/pyrunc [--top 15]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bundle helpers)

FORBIDDEN = ("jsonschema", "pyroute2", "argparse", "subprocess", "re", "dataclasses")
LEAN_VERBS = ("state", "list", "run")


class Node:
    """One line of -X importtime: a module and the imports it triggered."""
    __slots__ = ("name", "depth", "self_us", "cum_us", "children")

    def __init__(self, name, depth, self_us, cum_us, children):
        self.name = name
        self.depth = depth
        self.self_us = self_us
        self.cum_us = cum_us
        self.children = children


def parse_importtime(stderr):
    """Top-level import nodes from -X importtime output.  A module's line is
    printed once its import finishes, after the lines of the imports it
    triggered, which are indented one level (two spaces) deeper."""
    stack = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:"):].split("|")
        self_us, cum_us, name_col = int(parts[0]), int(parts[1]), parts[2]
        raw = name_col[1:]  # one space after the bar, then two per level
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        children = []
        while stack and stack[-1].depth > depth:
            children.insert(0, stack.pop())
        stack.append(Node(raw.strip(), depth, self_us, cum_us, children))
    return stack


def walk(nodes, chain=()):
    for n in nodes:
        yield n, chain + (n.name,)
        yield from walk(n.children, chain + (n.name,))


def chains_to(nodes, module):
    """The import chain of `module` (or its submodules), first import site."""
    for n, chain in walk(nodes):
        if n.name == module or n.name.startswith(module + "."):
            return chain
    return None


def top_modules(nodes, k):
    return sorted((n for n, _ in walk(nodes)), key=lambda n: n.cum_us, reverse=True)[:k]


def launcher_python(launcher):
    return bench.launcher_python(launcher)


class Setup:
    """A bundle, a state root and a cgroup parent of our own, cleaned up."""

    def __init__(self, pyrunc):
        self.pyrunc = os.path.abspath(pyrunc)
        self.workdir = tempfile.mkdtemp(prefix="pyrunc-imports-")
        self.token = os.path.basename(self.workdir)
        self.root = os.path.join(self.workdir, "root")
        bench.make_rootfs(os.path.join(self.workdir, "rootfs"))
        config = bench.base_config(shutil.which("runc") or "/usr/sbin/runc", self.workdir)
        self.bundles = bench.Bundles(self.workdir, config, "/" + self.token)
        bench.make_cgroup_parent("/" + self.token)
        self.ids = []

    def bundle(self, cid, args):
        self.ids.append(cid)
        return self.bundles.make(cid, args)

    def pyrunc_argv(self, *args):
        return [self.pyrunc, "--root", self.root] + list(args)

    def cleanup(self):
        for cid in reversed(self.ids):
            subprocess.run(self.pyrunc_argv("delete", "--force", cid), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        for _ in range(100):  # killed inits may take a moment to go
            left, cgroups = bench.find_leftovers(self.workdir, "/" + self.token)
            if not left:
                break
            time.sleep(0.02)
        for d in cgroups:
            left += bench.remove_cgroup_tree(d)
        if not any(x.startswith("mount ") for x in left):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return left


def launcher_boot(source=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_native", "pyrunc.c")):
    """The Python code the compiled launcher runs with -c (its BOOT string,
    read from the C source: one copy of it)."""
    import ast

    with open(source) as f:
        text = f.read()
    body = text[text.index("BOOT[] ="):]
    body = body[:body.index(";\n")]
    code = ""
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith('"'):
            code += ast.literal_eval(line[:line.rindex('"') + 1])
    return code


def importtime(python, setup, verb_args):
    """Run one verb under -X importtime as the launcher runs it (python -I -S
    -c BOOT <launcher> ...); returns (exit code, nodes, stderr)."""
    argv = [python, "-X", "importtime", "-I", "-S", "-c", launcher_boot(), os.path.realpath(setup.pyrunc),
            "--root", setup.root] + verb_args
    # Files, not pipes: a created container keeps the caller's stdio open
    # (runc's pass-through), so a pipe would never see EOF.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(argv, stdout=out, stderr=err, env=bench.ENV, stdin=subprocess.DEVNULL).returncode
        err.seek(0)
        text = err.read().decode(errors="replace")
    return rc, parse_importtime(text), text


def verb_plan(setup):
    """(label, args) in an order where each verb finds what it needs."""
    return [
        ("run", ["run", "--bundle", setup.bundle("imp-run", bench.TRUE_ARGS), "imp-run"]),
        ("create", ["create", "--bundle", setup.bundle("imp-c", bench.SLEEP_ARGS), "imp-c"]),
        ("state", ["state", "imp-c"]),
        ("list", ["list"]),
        ("start", ["start", "imp-c"]),
        ("delete", ["delete", "--force", "imp-c"]),
    ]


def report(label, rc, nodes, stderr, top):
    total = sum(n.cum_us for n in nodes)
    print("== %s: exit %d, imports %.1f ms in all" % (label, rc, total / 1000.0))
    if rc != 0:
        tail = [line for line in stderr.splitlines() if not line.startswith("import time:")][-3:]
        print("   (verb failed: %s)" % " | ".join(tail))
    print("   %9s %9s  module" % ("cum ms", "self ms"))
    for n in top_modules(nodes, top):
        print("   %9.2f %9.2f  %s%s" % (n.cum_us / 1000.0, n.self_us / 1000.0, "  " * n.depth, n.name))
    found = {}
    for mod in FORBIDDEN:
        chain = chains_to(nodes, mod)
        if chain:
            found[mod] = chain
    if found:
        for mod, chain in found.items():
            print("   imports %s via %s" % (mod, " -> ".join(chain)))
    else:
        print("   none of %s imported" % ", ".join(FORBIDDEN))
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pyrunc", default=shutil.which("pyrunc") or "pyrunc")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--json", metavar="FILE", help="write per-verb totals and forbidden chains")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("imports: needs root (create/run make real containers)")
    python = launcher_python(args.pyrunc)
    setup = Setup(args.pyrunc)
    failures, out = [], {}
    try:
        for label, verb_args in verb_plan(setup):
            rc, nodes, stderr = importtime(python, setup, verb_args)
            found = report(label, rc, nodes, stderr, args.top)
            out[label] = {"rc": rc, "total_ms": sum(n.cum_us for n in nodes) / 1000.0,
                          "forbidden": {m: list(c) for m, c in found.items()}}
            if label in LEAN_VERBS and found:
                failures.append("%s imports %s" % (label, ", ".join(sorted(found))))
            if rc != 0:
                failures.append("%s exited %d" % (label, rc))
    finally:
        left = setup.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if left:
        print("imports: LEFT BEHIND: " + ", ".join(left), file=sys.stderr)
    if failures:
        print("imports: FAIL: " + "; ".join(failures))
        return 1
    print("imports: ok: %s import none of %s" % ("/".join(LEAN_VERBS), ", ".join(FORBIDDEN)))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
