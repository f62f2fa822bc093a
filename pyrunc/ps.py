"""`ps`: the container's processes (from its cgroup), as `ps` prints them
(table) or as a JSON list of host pids."""
from .errors import PyruncError


def ps(c, out, fmt="table", ps_args=()):
    """Write container `c`'s processes to `out` in format `fmt` ("table":
    the lines of `ps ps_args` (default -ef) whose PID is the container's;
    "json": the host pids)."""
    from .jsonio import dumps

    pids = c.pids()
    if fmt == "json":
        out.write(dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise PyruncError("invalid format option")
    import subprocess

    try:
        text = subprocess.run(["ps"] + list(ps_args or ["-ef"]), stdout=subprocess.PIPE, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyruncError("ps: %s" % e) from None
    lines = text.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise PyruncError("couldn't find PID field in ps output") from None
    wanted = set(pids)
    out.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            out.write(line + "\n")
    return 0
