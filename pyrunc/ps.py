"""`ps`: the container's processes (from its cgroup), as `ps` prints them
(table) or as a JSON list of host pids."""
import sys

from .errors import PyruncError


def ps_cli(g, ns):
    from .container import Container
    from .jsonio import dumps

    c = Container.load(ns.args[0], g.root, lock=False)
    pids = c.pids()
    if ns.format == "json":
        sys.stdout.write(dumps(pids) + "\n")
        return 0
    if ns.format != "table":
        raise PyruncError("invalid format option")
    import subprocess

    ps_args = ns.args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps"] + ps_args, stdout=subprocess.PIPE, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyruncError("ps: %s" % e) from None
    lines = out.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise PyruncError("couldn't find PID field in ps output") from None
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
