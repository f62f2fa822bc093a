"""The init imports, before pivot_root, every module it needs afterwards:
once the container's root is in place the host's Python library is out of
reach, and a module that is an extension (lib-dynload) rather than built
into the interpreter cannot load (Debian's python3 builds `select` in;
pyenv's and most others' do not)."""
import subprocess
import sys

CHILD = r'''
import sys
from pyrunc.child import preload
from pyrunc.spec import Spec

spec = Spec({"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"},
             "hooks": {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null; exit 4"]}]}})
preload(spec.process, spec.linux, hooks=True)
from pyrunc import hooks


class AfterPivotRoot:
    """Any import from now on fails, builtin or not, as a library import would."""
    def find_spec(self, name, path=None, target=None):
        raise ImportError("%s imported after pivot_root" % name)


sys.meta_path.insert(0, AfterPivotRoot())
print(hooks.run_one(spec.hooks.get("startContainer")[0], b"{}"))
'''


def test_start_container_hook_runs_with_only_preloaded_modules():
    p = subprocess.run([sys.executable, "-I", "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "exit status 4"


# -- both kinds, end to end on the fake kernel --------------------------------------
# preload_scenarios.py runs create (+ start) and exec with a fake kernel that
# shuts the import system at the very call after which the host's library
# is out of reach (pivot_root for the init, setns into the mount namespace
# for exec), in a fresh interpreter: only what the runtime's own path
# imported is there.  A late import fails the child, which says so on the
# channel (or through the exec fifo at start): the script exits non-zero.

import os  # noqa: E402

import pytest  # noqa: E402

SCENARIOS = os.path.join(os.path.dirname(__file__), "preload_scenarios.py")


@pytest.mark.parametrize("kind", ["init", "exec-direct", "exec-two-stage"])
def test_nothing_is_imported_after_the_switch_to_the_container(kind, tmp_path):
    p = subprocess.run([sys.executable, "-I", SCENARIOS, kind, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "execve"


_ATTRS = {
    "oomScoreAdj": ("process", {"oomScoreAdj": 100}),
    "scheduler": ("process", {"scheduler": {"policy": "SCHED_OTHER", "nice": 1}}),
    "ioPriority": ("process", {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4}}),
    "execCPUAffinity": ("process", {"execCPUAffinity": {"final": "0"}}),
    "personality": ("linux", {"personality": {"domain": "LINUX"}}),
    "memoryPolicy": ("linux", {"memoryPolicy": {"mode": "MPOL_DEFAULT"}}),
}


@pytest.mark.parametrize("field", sorted(_ATTRS))
def test_process_attrs_needed_only_when_set(field):
    """security.process_attrs is imported (and preloaded before pivot_root)
    only for a process that sets one of its attributes: a plain exec or init
    skips the module; every attribute it applies makes it needed."""
    from pyrunc.process import has_process_attrs
    from pyrunc.spec import Spec

    plain = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
             "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "linux": {}}
    spec = Spec(plain)
    assert not has_process_attrs(spec.process, spec.linux)
    section, extra = _ATTRS[field]
    doc = {**plain, section: {**plain[section], **extra}}
    spec = Spec(doc)
    assert has_process_attrs(spec.process, spec.linux), field
