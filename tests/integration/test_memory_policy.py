"""linux.memoryPolicy (runtime-spec 1.3): set_mempolicy(2) in the init and
in an exec'd process, seen from inside in /proc/self/numa_maps (each
mapping shows the policy in force; this host has node 0 only)."""
import os

import pytest

from conftest import needs_root

pytestmark = needs_root


def policies(numa_maps):
    """The policy column of every mapping."""
    return {line.split()[1] for line in numa_maps.splitlines() if line.strip()}


def set_policy(bundle, **mp):
    bundle.update(lambda c: c["linux"].update(memoryPolicy=mp))


@pytest.mark.parametrize("mp,shown", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
    ({"mode": "MPOL_DEFAULT"}, "default"),
])
def test_policy_seen_from_inside(bundle, runtime, mp, shown):
    set_policy(bundle, **mp)
    bundle.set_args("cat", "/proc/self/numa_maps")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert policies(p.stdout) == {shown}, p.stdout


def test_exec_gets_the_policy(bundle, runtime):
    set_policy(bundle, mode="MPOL_INTERLEAVE", nodes="0")
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    p = runtime("exec", cid, "cat", "/proc/self/numa_maps")
    assert policies(p.stdout) == {"interleave:0"}, p.stdout


@pytest.mark.parametrize("mp,message", [
    ({"mode": "MPOL_BIND", "nodes": "0,5"}, "linux.memoryPolicy.nodes: node 5 does not exist"),
    ({"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes: invalid node list"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes"),
    ({"nodes": "0"}, "linux.memoryPolicy.mode: is required"),
    # Refused by the kernel, in the init: create fails all the same.
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy: set_mempolicy(MPOL_BIND, nodes '0'): Invalid argument"),
])
def test_bad_policy_is_an_error(bundle, runtime, mp, message):
    set_policy(bundle, **mp)
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1 and message in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not os.path.exists(os.path.join(runtime.root, cid))
