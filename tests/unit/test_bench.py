"""bench/: statistics, report, import-time parsing, the rusage helper, the
CPU accounting of orphans, and (as root, with the peers) a quick real run."""
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_DIR = os.path.join(REPO, "bench")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH_DIR, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)
    spec.loader.exec_module(mod)
    return mod


bench = _load("bench")
imports = _load("imports")


def test_summarize_median_and_deciles():
    s = bench.summarize(list(range(1, 12)))  # 1..11
    assert s["median"] == 6
    assert s["p10"] == pytest.approx(2.0)
    assert s["p90"] == pytest.approx(10.0)
    assert s["n"] == 11
    assert bench.summarize([4.0]) == {"median": 4.0, "p10": 4.0, "p90": 4.0, "n": 1}


def _raw(py, peer):
    samples = lambda v: [{"wall_ms": v, "cpu_ms": v / 2, "maxrss_kb": 1024 * v, "orphans": 0}] * 3
    return {
        "runtimes": ["pyrunc", "runc"], "rounds": 3, "burst_size": 0, "floor_python": "python3",
        "samples": {"run": {"pyrunc": samples(py), "runc": samples(peer)},
                    "floor": [{"wall_ms": 5.0, "cpu_ms": 4.0, "maxrss_kb": 8192, "orphans": 0}]},
        "meta": {"host": "h", "cgroups_note": "c", "versions": {}, "namespaces": ["pid"]},
    }


def test_table_has_ratio_of_medians():
    lines = bench.table_lines(_raw(30.0, 10.0))
    assert "pyrunc/runc" in lines[0]
    wall = [l for l in lines if l.startswith("run /bin/true, wall")][0]
    cpu = [l for l in lines if l.startswith("run /bin/true, CPU")][0]
    assert wall.split()[-1] == "3.00" and cpu.split()[-1] == "3.00"
    rss = [l for l in lines if l.startswith("peak RSS, run")][0]
    assert rss.split()[-1] == "3.00"


def test_markdown_table_shape():
    lines = bench.table_lines(_raw(10.0, 20.0), markdown=True)
    assert lines[0].startswith("| measure") and lines[1].startswith("|---|")
    ncols = lines[0].count("|")
    assert all(l.count("|") == ncols for l in lines)
    assert lines[2].endswith("| 0.50 |")


def test_floor_line_relates_run_to_floor():
    text = "\n".join(bench.floor_lines(_raw(20.0, 10.0)))
    assert "CPU 4.0 ms" in text and "RSS 8.0 MiB" in text
    assert "= 2.5 x the floor" in text  # run CPU 10 ms / floor 4 ms


def test_parse_importtime_nesting_and_chain():
    err = textwrap.dedent("""\
        import time: self [us] | cumulative | imported package
        import time:        10 |         10 |     _sre
        import time:        20 |         30 |   re
        import time:         5 |          5 |   x
        import time:       100 |        135 | pkg.cli
        import time:         7 |          7 | other
        Traceback: not an import line
        """)
    nodes = imports.parse_importtime(err)
    assert [n.name for n in nodes] == ["pkg.cli", "other"]
    assert [c.name for c in nodes[0].children] == ["re", "x"]
    assert imports.chains_to(nodes, "re") == ("pkg.cli", "re")
    assert imports.chains_to(nodes, "_sre") == ("pkg.cli", "re", "_sre")
    assert imports.chains_to(nodes, "subprocess") is None
    assert [n.name for n in imports.top_modules(nodes, 2)] == ["pkg.cli", "re"]


def test_parse_importtime_real_interpreter():
    # json.decoder imports re: the chain must name json first.
    r = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", "import json"],
                       capture_output=True, text=True, check=True)
    nodes = imports.parse_importtime(r.stderr)
    chain = imports.chains_to(nodes, "re")
    assert chain[0] == "json" and chain[-1] == "re", chain


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: the rusage helper cannot be built")
    exe, why = bench.build_helper(str(tmp_path_factory.mktemp("helper")))
    assert exe, why
    return exe


def test_helper_reports_exit_code_and_a_small_peak_rss(tmp_path, helper):
    direct = bench.Spawner(str(tmp_path))
    via = bench.Spawner(str(tmp_path), helper)
    assert via.call(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]).rc == 3
    c = via.call(["/bin/sh", "-c", "echo out; echo err >&2"])
    assert (c.rc, c.out, c.err) == (0, "out\n", "err\n")
    small = via.call(["/bin/true"]).maxrss_kb
    polluted = direct.call(["/bin/true"]).maxrss_kb
    # Spawned straight from this (large) Python process, /bin/true's ru_maxrss
    # carries our RSS; forked from the helper it does not.
    assert small < 4096 < polluted, (small, polluted)


def test_orphan_cpu_is_counted_by_the_subreaper(tmp_path):
    """A runtime that leaves a busy orphan behind is not let off its CPU."""
    script = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, %r)
        import bench
        bench.become_subreaper()
        sp = bench.Spawner(%r)
        c = sp.call(["/bin/sh", "-c",
                     "(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done) & echo $!"])
        orphan_cpu = bench.wait_gone(int(c.out))
        print(json.dumps({"parent": c.cpu_s, "orphan": orphan_cpu}))
        """) % (BENCH_DIR, str(tmp_path))
    r = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["orphan"] > 0.05 > got["parent"], got


def _pyrunc():
    exe = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    return exe if os.access(exe, os.X_OK) else shutil.which("pyrunc")


def test_quick_bench_run_is_clean(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("bench quick run: needs root (real containers)")
    missing = [n for n in ("runc", "crun", "unshare", "cc") if not shutil.which(n)]
    if missing or not _pyrunc():
        pytest.skip("bench quick run: missing %s" % ", ".join(missing + ([] if _pyrunc() else ["pyrunc"])))
    out = tmp_path / "raw.json"
    r = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "bench.py"), "--pyrunc", _pyrunc(),
                        "--quick", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "cleanup: no containers, mounts, cgroups or processes left" in r.stdout
    doc = json.loads(out.read_text())
    host = doc["blocks"][0]
    assert host["view"] == "host" and "HOST VIEW" in host["meta"]["cgroups_note"]
    peers = set(host["runtimes"])
    assert {"pyrunc", "runc"} <= peers
    for scen in ("run", "lifecycle", "state", "burst", "kill", "parallel"):
        assert set(host["samples"][scen]) == peers, scen
        assert all(len(v) >= 1 for v in host["samples"][scen].values())
    assert len(host["samples"]["run"]["pyrunc"]) == 3
    # Every container's init ran and was counted: no zero CPU anywhere.
    assert all(s["cpu_ms"] > 0 for v in host["samples"]["lifecycle"].values() for s in v)
    if "crun" not in peers:  # a hybrid host: crun in its own block, the private view
        private = doc["blocks"][1]
        assert private["view"] == "private" and set(private["runtimes"]) == {"pyrunc", "crun"}
        assert set(private["samples"]["run"]) == {"pyrunc", "crun"}
    assert "Per verb" in r.stdout and "python floor" in r.stdout
    engines = doc["engines"]
    assert not engines["problems"], engines
    if not engines["notes"]:
        assert set(engines["samples"]) == {"ctr run --rm", "podman run --rm"}
    workdir = host["meta"]["workdir"]
    assert not os.path.exists(workdir)
    assert not glob.glob("/sys/fs/cgroup/*/%s" % os.path.basename(workdir))


def test_update_readme_rewrites_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n%s\nold table\n%s\nafter\n" % (bench.README_BEGIN, bench.README_END))
    raw = dict(_raw(30.0, 10.0), view="host", rounds=3)
    raw["meta"].update(date="D", load_before="1", load_after="2")
    bench.update_readme(str(readme), bench.readme_block([raw], None))
    text = readme.read_text()
    assert text.startswith("intro\n%s\n" % bench.README_BEGIN) and text.endswith("%s\nafter\n" % bench.README_END)
    assert "old table" not in text and "| run /bin/true, wall [ms] |" in text and "python floor" in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        bench.update_readme(str(readme), ["x"])
