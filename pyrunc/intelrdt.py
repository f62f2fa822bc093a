"""linux.intelRdt: the container's resctrl group (runtime-spec 1.3).

create finds resctrl, makes or checks the CTRL_MON group (closID, else the
container id; "/" is the root group), writes the schemata, makes the MON
group (enableMonitoring), and later writes the init's pid to their
`tasks`.  What delete must remove is recorded in state.json as soon as it
exists, so a create killed half-way is still cleaned up by delete.

Imported only when a config has intelRdt."""
import os

from .errors import ConfigError, PyruncError

FIELD = "linux.intelRdt"
RESCTRL_MOUNT_POINT = "/sys/fs/resctrl"
# Names resctrl keeps for itself at the top of the filesystem.
RESERVED_NAMES = frozenset(("info", "mon_groups", "mon_data"))


def find_root(mountinfo: str = "/proc/self/mountinfo") -> "str | None":
    """The mount point of a `resctrl` filesystem in the runtime's mount
    namespace.  Failing that, the kernel's conventional mount point if it
    holds `info/` (the directory resctrl always has): on hosts without
    RDT the kernel has no resctrl at all, and the tests put a stand-in
    filesystem there, in a mount namespace of their own."""
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "resctrl":
                return _unescape(fields[4])
    if os.path.isdir(os.path.join(RESCTRL_MOUNT_POINT, "info")):
        return RESCTRL_MOUNT_POINT
    return None


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return path.encode().decode("unicode_escape").encode("latin-1").decode() if "\\" in path else path


class Group:
    """The container's resctrl groups as create left them (state.json's
    "intel_rdt"): where the pid goes, and what delete removes."""

    __slots__ = ("path", "mon_path", "owned")

    def __init__(self, path: str, mon_path: "str | None" = None, owned: "list[str] | None" = None):
        self.path = path
        self.mon_path = mon_path
        self.owned = owned if owned is not None else []  # removed by delete, in this order

    def to_dict(self) -> dict:
        return {"path": self.path, "mon_path": self.mon_path, "owned": list(self.owned)}

    @classmethod
    def from_dict(cls, d: dict) -> "Group":
        return cls(d["path"], d.get("mon_path"), list(d.get("owned") or ()))


def check(rdt) -> None:
    """What can be refused before anything is made."""
    if find_root() is None:
        raise ConfigError("%s: Intel RDT is not available on this host (resctrl is not mounted)" % FIELD)
    if rdt.clos_id is not None and rdt.clos_id != "/":
        name = rdt.clos_id
        if not name or "/" in name or name in (".", "..") or name in RESERVED_NAMES:
            raise ConfigError("%s.closID: %r is not a resctrl group name" % (FIELD, name))
    for field, line in schema_lines(rdt):
        if "\n" in line:
            raise ConfigError("%s.%s: must not contain a newline" % (FIELD, field))


def schema_lines(rdt) -> "list[tuple[str, str]]":
    """(field, line) in the order the spec asks them written: l3CacheSchema,
    memBwSchema, then each of schemata."""
    lines = []
    if rdt.l3_cache_schema:
        lines.append(("l3CacheSchema", rdt.l3_cache_schema))
    if rdt.mem_bw_schema:
        lines.append(("memBwSchema", rdt.mem_bw_schema))
    lines.extend(("schemata[%d]" % i, s) for i, s in enumerate(rdt.schemata))
    return lines


def prepare(rdt, container_id: str, record, intend=None) -> Group:
    """Make or check the groups; record(group) is called each time the
    set of owned directories grows (the caller saves the state), and
    intend(path) before each directory delete would remove is made
    (the caller's write-ahead journal: a kill between the mkdir and the
    record leaves nothing behind)."""
    root = find_root()
    if root is None:
        raise ConfigError("%s: Intel RDT is not available on this host (resctrl is not mounted)" % FIELD)
    lines = schema_lines(rdt)
    group = Group(_group_path(root, rdt, container_id, bool(lines)))
    if intend is not None and rdt.clos_id is None and not os.path.isdir(group.path):
        intend(group.path)
    if _make_dir(group.path, "closID" if rdt.clos_id else ""):
        if rdt.clos_id is None:
            group.owned.append(group.path)  # only a group named after the container is ours to remove
            record(group)
        if lines:
            try:
                _write(os.path.join(group.path, "schemata"), "".join(line + "\n" for _, line in lines))
            except PyruncError:
                if rdt.clos_id is not None:
                    # Made just now and refused its schema: not left for the
                    # next create to find "with another schema".  (A group
                    # named after the container is in owned: the undo has it.)
                    _remove_quietly(group.path)
                raise
    elif lines:
        _compare_schemata(group.path, lines, rdt.clos_id or container_id)
    if rdt.enable_monitoring:
        group.mon_path = os.path.join(group.path, "mon_groups", container_id)
        if intend is not None and not os.path.isdir(group.mon_path):
            intend(group.mon_path)
        if not _make_dir(group.mon_path, "enableMonitoring"):
            raise PyruncError("%s.enableMonitoring: monitoring group %s already exists" % (FIELD, group.mon_path))
        group.owned.insert(0, group.mon_path)
        record(group)
    return group


def _remove_quietly(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _group_path(root: str, rdt, container_id: str, has_schema: bool) -> str:
    if rdt.clos_id == "/":
        return root
    if rdt.clos_id is None:
        return os.path.join(root, container_id)
    if not has_schema and not os.path.isdir(os.path.join(root, rdt.clos_id)):
        raise PyruncError("%s.closID: group %r does not exist in %s (with no schema to write, "
                          "it must be made beforehand)" % (FIELD, rdt.clos_id, root))
    return os.path.join(root, rdt.clos_id)


def _make_dir(path: str, field: str) -> bool:
    """mkdir; False if it already exists."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    except OSError as e:
        raise PyruncError("%s%s: mkdir %s: %s%s" % (FIELD, "." + field if field else "", path,
                                                     e.strerror, _last_cmd_status())) from None
    return True


def _write(path: str, data: str) -> None:
    """One write, as resctrl takes a whole schemata or one pid per write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise PyruncError("%s: writing %r to %s: %s%s" % (FIELD, data, path, e.strerror,
                                                           _last_cmd_status())) from None


def _last_cmd_status() -> str:
    """resctrl explains a refused write in info/last_cmd_status."""
    try:
        with open(os.path.join(find_root() or RESCTRL_MOUNT_POINT, "info", "last_cmd_status")) as f:
            status = f.read().strip()
    except OSError:
        return ""
    return " (last_cmd_status: %s)" % status if status and status != "ok" else ""


def _compare_schemata(path: str, lines: "list[tuple[str, str]]", name: str) -> None:
    """An existing group must already have the schema asked for.  resctrl
    reads back normalized (padded names, no leading zeros, every domain),
    so each domain the config names is compared by value."""
    with open(os.path.join(path, "schemata")) as f:
        current = dict(parse_schema(line) for line in f if line.strip())
    for field, line in lines:
        resource, domains = parse_schema(line)
        have = current.get(resource, {})
        for dom, value in domains.items():
            if have.get(dom) != value:
                raise PyruncError("%s.%s: group %r exists with another schema (%s:%s=%s there, %r asked)"
                                  % (FIELD, field, name, resource, dom, have.get(dom, "none"), line))


def parse_schema(line: str) -> "tuple[str, dict[str, str]]":
    """'  L3:0=07f0;1=1f' -> ('L3', {'0': '7f0', '1': '1f'})."""
    resource, _, rest = line.strip().partition(":")
    domains = {}
    for item in rest.split(";"):
        dom, _, value = item.partition("=")
        if dom.strip():
            domains[dom.strip()] = value.strip().lower().lstrip("0") or "0"
    return resource.strip(), domains


def add_pid(group: Group, pid: int) -> None:
    """The CTRL_MON group first: resctrl takes into a MON group only tasks
    of its parent group."""
    _write(os.path.join(group.path, "tasks"), "%d\n" % pid)
    if group.mon_path:
        _write(os.path.join(group.mon_path, "tasks"), "%d\n" % pid)


def remove_recorded(d: dict, warn) -> None:
    """delete (and a failed create): rmdir what create made.  resctrl
    removes a group with its files, moving any task left to the parent."""
    for path in Group.from_dict(d).owned:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            warn("%s: removing %s: %s" % (FIELD, path, e.strerror))


def update_schemata(record: "dict | None", l3: str, mb: str) -> None:
    """`update --l3-cache-schema/--mem-bw-schema` (runc's flags): the new
    lines written to the container's group, L3 first.  Each resource must
    be there (resctrl's info/L3, info/MB), and the container must have a
    group: update does not make one."""
    if not record:
        raise PyruncError("updating a non-existent Intel RDT configuration is not supported")
    root = find_root()
    for flag, line, res in (("--l3-cache-schema", l3, "L3"), ("--mem-bw-schema", mb, "MB")):
        if line and (root is None or not os.path.isdir(os.path.join(root, "info", res))):
            raise PyruncError("%s: Intel RDT %s is not enabled on this host" % (flag, res))
        if "\n" in line:
            raise PyruncError("%s: must not contain a newline" % flag)
    data = "".join(line + "\n" for line in (l3, mb) if line)
    _write(os.path.join(Group.from_dict(record).path, "schemata"), data)
