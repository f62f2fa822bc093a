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


def test_nodes_the_host_lacks_are_dropped_as_the_kernel_does(bundle, runtime):
    """set_mempolicy keeps the nodes the host has: "0,5" on a one-node host
    binds to node 0 (runc passes it through the same way)."""
    set_policy(bundle, mode="MPOL_BIND", nodes="0,5")
    bundle.set_args("cat", "/proc/self/numa_maps")
    p = runtime("run", "-b", bundle.path, runtime.new_id())
    assert policies(p.stdout) == {"bind:0"}, p.stdout


@pytest.mark.parametrize("mode", ["init", "exec"])
def test_policy_set_before_a_notify_filter_that_refuses_it(bundle, runtime, tmp_path, mode):
    """A NOTIFY filter goes in before the process is handed over (runc's
    order), so what the runtime does after it runs under it: set_mempolicy
    comes first (as in runc), or a profile refusing it would fail
    create/exec.  The exec'd process gets the container's filter."""
    from test_seccomp_container import Agent

    path = str(tmp_path / "agent.sock")
    agent = Agent(path, lambda n: ("continue", None), connections=2 if mode == "exec" else 1)
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
           "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                        {"names": ["set_mempolicy"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    def cfg(c):
        c["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}
        c["linux"]["seccomp"] = sec
    bundle.update(cfg)
    cid = runtime.new_id()
    try:
        if mode == "init":
            bundle.set_args("cat", "/proc/self/numa_maps")
            p = runtime("run", "-b", bundle.path, cid, check=False)
        else:
            bundle.set_args("sleep", "1000")
            runtime("run", "-d", "-b", bundle.path, cid)
            p = runtime("exec", cid, "cat", "/proc/self/numa_maps", check=False)
            runtime("delete", "--force", cid)
    finally:
        agent.stop()
    assert p.returncode == 0, p.stderr
    assert policies(p.stdout) == {"interleave:0"}, p.stdout


@pytest.mark.parametrize("mp,message", [
    ({"mode": "MPOL_BIND", "nodes": "5"}, "linux.memoryPolicy.nodes: none of nodes 5 exists on this host"),
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


def test_every_claimed_mode_and_flag_is_applied(bundle, runtime):
    """`features` claims nothing untested: each mode (with node 0 where it
    takes nodes) and each flag (on MPOL_BIND) runs, seen in numa_maps."""
    import json

    from pyrunc.security.process_attrs import MPOL_NO_NODES

    claims = json.loads(runtime("features").stdout)["linux"]["memoryPolicy"]
    cases = [dict(mode=m) if m in MPOL_NO_NODES else dict(mode=m, nodes="0") for m in claims["modes"]]
    cases += [dict(mode="MPOL_BIND", nodes="0", flags=[f]) for f in claims["flags"]]
    bundle.set_args("cat", "/proc/self/numa_maps")
    for mp in cases:
        set_policy(bundle, **mp)
        p = runtime("run", "-b", bundle.path, runtime.new_id(), check=False)
        assert p.returncode == 0, (mp, p.stderr)
        assert policies(p.stdout), (mp, p.stdout)
