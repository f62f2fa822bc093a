"""runc-compatible leniency: inputs runc 1.1.5 runs that the spec's schema
refuses, taken the way runc takes them.

Engines write configs for runc, not for the JSON Schema.  By default pyrunc
accepts what runc accepts (libcontainer/specconv and configs/validate are the
reference): before the schema check, `relax` rewrites each such value into
runc's meaning and logs one warning naming its JSON path.  With the global
`--strict` flag nothing is rewritten and the schema's verdict stands.

Two kinds of leniency:
- rewritten: the document is changed to what runc makes of it (unknown
  capability names dropped, device access letters reduced to r/w/m, ...);
- schema-only: pyrunc's runtime already gives the value runc's meaning
  (rootfsPropagation "rprivate"), only the schema refuses it.  `relax`
  returns these as (object, key) pairs with a spec placeholder, which
  `hidden_from_schema` puts in place for the schema check only.

What stays an error here, as in runc: ids and paths that escape, duplicated
namespaces, unknown namespace types, empty device access, a seccomp profile
with rules but no default action.  Nothing here loosens isolation.
"""

STRICT = False  # the global --strict flag

_MISSING = object()

# linux.rootfsPropagation: values runc maps (specconv's mountPropagationMapping)
# that the spec's enum lacks; "" is runc's "not set" (the default rslave).
_ROOTFS_PROPAGATION = ("rprivate", "rshared", "rslave", "runbindable", "")
# runc's ERRNO/TRACE take errnoRet; any other action ignores it.
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_SECCOMP_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")


# documents relax() rewrote (by id; a create handles one config)
_REWRITTEN = set()


def rewritten(doc):
    """Whether relax() applied a leniency to `doc` (it warned)."""
    return id(doc) in _REWRITTEN


def set_strict(strict):
    global STRICT
    STRICT = bool(strict)


def relax(doc, source, kind="config"):
    """Rewrite `doc` (a config, or a process for `exec --process`) in place
    to runc's reading; warn once per change.  Returns [(obj, key,
    placeholder)] of values to hide from the schema check."""
    if STRICT or doc.__class__ is not dict:
        return []
    r = _Relaxer(source)
    if kind == "config":
        r.config(doc)
    else:
        r.process(doc, "")
    if r.changed:
        _REWRITTEN.add(id(doc))
    return r.hidden


class hidden_from_schema:
    """with hidden_from_schema(pairs): the schema sees the placeholders."""

    __slots__ = ("pairs", "saved")

    def __init__(self, pairs):
        self.pairs = pairs
        self.saved = []

    def __enter__(self):
        for obj, key, placeholder in self.pairs:
            self.saved.append((obj, key, obj.get(key, _MISSING)))
            obj[key] = placeholder
        return self

    def __exit__(self, *exc):
        for obj, key, value in reversed(self.saved):
            if value is _MISSING:
                obj.pop(key, None)
            else:
                obj[key] = value
        return False


class _Relaxer:
    __slots__ = ("source", "hidden", "changed")

    def __init__(self, source):
        self.source = source
        self.hidden = []
        self.changed = False

    def warn(self, path, what):
        """One warning per leniency; the document is then stored as taken
        (create.py), which for a schema-only one is the same content."""
        from .log import logger

        logger().warning("%s: %s: %s" % (self.source, path, what))
        self.changed = True

    # -- the whole config ------------------------------------------------
    def config(self, doc):
        self.oci_version(doc)
        proc = doc.get("process")
        if proc.__class__ is dict:
            self.process(proc, "process.")
        mounts = doc.get("mounts")
        if mounts.__class__ is list:
            self.mounts(mounts)
        lx = doc.get("linux")
        if lx.__class__ is dict:
            self.linux(lx)

    def oci_version(self, doc):
        v = doc.get("ociVersion", _MISSING)
        if v is _MISSING:
            self.warn("ociVersion", "missing; runc does not need it, taken as 1.0.0")
            self.hidden.append((doc, "ociVersion", "1.0.0"))
        elif v.__class__ is str and not _semver(v):
            self.warn("ociVersion", "%s is not SemVer 2.0.0; runc does not read it" % _q(v))
            self.hidden.append((doc, "ociVersion", "1.0.0"))

    # -- process ---------------------------------------------------------
    def process(self, proc, prefix):
        size = proc.get("consoleSize")
        if size.__class__ is dict:
            for key in ("height", "width"):
                if key not in size:
                    self.warn("%sconsoleSize.%s" % (prefix, key), "missing; taken as 0 (not set), as runc does")
                    size[key] = 0
        caps = proc.get("capabilities")
        if caps.__class__ is dict:
            self.capabilities(caps, prefix + "capabilities")
        rlimits = proc.get("rlimits")
        if rlimits.__class__ is list:
            for i, rl in enumerate(rlimits):
                if rl.__class__ is not dict:
                    continue
                for key in ("soft", "hard"):
                    if key not in rl:
                        self.warn("%srlimits[%d].%s" % (prefix, i, key), "missing; taken as 0, as runc does")
                        rl[key] = 0

    def capabilities(self, caps, path):
        from .security.capabilities import CAP_NUMBERS, last_cap

        top = last_cap()
        for field in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            names = caps.get(field)
            if names.__class__ is not list:
                continue
            keep, unknown, unavailable = [], [], []
            for name in names:
                num = CAP_NUMBERS.get(name) if name.__class__ is str else None
                if num is None and name.__class__ is str:
                    unknown.append(name)
                    continue
                if num is not None and num > top:
                    unavailable.append(name)
                keep.append(name)
            if unknown:
                self.warn("%s.%s" % (path, field), "ignoring unknown capabilities %s, as runc does"
                          % ", ".join(_q(n) for n in unknown))
                caps[field] = keep
            if unavailable:  # mask_of skips these; runc warns about them too
                self.warn("%s.%s" % (path, field), "ignoring capabilities this kernel lacks: %s"
                          % ", ".join(unavailable))

    # -- mounts ----------------------------------------------------------
    def mounts(self, mounts):
        for i, m in enumerate(mounts):
            if m.__class__ is not dict:
                continue
            dest = m.get("destination")
            if dest.__class__ is str and dest and not dest.startswith("/"):
                # runc: "mount destination ... is not absolute" (a warning);
                # the path is taken inside the rootfs all the same.
                self.warn("mounts[%d].destination" % i, "%s is not absolute; taken relative to the "
                          "container's root, as runc does" % _q(dest))

    # -- linux -----------------------------------------------------------
    def linux(self, lx):
        prop = lx.get("rootfsPropagation", _MISSING)
        if prop in _ROOTFS_PROPAGATION:
            what = "not set" if prop == "" else "MS_%s|MS_REC" % prop[1:].upper()
            self.warn("linux.rootfsPropagation", "%s is not a spec value; taken as runc takes it (%s)"
                      % (_q(prop), what))
            self.hidden.append((lx, "rootfsPropagation", "private"))
        sysctl = lx.get("sysctl")
        if sysctl.__class__ is dict:
            self.sysctl(sysctl)
        res = lx.get("resources")
        if res.__class__ is dict and res.get("devices").__class__ is list:
            self.device_rules(res["devices"])
        sec = lx.get("seccomp")
        if sec.__class__ is dict:
            self.seccomp(lx, sec)

    def sysctl(self, sysctl):
        """runc reads "net/ipv4/ip_forward" as "net.ipv4.ip_forward"
        (dots and slashes swap when the first separator is a slash)."""
        for key in list(sysctl):
            sep = _first_sep(key)
            if sep != "/":
                continue
            dotted = key.translate(_SWAP_DOT_SLASH)
            if dotted in sysctl:
                continue  # both spellings: leave it to the namespace checks
            self.warn("linux.sysctl[%s]" % _q(key), "slash-separated name taken as %s, as runc does" % _q(dotted))
            sysctl[dotted] = sysctl.pop(key)

    def device_rules(self, rules):
        keep = []
        for i, rule in enumerate(rules):
            keep.append(rule)
            if rule.__class__ is not dict:
                continue
            path = "linux.resources.devices[%d]" % i
            if "allow" not in rule:
                self.warn(path + ".allow", "missing; taken as false (a deny rule), as runc does")
                rule["allow"] = False
            if rule.get("type") == "":
                self.warn(path + ".type", '"" taken as "a" (all devices), as runc does')
                rule["type"] = "a"
            access = rule.get("access")
            if access.__class__ is str and access and (access.strip("rwm") or _has_repeats(access)):
                if not self.device_access(rule, access, path):
                    keep.pop()
        rules[:] = keep

    def device_access(self, rule, access, path):
        """runc keeps the r, w and m it finds and ignores other letters
        ("rwa" is "rw"); returns False for an allow rule left with none (a
        deny rule left with none stays, for the schema to refuse)."""
        if rule.get("type", "a") == "a":
            norm = "rwm"  # a wildcard rule ignores its access, in runc and in the kernel
        else:
            norm = "".join(c for c in "rwm" if c in access)
        if not norm and rule.get("allow") is not True:
            # runc drops it silently: a deny rule that denies nothing would
            # loosen what its author meant; the schema refuses it
            return True
        if not norm:
            self.warn(path + ".access", "%s names none of r, w, m: the rule changes nothing in runc; "
                      "left out" % _q(access))
            return False
        self.warn(path + ".access", "%s taken as %s, as runc does" % (_q(access), _q(norm)))
        rule["access"] = norm
        return True

    def seccomp(self, lx, sec):
        if "defaultAction" not in sec:
            if not sec.get("syscalls"):
                self.warn("linux.seccomp", "no defaultAction and no syscalls: no filter, as runc does")
                del lx["seccomp"]
            return
        self.errno_ret(sec, "defaultErrnoRet", sec.get("defaultAction"), "linux.seccomp")
        calls = sec.get("syscalls")
        if calls.__class__ is list:
            keep = []
            for i, call in enumerate(calls):
                keep.append(call)
                if call.__class__ is not dict:
                    continue
                path = "linux.seccomp.syscalls[%d]" % i
                self.errno_ret(call, "errnoRet", call.get("action"), path)
                if not self.syscall_names(call, path):
                    keep.pop()
            calls[:] = keep

    def syscall_names(self, call, path):
        """runc skips names libseccomp does not know ("" included), so a
        rule with none adds nothing: it is left out.  -> keep the rule?"""
        names = call.get("names", _MISSING)
        if names is not _MISSING and names.__class__ is not list:
            return True  # the schema's to refuse
        named = [n for n in names if n != ""] if names is not _MISSING else []
        if named and len(named) == len(names):
            return True
        if call.get("action") not in _SECCOMP_ACTIONS:
            return True  # runc refuses an unknown action even on an empty rule
        if named:
            self.warn(path + ".names", "empty names ignored, as runc does")
            call["names"] = named
            return True
        self.warn(path + ".names", "no syscall named: the rule adds nothing in runc; left out")
        return False

    def errno_ret(self, obj, key, action, path):
        if key in obj and action in _SECCOMP_ACTIONS and action not in _ERRNO_ACTIONS:
            self.warn("%s.%s" % (path, key), "%s returns no errno; ignored, as runc does" % action)
            del obj[key]


_SWAP_DOT_SLASH = {ord("."): "/", ord("/"): "."}


def _first_sep(key):
    for c in key:
        if c in "./":
            return c
    return None


def _has_repeats(s):
    return len(set(s)) != len(s)


def _q(s):
    from _json import encode_basestring

    return encode_basestring(s)


def _semver(v):
    """SemVer 2.0.0: MAJOR.MINOR.PATCH[-pre][+build], no leading zeros in
    numbers (the schema's rule, without `re`)."""
    rest, plus, build = v.partition("+")
    if plus and not _idents(build, False):
        return False
    core, dash, pre = rest.partition("-")
    if dash and not _idents(pre, True):
        return False
    nums = core.split(".")
    return len(nums) == 3 and all(_number(n) for n in nums)


def _idents(part, strict_numbers):
    for x in part.split("."):
        if not x or not x.isascii() or not x.replace("-", "a").isalnum():
            return False
        if strict_numbers and x.isdigit() and not _number(x):
            return False
    return True


def _number(n):
    return n.isascii() and n.isdigit() and (n == "0" or n[0] != "0")
