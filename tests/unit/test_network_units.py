"""Network component units: no root, no links (IPAM, lock, owners, hook
shape, argument parsing, import cost)."""
import json
import os
import subprocess
import sys
import threading

import pytest

from pyrunc.network import DEFAULT_BRIDGE, add_bridge_hooks, hook_args
from pyrunc.network.bridge import check_bridge_name, veth_name
from pyrunc.network.ipam import (Leases, Lock, NetworkError, Subnet, owner_alive, owner_of, pick_address,
                                 process_start_time)
from pyrunc.network.nat import Publish, table_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code):
    """A fresh interpreter as the hooks and the launcher get (-I)."""
    return subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/")


# -- import cost ------------------------------------------------------------------

def test_importing_the_package_and_its_modules_does_not_import_pyroute2():
    p = run_python("import sys, pyrunc.network, pyrunc.network.bridge, pyrunc.network.ipam, "
                   "pyrunc.network.links, pyrunc.network.nat, pyrunc.network.__main__\n"
                   "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'subprocess', 'argparse'))\n"
                   "print(','.join(bad))")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def test_spec_with_network_hooks_and_state_do_not_import_pyroute2(tmp_path):
    code = ("import sys\nfrom pyrunc.cli import main\n"
            "try:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('pyroute2' in sys.modules)")
    spec = run_python(code % (["spec", "--bundle", str(tmp_path), "--network", "bridge"],))
    assert spec.stdout.strip().splitlines()[-1] == "False", spec.stdout + spec.stderr
    assert "createRuntime" in json.loads((tmp_path / "config.json").read_text())["hooks"]
    state = run_python(code % (["--root", str(tmp_path / "root"), "state", "nosuch"],))
    assert state.stdout.strip().splitlines()[-1] == "False", state.stdout + state.stderr


# -- hooks ------------------------------------------------------------------------

def test_add_bridge_hooks_appends_up_and_down_after_existing_hooks():
    cfg = {"hooks": {"poststop": [{"path": "/bin/true"}]}}
    add_bridge_hooks(cfg, python="/opt/venv/bin/python3")
    up, = cfg["hooks"]["createRuntime"]
    first, down = cfg["hooks"]["poststop"]
    assert first == {"path": "/bin/true"}
    assert up["path"] == "/opt/venv/bin/python3"
    assert up["args"] == ["/opt/venv/bin/python3", "-I", "-m", "pyrunc.network", "up"]
    assert down["args"] == ["/opt/venv/bin/python3", "-I", "-m", "pyrunc.network", "down"]
    assert all(e.startswith("PATH=/") for e in up["env"])


def test_hook_args_carry_every_option_to_the_right_action():
    kw = dict(bridge="br-x", subnet="10.9.0.0/16", state_dir="/s", publish=["8080:80/tcp"], nat=True,
              keep_bridge=True, python="/p")
    up = hook_args("up", **kw)
    down = hook_args("down", **kw)
    assert up == ["/p", "-I", "-m", "pyrunc.network", "up", "--bridge", "br-x", "--state-dir", "/s",
                  "--keep-bridge", "--subnet", "10.9.0.0/16", "--publish", "8080:80/tcp", "--nat"]
    # teardown needs only what finds the lease and the bridge
    assert down == ["/p", "-I", "-m", "pyrunc.network", "down", "--bridge", "br-x", "--state-dir", "/s",
                    "--keep-bridge"]


def test_hook_config_validates_against_the_schema():
    from pyrunc.defaults import default_spec
    from pyrunc.validate import validate_config

    cfg = add_bridge_hooks(default_spec(), bridge="br1", publish=["80:80"], nat=True, timeout=30)
    validate_config(cfg)  # raises ConfigError naming the field
    assert cfg["hooks"]["createRuntime"][0]["timeout"] == 30


def test_default_hook_interpreter_finds_the_package_and_pyroute2():
    """The hook's argv runs under -I (no env, no cwd): `site` must still find
    pyrunc and pyroute2 from the interpreter's own environment."""
    args = hook_args("up")
    p = subprocess.run([args[0], "-I", "-c", "import pyrunc.network.__main__, pyroute2; print('ok')"],
                       capture_output=True, text=True, cwd="/", env={})
    assert p.stdout.strip() == "ok", p.stderr


def test_cli_usage_errors_are_one_line():
    p = subprocess.run([sys.executable, "-I", "-m", "pyrunc.network", "up", "--id", "x", "--subnet", "10.0.0.0/33",
                        "--netns", "/proc/self/ns/net"], capture_output=True, text=True, cwd="/")
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "--subnet" in p.stderr


def test_up_without_state_or_pid_says_which_field():
    p = subprocess.run([sys.executable, "-I", "-m", "pyrunc.network", "up"], input='{"id": "c1", "pid": 0}',
                       capture_output=True, text=True, cwd="/")
    assert p.returncode != 0 and "state.pid" in p.stderr


# -- names and parsing ------------------------------------------------------------

def test_veth_name_is_stable_short_and_distinct():
    names = {veth_name("c%d" % i) for i in range(1000)}
    assert len(names) == 1000
    assert all(len(n) <= 15 and n.startswith("pr-") for n in names)
    assert veth_name("abc") == veth_name("abc")
    assert len(veth_name("x" * 1024)) == 15


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b", ".."])
def test_bad_bridge_names(name):
    with pytest.raises(NetworkError, match="--bridge"):
        check_bridge_name(name)
    assert check_bridge_name(DEFAULT_BRIDGE) == DEFAULT_BRIDGE


def test_subnet_gateway_and_hosts():
    s = Subnet("10.0.0.0/24")
    hosts = list(s.hosts())
    assert s.gateway == "10.0.0.1"
    assert hosts[0] == "10.0.0.2" and hosts[-1] == "10.0.0.254" and len(hosts) == 253
    assert "10.0.0.77" in s and "10.0.1.1" not in s
    assert list(Subnet("192.168.5.4/30").hosts()) == ["192.168.5.6"]


@pytest.mark.parametrize("text", ["10.0.0.0/33", "10.0.0.1/24", "10.0.0/24", "x/24", "10.0.0.0/31", "256.0.0.0/8"])
def test_bad_subnets(text):
    with pytest.raises(NetworkError, match="--subnet"):
        Subnet(text)


def test_publish_parsing():
    assert str(Publish("8080:80")) == "8080:80/tcp"
    assert str(Publish("53:5353/udp")) == "53:5353/udp"
    assert str(Publish("9000")) == "9000:9000/tcp"
    for bad in ("x:80", "80:0", "70000:80", "80:80/sctp"):
        with pytest.raises(NetworkError, match="--publish"):
            Publish(bad)
    assert table_name("br-0.x") == "pyrunc_br_0_x"


# -- owners -----------------------------------------------------------------------

def test_owner_by_pid_lives_while_its_start_time_matches():
    me = owner_of("/proc/%d/ns/net" % os.getpid())
    assert me["pid"] == os.getpid() and me["start"] == process_start_time(os.getpid())
    assert owner_alive(me)
    assert not owner_alive(dict(me, start=me["start"] - 1))  # the pid was reused
    assert not owner_alive(dict(me, netns=[0, 1]))  # same pid, another netns


def test_owner_of_a_dead_process_is_gone():
    p = subprocess.Popen(["sleep", "100"])
    owner = owner_of("/proc/%d/ns/net" % p.pid)
    assert owner_alive(owner)
    p.kill()
    p.wait()
    assert not owner_alive(owner)


def test_owner_by_path_lives_while_the_path_names_the_same_namespace(tmp_path):
    f = tmp_path / "ns"
    f.write_text("")
    owner = owner_of(str(f))
    assert "pid" not in owner and owner_alive(owner)
    f.unlink()
    f.write_text("")  # a new inode at the same path
    assert not owner_alive(owner) or os.stat(f).st_ino == owner["netns"][1]
    f.unlink()
    assert not owner_alive(owner)


# -- leases -----------------------------------------------------------------------

def test_pick_address_lowest_free_and_refuses_a_second_lease():
    s = Subnet("10.0.0.0/29")
    live = [{"id": "a", "address": "10.0.0.2"}, {"id": "b", "address": "10.0.0.4"}]
    assert pick_address(s, live, "c") == "10.0.0.3"
    with pytest.raises(NetworkError, match="already has address 10.0.0.2"):
        pick_address(s, live, "a")
    full = [{"id": str(i), "address": ip} for i, ip in enumerate(s.hosts())]
    with pytest.raises(NetworkError, match="no free address"):
        pick_address(s, full, "z")


def test_stale_leases_are_split_off_and_removed(tmp_path):
    leases = Leases(str(tmp_path))
    me = owner_of("/proc/%d/ns/net" % os.getpid())
    leases.write(dict(me, id="live", address="10.0.0.2"))
    leases.write(dict(me, id="dead", address="10.0.0.3", start=1))
    with Lock(str(tmp_path)):
        live, stale = leases.split_stale()
    assert [l["id"] for l in live] == ["live"] and [l["id"] for l in stale] == ["dead"]
    assert sorted(os.listdir(tmp_path / "leases")) == ["live"]
    with pytest.raises(NetworkError, match="lease file"):
        leases.path("../x")


def test_concurrent_allocations_under_the_lock_are_distinct(tmp_path):
    """Threads (each its own open file: flock excludes them) allocate and
    write leases; no two get the same address."""
    state = str(tmp_path)
    owner = owner_of("/proc/%d/ns/net" % os.getpid())
    net = Subnet("10.0.0.0/24")
    got, errors = {}, []
    barrier = threading.Barrier(20)

    def allocate(i):
        try:
            barrier.wait()
            with Lock(state):
                leases = Leases(state)
                live, _ = leases.split_stale()
                ip = pick_address(net, live, "c%d" % i)
                leases.write(dict(owner, id="c%d" % i, address=ip))
            got[i] = ip
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=allocate, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(got.values())) == 20
    on_disk = {json.load(open(tmp_path / "leases" / n))["address"] for n in os.listdir(tmp_path / "leases")}
    assert on_disk == set(got.values())


def test_lean_pyroute2_import_gives_the_real_iproute_and_a_later_full_import_works():
    p = run_python("import sys\nfrom pyrunc.network.links import iproute_class\n"
                   "cls = iproute_class()\n"
                   "assert 'pyroute2' not in sys.modules, 'stand-in parent left behind'\n"
                   "assert 'pyroute2.ndb.main' not in sys.modules, 'the whole package was imported'\n"
                   "import pyroute2\nfrom pyroute2 import IPRoute, NDB\n"
                   "assert IPRoute is cls\nprint('ok')")
    assert p.stdout.strip() == "ok", p.stderr


def test_a_waiter_on_a_removed_lock_file_starts_over(tmp_path):
    """The last teardown removes the state dir under the lock; whoever was
    waiting must not hold a lock on the unlinked file (two holders)."""
    state = str(tmp_path / "s")
    got = {}
    first = Lock(state).__enter__()

    def waiter():
        with Lock(state) as lock:
            got["ino"] = os.fstat(lock.fd).st_ino
            got["on_disk"] = os.stat(lock.path).st_ino

    t = threading.Thread(target=waiter)
    t.start()
    t.join(0.3)
    assert t.is_alive()  # blocked on the flock
    first.remove_state_dir()
    assert not os.path.exists(state)
    first.__exit__(None, None, None)
    t.join(10)
    assert got["ino"] == got["on_disk"]  # a live lock file, not the removed one
    assert os.path.exists(os.path.join(state, "lock"))
