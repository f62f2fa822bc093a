"""The runtime-tools validation suite against pyrunc: no unexpected failures.

Needs a prebuilt suite in $RUNTIME_TOOLS_DIR (conformance/README.md says how
to build one); without it the test skips with the harness's reason.  Only
pyrunc runs here (runc and crun are measured by hand into the baselines);
PYRUNC_CONFORMANCE_BUDGET bounds the run in seconds (default 900).
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import PYRUNC, needs_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_PY = os.path.join(REPO, "conformance", "run.py")
PER_BINARY_TIMEOUT = 120


def _suite_or_skip():
    suite = os.environ.get("RUNTIME_TOOLS_DIR", "")
    if not suite:
        pytest.skip("RUNTIME_TOOLS_DIR is unset: no runtime-tools validation suite to run "
                    "(build it as conformance/README.md describes)")
    if not os.path.isdir(suite):
        pytest.skip("RUNTIME_TOOLS_DIR=%s is not a directory: no runtime-tools validation suite" % suite)
    return suite


@needs_root
def test_pyrunc_has_no_unexpected_validation_failures(tmp_path):
    suite = _suite_or_skip()
    budget = int(os.environ.get("PYRUNC_CONFORMANCE_BUDGET", "900"))
    out_json = tmp_path / "conformance.json"
    p = subprocess.run(
        [sys.executable, RUN_PY, suite, "--runtime", "pyrunc=" + PYRUNC, "--timeout", str(PER_BINARY_TIMEOUT),
         "--budget", str(budget), "--json", str(out_json), "--quiet"],
        capture_output=True, text=True, timeout=budget + 2 * PER_BINARY_TIMEOUT + 120)
    if p.returncode == 77:
        pytest.skip(p.stdout.strip())
    assert p.returncode in (0, 1), "harness error (exit %d): %s" % (p.returncode, p.stderr[-2000:])
    report = json.loads(out_json.read_text())
    ran = report["results"].get("pyrunc", {})
    assert ran, "no validation binary ran against pyrunc"
    assert report["totals"]["pyrunc"]["ok"] > 0
    assert p.returncode == 0, "unexpected validation failures for pyrunc:\n" + p.stdout[-6000:]
    worse = ["%(binary)s:%(number)s (%(baseline)s passes)" % w for w in report["worse_than_baseline"]]
    assert not worse, "pyrunc fails where runc or crun passes: %s" % ", ".join(worse)
    assert not report["cgroups_stuck"], report["cgroups_stuck"]
    # Containers a failing binary did not delete are the suite's doing; but
    # processes alive after `delete --force`, or mounts left in the sandbox,
    # are pyrunc's.
    leftovers = {b: {k: v for k, v in r.get("leftovers", {}).items() if k != "containers"}
                 for b, r in ran.items()}
    leftovers = {b: v for b, v in leftovers.items() if v}
    assert not leftovers, "pyrunc left processes/mounts behind after delete --force: %s" % leftovers
