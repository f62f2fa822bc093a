"""The conformance harness itself: TAP reading, expected-failures matching,
and a whole run against a fake suite (shell scripts that print TAP), so the
harness is tested on every host, with or without the real suite."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFORMANCE = os.path.join(REPO, "conformance")
RUN_PY = os.path.join(CONFORMANCE, "run.py")
sys.path.insert(0, CONFORMANCE)

import expectations  # noqa: E402
import tap  # noqa: E402


def test_tap_statuses_plan_and_nested_yaml():
    text = textwrap.dedent("""\
        TAP version 13
        ok 1 - first
        not ok 2 - second \\# not a directive
          ---
          {
            "stdout": "TAP version 13\\nnot ok 1 - inner\\n"
          }
          ...
        ok 3 # SKIP linux.sysctl not set
        not ok 4 - pending # TODO later
        ok - unnumbered
        # expect: 3, actual: 3
        1..5
        """)
    s = tap.parse(text)
    assert s.plan == 5
    assert [(t.number, t.status) for t in s.tests] == [
        (1, tap.OK), (2, tap.NOT_OK), (3, tap.SKIP), (4, tap.TODO), (5, tap.OK)]
    assert s.tests[1].description == "second # not a directive"
    assert "inner" in s.tests[1].diagnostic  # nested runtimetest TAP stays a diagnostic
    assert s.tests[2].reason == "linux.sysctl not set"
    assert s.tests[4].description == "unnumbered"
    assert s.tests[4].diagnostic == "# expect: 3, actual: 3"


def test_tap_orphan_diagnostic_and_bail_out():
    s = tap.parse('TAP version 13\n  ---\n  {"error": "Hooks MUST be called"}\n  ...\n1..0\n')
    assert s.plan == 0 and not s.tests
    assert "Hooks MUST" in s.orphan_diagnostics[0]
    assert tap.parse("ok 1\nBail out! no runtime\n").bailed_out == "no runtime"


def test_expectation_lines():
    e = expectations.parse_line("runc  pidfile:1   # racy: kill after `true` exits", "f:1")
    assert (e.runtime, e.binary, e.test, e.reason) == ("runc", "pidfile", "1", "racy: kill after `true` exits")
    assert e.covers_failure("runc", "pidfile", 1, "x")
    assert not e.covers_failure("runc", "pidfile", 2, "x")
    assert not e.covers_failure("crun", "pidfile", 1, "x")
    e = expectations.parse_line("* linux_cgroups_*:memory kernel*  # no kmem on cgroup v1 6.x", "f:2")
    assert e.covers_failure("pyrunc", "linux_cgroups_memory", 6, "memory kernel is set correctly")
    assert not e.covers_failure("pyrunc", "linux_cgroups_memory", 6, "memory swap is set correctly")
    with pytest.raises(expectations.ExpectationError, match="no '# reason'"):
        expectations.parse_line("runc pidfile", "f:3")
    with pytest.raises(expectations.ExpectationError, match="want"):
        expectations.parse_line("pidfile  # why", "f:4")


def test_classify_unexpected_failures_and_passes():
    exp = [expectations.parse_line("runc a  # known", "f:1"),
           expectations.parse_line("runc b:2  # known", "f:2"),
           expectations.parse_line("runc c  # not run", "f:3")]
    failures = [("runc", "a", 1, "x"), ("runc", "b", 3, "y")]
    unexpected, stale = expectations.classify(exp, failures, {("runc", "a"), ("runc", "b")})
    assert unexpected == [("runc", "b", 3, "y")]
    assert [e.line for e in stale] == ["f:2"]  # b:2 passed; c never ran, so not stale


def test_no_suite_skips_with_reason(tmp_path):
    env = dict(os.environ)
    env.pop("RUNTIME_TOOLS_DIR", None)
    p = subprocess.run([sys.executable, RUN_PY], env=env, capture_output=True, text=True)
    assert p.returncode == 77
    assert p.stdout.startswith("SKIP: runtime-tools validation suite not configured")
    p = subprocess.run([sys.executable, RUN_PY, str(tmp_path / "none")], capture_output=True, text=True)
    assert p.returncode == 77 and "is not a directory" in p.stdout
    p = subprocess.run([sys.executable, RUN_PY, str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 77 and "lacks runtimetest" in p.stdout


FAKE_BINARIES = {
    # Checks what the real suite relies on: RUNTIME, the cwd, a private TMPDIR.
    "env": """
        echo "TAP version 13"
        test -x "$RUNTIME" && echo "ok 1 - RUNTIME is executable" || echo "not ok 1 - RUNTIME"
        test -f runtimetest && echo "ok 2 - cwd is the suite" || echo "not ok 2 - cwd"
        case "$TMPDIR" in /var/tmp/pyrunc-conformance.*) echo "ok 3 - private TMPDIR";;
            *) echo "not ok 3 - TMPDIR $TMPDIR";; esac
        "$RUNTIME" state x >/dev/null 2>&1 && echo "ok 4 - wrapper runs the runtime" || echo "not ok 4 - wrapper"
        echo "1..4"
        """,
    "mixed": """
        echo "TAP version 13"; echo "ok 1 - a"; echo "not ok 2 - b"
        echo "ok 3 # SKIP not set"; echo "not ok 4 - known"; echo "1..4"
        """,
    "crash": 'echo "TAP version 13"; echo "ok 1 - a"; echo boom >&2; exit 3',
    "hang": 'echo "TAP version 13"; exec sleep 60',
    "hookerr": """
        echo "TAP version 13"; echo "  ---"; echo '  {"error": "Hooks MUST be called in order"}'
        echo "  ..."; echo "1..0"
        """,
    "hookok": 'echo "TAP version 13"; echo "1..0"',
    "silentfail": "exit 0",  # a *_fail binary whose runtime refused the bad config
    "linux_ns_itype": """
        echo "TAP version 13"
        [ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNT_NS" ] && echo "ok 1 - private mount ns" \\
            || echo "not ok 1 - host mount ns"
        echo "1..1"
        """,
}


@pytest.fixture
def fake_suite(tmp_path):
    suite = tmp_path / "suite"
    (suite / "validation" / "sub").mkdir(parents=True)
    (suite / "runtimetest").write_text("")
    (suite / "rootfs-amd64.tar.gz").write_text("")
    (suite / "rootfs-arm64.tar.gz").write_text("")
    for name, body in FAKE_BINARIES.items():
        path = suite / "validation" / ("sub" if name == "mixed" else "") / (name + ".t")
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        path.chmod(0o755)
    runtime = tmp_path / "fakert"
    runtime.write_text('#!/bin/sh\n[ "$1" = --root ] && [ -d "$2" ] || exit 9\nexit 0\n')
    runtime.chmod(0o755)
    return suite, runtime


@pytest.mark.skipif(os.geteuid() != 0, reason="the harness refuses to run without root")
def test_fake_suite_run(fake_suite, tmp_path):
    suite, runtime = fake_suite
    expected = tmp_path / "expected.txt"
    expected.write_text("fakert mixed:4  # known\nfakert mixed:1  # stale entry\n")
    out_json = tmp_path / "r.json"
    baseline = tmp_path / "baseline.json"  # another runtime that passed mixed:2 and crash
    baseline.write_text(json.dumps({"results": {"other": {
        "mixed": {"outcomes": "..sF", "plan": 4, "not_ok": 1, "failures": [{"number": 4}]},
        "crash": {"outcomes": ".", "plan": 1, "not_ok": 0, "failures": []},
        "hang": {"outcomes": "", "plan": None, "not_ok": 1, "failures": [{"number": None}]}}}}))
    env = dict(os.environ, HOST_MNT_NS=os.readlink("/proc/self/ns/mnt"))
    p = subprocess.run([sys.executable, RUN_PY, str(suite), "-r", str(runtime), "--timeout", "3",
                        "--expected", str(expected), "--json", str(out_json), "-q",
                        "--compare", str(baseline)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    report = json.loads(out_json.read_text())
    r = report["results"]["fakert"]
    assert (r["env"]["ok"], r["env"]["not_ok"]) == (4, 0), r["env"]
    assert (r["mixed"]["ok"], r["mixed"]["not_ok"], r["mixed"]["skip"]) == (1, 2, 1)
    assert r["mixed"]["outcomes"] == ".FsF"
    assert [f["description"] for f in r["crash"]["failures"]] == ["exit status 3, no TAP plan"]
    assert "boom" in r["crash"]["stderr_tail"]
    assert r["hang"]["timed_out"] and r["hang"]["seconds"] < 30
    assert [f["description"] for f in r["hookerr"]["failures"]] == ["Hooks MUST be called in order"]
    assert (r["hookok"]["ok"], r["hookok"]["not_ok"]) == (1, 0)
    assert (r["silentfail"]["ok"], r["silentfail"]["not_ok"]) == (1, 0)
    assert (r["linux_ns_itype"]["ok"], r["linux_ns_itype"]["not_ok"]) == (1, 0)
    unexpected = {(u["binary"], u["number"]) for u in report["unexpected_failures"]}
    assert ("mixed", 2) in unexpected and ("mixed", 4) not in unexpected
    assert [u["entry"] for u in report["unexpected_passes"]] == ["fakert mixed:1"]
    assert report["totals"]["fakert"]["ok"] == sum(r[b]["ok"] for b in r)
    assert report["totals_tap_only"]["fakert"]["ok"] == sum(r[b]["ok"] for b in r) - 2  # hookok, silentfail
    assert r["crash"]["tap_only"] == [1, 0, 0]
    assert "UNEXPECTED FAILURES" in p.stdout and "TOTAL" in p.stdout
    worse = {(w["binary"], w["number"], w["baseline"]) for w in report["worse_than_baseline"]}
    assert worse == {("mixed", 2, "other"), ("crash", None, "other")}
    assert "FAILS WHERE A BASELINE PASSES (2)" in p.stdout
    assert not os.path.exists(report["workdir"])  # sandbox removed


def test_crun_version_parsing():
    import run
    assert run.default_oci_version_rewrite("crun version 1.8.1") == "1.0.2"
    assert run.default_oci_version_rewrite("crun version 1.14.3") is None
    assert run.default_oci_version_rewrite("runc version 1.1.5+ds1") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="the harness refuses to run without root")
def test_old_crun_gets_its_workarounds(tmp_path):
    """A runtime that says it is crun 1.8.1 sees ociVersion 1.0.2 in the
    bundle at create (and, on a hybrid host with v2 controllers, no cgroup2
    mount); the suite's own config.json said 1.3.0."""
    import run
    suite = tmp_path / "suite"
    (suite / "validation").mkdir(parents=True)
    for f in ("runtimetest", "rootfs-amd64.tar.gz", "rootfs-arm64.tar.gz"):
        (suite / f).write_text("")
    t = suite / "validation" / "ver.t"
    t.write_text(textwrap.dedent("""\
        #!/bin/sh
        b=$(mktemp -d); echo '{"ociVersion": "1.3.0", "root": {"path": "."}}' > $b/config.json
        echo "TAP version 13"
        "$RUNTIME" create --bundle "$b" x > $b/seen
        grep -q '"ociVersion":"1.0.2"' $b/config.json && echo "ok 1 - version rewritten" || echo "not ok 1 - version"
        grep -q "unified=$EXPECT_UNIFIED" $b/seen && echo "ok 2 - unified mount as expected" || echo "not ok 2 - $(cat $b/seen)"
        rm -rf $b; echo "1..2"
        """))
    t.chmod(0o755)
    fake = tmp_path / "crun"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        [ "$1" = --version ] && { echo "crun version 1.8.1"; exit 0; }
        grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo && echo unified=yes || echo unified=no
        """))
    fake.chmod(0o755)
    expect = "no" if run.hybrid_v2_has_controllers() else ("yes" if os.path.ismount(run.UNIFIED) else "no")
    out_json = tmp_path / "r.json"
    p = subprocess.run([sys.executable, RUN_PY, str(suite), "-r", str(fake), "--json", str(out_json), "-q",
                        "--expected", str(tmp_path / "none.txt"), "--compare", "none"],
                       env=dict(os.environ, EXPECT_UNIFIED=expect), capture_output=True, text=True, timeout=60)
    report = json.loads(out_json.read_text())
    assert p.returncode == 0, p.stdout + json.dumps(report["results"])
    assert report["results"]["crun"]["ver"]["ok"] == 2
    assert any("ociVersion" in w for w in report["runtimes"]["crun"]["workarounds"])
