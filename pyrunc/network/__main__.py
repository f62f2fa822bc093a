"""`python -m pyrunc.network up|down|show|ls [options]`.

As OCI hooks, `up` (createRuntime) and `down` (poststop) read the container
state JSON from stdin: `up` needs its id and pid (the namespace is
/proc/<pid>/ns/net), `down` only its id.  Without stdin state (a terminal),
`--id` and `--netns` say the same by hand.
"""
import json
import sys

USAGE_ACTIONS = ("up", "down", "show", "ls")


def parse_args(argv):
    import argparse

    from . import DEFAULT_BRIDGE, DEFAULT_SUBNET

    p = argparse.ArgumentParser(prog="python -m pyrunc.network",
                                description="pyrunc bridge networking (OCI createRuntime/poststop hooks)")
    p.add_argument("action", choices=USAGE_ACTIONS)
    p.add_argument("--bridge", default=DEFAULT_BRIDGE, help="bridge name (default %(default)s)")
    p.add_argument("--subnet", default=DEFAULT_SUBNET, help="IPv4 CIDR; the bridge gets the first address")
    p.add_argument("--state-dir", help="lock and leases (default /run/pyrunc-net/<bridge>)")
    p.add_argument("--publish", "-p", action="append", default=[], metavar="HOST:CONTAINER[/PROTO]",
                   help="publish a container port on the host (nftables)")
    p.add_argument("--nat", action="store_true", help="masquerade the container's outbound traffic (nftables)")
    p.add_argument("--keep-bridge", action="store_true", help="keep the bridge when the last container leaves")
    p.add_argument("--id", dest="cid", help="container id (default: from the state on stdin)")
    p.add_argument("--netns", help="network namespace path (default: /proc/<state pid>/ns/net)")
    return p.parse_args(argv)


def read_state(stream):
    """The OCI state document a hook gets on stdin ({} when none)."""
    if stream is None or stream.isatty():
        return {}
    data = stream.read()
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise SystemExit("pyrunc-network: stdin: container state is not JSON: %s" % e)
    if not isinstance(doc, dict):
        raise SystemExit("pyrunc-network: stdin: container state is not a JSON object")
    return doc


def container_id(ns, state):
    cid = ns.cid or state.get("id")
    if not cid or not isinstance(cid, str):
        raise SystemExit("pyrunc-network: no container id: give --id or the state JSON on stdin")
    return cid


def netns_path(ns, state):
    if ns.netns:
        return ns.netns, None
    pid = state.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise SystemExit("pyrunc-network: state.pid: %r is not a running process (give --netns)" % (pid,))
    return "/proc/%d/ns/net" % pid, pid


def main(argv=None, stdin=None):
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    from .bridge import list_leases, setup, show, teardown
    from .ipam import NetworkError

    try:
        if ns.action == "ls":
            for lease in list_leases(ns.bridge, ns.state_dir):
                print("%s\t%s\t%s" % (lease.get("id"), lease.get("address"), lease.get("veth")))
            return 0
        given = ns.cid and (ns.netns or ns.action != "up")
        state = {} if given else read_state(sys.stdin if stdin is None else stdin)
        cid = container_id(ns, state)
        if ns.action == "up":
            path, pid = netns_path(ns, state)
            address = setup(cid, path, bridge=ns.bridge, subnet=ns.subnet, state_dir=ns.state_dir,
                            publish=ns.publish, nat=ns.nat, keep_bridge=ns.keep_bridge, pid=pid)
            print(address)
        elif ns.action == "down":
            teardown(cid, bridge=ns.bridge, state_dir=ns.state_dir, keep_bridge=ns.keep_bridge)
        else:
            lease = show(cid, ns.bridge, ns.state_dir)
            if lease is None:
                sys.stderr.write("pyrunc-network: %s: no lease\n" % cid)
                return 1
            print(json.dumps(lease, sort_keys=True))
    except (NetworkError, OSError) as e:
        sys.stderr.write("pyrunc-network: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
