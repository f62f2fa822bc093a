"""Bridge networking for bundles run by hand: an IP per container.

Used as OCI hooks (`python -m pyrunc.network up|down`, added to a config by
`add_bridge_hooks`) or from Python (`setup`, `teardown`).  Importing this
package is cheap: pyroute2 (~150 ms) is imported only when a link is made.
"""
import sys

DEFAULT_BRIDGE = "pyrunc0"
DEFAULT_SUBNET = "10.0.0.0/24"
HOOK_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def setup(container_id, netns_path, bridge=DEFAULT_BRIDGE, subnet=DEFAULT_SUBNET, state_dir=None,
          publish=(), nat=False, keep_bridge=False, pid=None, warn=None):
    """Attach the network namespace at `netns_path` to `bridge` (created if
    missing): a veth pair, `eth0` inside with an address from the subnet,
    `lo` up, a default route via the bridge.  Returns the address (a str).

    `publish`: "HOST:CONTAINER[/tcp|udp]" strings; with `nat` the container's
    outbound traffic is masqueraded (both through nftables).  `state_dir`
    holds the lock and the leases (default /run/pyrunc-net/<bridge>)."""
    from .bridge import setup as _setup

    return _setup(container_id, netns_path, bridge=bridge, subnet=subnet, state_dir=state_dir,
                  publish=publish, nat=nat, keep_bridge=keep_bridge, pid=pid, warn=warn)


def teardown(container_id, bridge=DEFAULT_BRIDGE, state_dir=None, keep_bridge=False, warn=None):
    """Remove the container's veth, nft elements and lease, and the bridge
    when it was the last one (unless keep_bridge).  Returns whether a lease
    existed.  Safe to call twice and after the container's namespace died."""
    from .bridge import teardown as _teardown

    return _teardown(container_id, bridge=bridge, state_dir=state_dir, keep_bridge=keep_bridge, warn=warn)


def hook_args(action, bridge=DEFAULT_BRIDGE, subnet=DEFAULT_SUBNET, state_dir=None, publish=(),
              nat=False, keep_bridge=False, python=None):
    """argv of one hook.  The interpreter runs with -I (no environment, no
    cwd on sys.path) but with `site`, which is what finds the package and
    pyroute2 in the interpreter's own (virtual) environment.  argv[0] is the
    absolute path too: Python locates its venv from argv[0]."""
    python = python or sys.executable
    args = [python, "-I", "-m", "pyrunc.network", action]
    if bridge != DEFAULT_BRIDGE:
        args += ["--bridge", bridge]
    if state_dir:
        args += ["--state-dir", state_dir]
    if keep_bridge:
        args.append("--keep-bridge")
    if action == "up":
        if subnet != DEFAULT_SUBNET:
            args += ["--subnet", subnet]
        for p in publish:
            args += ["--publish", str(p)]
        if nat:
            args.append("--nat")
    return args


def add_bridge_hooks(config, bridge=DEFAULT_BRIDGE, subnet=DEFAULT_SUBNET, state_dir=None, publish=(),
                     nat=False, keep_bridge=False, python=None, timeout=None):
    """Append the createRuntime (up) and poststop (down) hooks to an OCI
    config dict; returns the dict."""
    hooks = config.setdefault("hooks", {})
    for kind, action in (("createRuntime", "up"), ("poststop", "down")):
        args = hook_args(action, bridge=bridge, subnet=subnet, state_dir=state_dir, publish=publish,
                         nat=nat, keep_bridge=keep_bridge, python=python)
        hook = {"path": args[0], "args": args, "env": [HOOK_PATH_ENV]}
        if timeout:
            hook["timeout"] = int(timeout)
        hooks.setdefault(kind, []).append(hook)
    return config
