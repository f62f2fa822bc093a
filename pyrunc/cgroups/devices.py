"""Device access rules: runc's default allow-list, the effective rule set an
ordered rule list produces (the v1 kernel's semantics, also used to build
the v2 eBPF program), and the writes that bring a v1 devices cgroup there.

A rule here is a tuple (allow, type, major, minor, access) with type one of
"a", "b", "c", major/minor -1 for a wildcard and access a subset of "rwm".
"""
from ..spec import DEFAULT_DEVICES
from .fs import CgroupError, read, write

WILDCARD = -1
FIELD = "linux.resources.devices"

# runc's AllowedDevices (libcontainer/specconv): appended after the user's
# rules.  (path, type, major, minor, access); path None = a pure rule.  The
# nodes are the ones every container gets (spec.DEFAULT_DEVICES).
_DEFAULTS = (
    (None, "c", WILDCARD, WILDCARD, "m"),
    (None, "b", WILDCARD, WILDCARD, "m"),
) + tuple((path, typ, major, minor, "rwm") for path, typ, major, minor in DEFAULT_DEVICES) + (
    (None, "c", 136, WILDCARD, "rwm"),  # /dev/pts/*
    (None, "c", 5, 2, "rwm"),  # /dev/ptmx
    (None, "c", 10, 200, "rwm"),  # /dev/net/tun, kept by runc for compatibility
)


def default_device_rules(linux_devices=None):
    """runc's default allow-list in linux.resources.devices form.  A default
    for a path that linux.devices also lists is dropped (the spec's entry
    wins), as runc does.  runc appends these after the config's rules."""
    taken = {d.get("path") for d in linux_devices or ()}
    out = []
    for path, typ, major, minor, access in _DEFAULTS:
        if path is not None and path in taken:
            continue
        rule = {"allow": True, "type": typ}
        if major != WILDCARD:
            rule["major"] = major
        if minor != WILDCARD:
            rule["minor"] = minor
        rule["access"] = access
        out.append(rule)
    return out


def _norm_access(access):
    return "".join(c for c in "rwm" if c in access)


def normalize(rules):
    """DeviceRule objects (or OCI dicts) -> rule tuples."""
    out = []
    for r in rules:
        if isinstance(r, dict):
            allow, typ, major, minor, access = (r.get("allow"), r.get("type"), r.get("major"),
                                                r.get("minor"), r.get("access"))
        else:
            allow, typ, major, minor, access = r.allow, r.type, r.major, r.minor, r.access
        out.append((bool(allow), typ or "a",
                    WILDCARD if major is None else major,
                    WILDCARD if minor is None else minor,
                    _norm_access(access if access is not None else "rwm")))
    return out


class DeviceState:
    """The effective access a rule list leaves: a default verdict and the
    exceptions to it, keyed (type, major, minor) -> access string.

    Semantics of the v1 kernel: an "a" rule resets to allow-all or deny-all;
    a rule against the default adds access to an exception; a rule agreeing
    with the default takes access off the exception with exactly that key
    (it never punches a hole in a wider wildcard exception)."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow=False, exceptions=None):
        self.default_allow = default_allow
        self.exceptions = dict(exceptions or {})

    @classmethod
    def from_rules(cls, rules):
        state = cls()
        for rule in rules:
            state.apply(rule)
        return state

    def apply(self, rule):
        allow, typ, major, minor, access = rule
        if typ == "a":
            self.default_allow = allow
            self.exceptions.clear()
            return
        key = (typ, major, minor)
        have = self.exceptions.get(key, "")
        if allow == self.default_allow:
            left = "".join(c for c in have if c not in access)
            if left:
                self.exceptions[key] = left
            else:
                self.exceptions.pop(key, None)
        else:
            self.exceptions[key] = _norm_access(have + access)

    def allows(self, typ, major, minor, access):
        """The verdict for one request (what the eBPF program must return)."""
        for (etype, emajor, eminor), eaccess in self.exceptions.items():
            if etype != typ or emajor not in (WILDCARD, major) or eminor not in (WILDCARD, minor):
                continue
            if self.default_allow:
                if any(c in eaccess for c in access):
                    return False
            elif all(c in eaccess for c in access):
                return True
        return self.default_allow

    def __eq__(self, other):
        return (isinstance(other, DeviceState) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self):
        return "DeviceState(%s, %r)" % ("allow" if self.default_allow else "deny", self.exceptions)


def rule_string(typ, major, minor, access):
    """The devices.allow/deny line: "c 1:3 rwm", "c 136:* rwm", "a"."""
    if typ == "a":
        return "a"
    return "%s %s:%s %s" % (typ, "*" if major == WILDCARD else major,
                            "*" if minor == WILDCARD else minor, access)


def parse_list(text):
    """devices.list -> DeviceState ("a *:* rwm" alone means allow-all)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and lines[0][0] == "a":
        return DeviceState(True)
    state = DeviceState(False)
    for typ, numbers, access in lines:
        major, minor = numbers.split(":")
        key = (typ, WILDCARD if major == "*" else int(major), WILDCARD if minor == "*" else int(minor))
        state.exceptions[key] = _norm_access(state.exceptions.get(key, "") + access)
    return state


def v1_transition(current, target):
    """[(file, line)] that take a v1 devices cgroup from `current` to
    `target` without ever denying, in passing, what both allow."""
    writes = []
    if target.default_allow:
        # Deny exceptions are invisible in devices.list: always reset.
        writes.append(("devices.allow", "a"))
        for (typ, major, minor), access in target.exceptions.items():
            writes.append(("devices.deny", rule_string(typ, major, minor, access)))
        return writes
    if current.default_allow:
        writes.append(("devices.deny", "a"))
        current = DeviceState(False)
    for key, access in current.exceptions.items():
        extra = "".join(c for c in access if c not in target.exceptions.get(key, ""))
        if extra:
            writes.append(("devices.deny", rule_string(key[0], key[1], key[2], extra)))
    for (typ, major, minor), access in target.exceptions.items():
        writes.append(("devices.allow", rule_string(typ, major, minor, access)))
    return writes


def apply_v1(dirpath, rules):
    target = DeviceState.from_rules(normalize(rules))
    try:
        current = parse_list(read(dirpath, "devices.list"))
    except OSError as e:
        raise CgroupError("%s: read %s/devices.list: %s" % (FIELD, dirpath, e.strerror), e.errno) from None
    for name, line in v1_transition(current, target):
        write(dirpath, name, line, FIELD)
