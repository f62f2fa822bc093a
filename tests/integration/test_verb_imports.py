"""The quick verbs (state, start, kill, delete, list) never import `os`:
its import costs ~1 ms of CPU, as much as the rest of such a verb after
the interpreter is up (pyrunc.lazyos stands in).  Each verb runs on a real
container exactly as the launcher runs it (python -I -S -c BOOT), under
-X importtime, which lists every module the verb imported."""
import os
import subprocess
import sys
import time

import pytest

from conftest import PYRUNC, is_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bench"))
import imports  # noqa: E402  (bench/imports.py: the launcher's BOOT code, the importtime parser)

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root (real containers)")
HEAVY = ("os", "posixpath", "_collections_abc", "re", "enum", "subprocess")


def _imported(runtime, *args):
    python = os.path.join(os.path.dirname(PYRUNC), "python3")
    argv = [python, "-X", "importtime", "-I", "-S", "-c", imports.launcher_boot(), os.path.realpath(PYRUNC),
            "--root", runtime.root, *args]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}


def test_quick_verbs_import_no_os(bundle, runtime):
    bundle.set_args("sleep", "60")
    cid = runtime.new_id()
    runtime("create", "-b", bundle.path, cid)
    seen = {"state": _imported(runtime, "state", cid), "start": _imported(runtime, "start", cid),
            "list": _imported(runtime, "list"), "kill": _imported(runtime, "kill", cid, "KILL")}
    for _ in range(200):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    seen["delete"] = _imported(runtime, "delete", cid)
    for verb, modules in seen.items():
        assert "pyrunc.container" in modules, verb  # the verb ran through the package
        assert not modules & set(HEAVY), (verb, sorted(modules & set(HEAVY)))
