"""linux.seccomp: the typed model and its validation (no libseccomp here).

How the init uses it (runc's order):

    filt = Seccomp.from_dict(doc)   # config load: validation only, cheap
    prepared = filt.compile()       # in the init, before pivot_root and
                                    # before dropping privileges: loads
                                    # libseccomp, resolves names, builds rules
    fd = prepared.load()            # the last step before execve; the
                                    # notify fd when an action is NOTIFY

load() needs CAP_SYS_ADMIN (in the init's user namespace) unless
no_new_privs is already set: libseccomp's own "set no_new_privs on load"
is switched off, as runc does, so the filter never sets it behind the
config's back.  load() imports nothing (the host's Python library may be
out of reach after pivot_root).

The notify fd goes to the seccomp agent from the runtime side:
fetch_fd() (pidfd_getfd, runc's way) or send_fd()/recv_fd() over a unix
socket pair, then send_to_listener() with the container state.
"""
from ..errors import ConfigError

from .seccomp_tables import (ACTION_VALUES, ARCHS, ERRNO_ACTIONS, FLAG_ATTRS, MAX_ARGS, OPERATORS, U32, U64,
                             action_value, arch_libname)  # noqa: F401  (re-exported)


class SyscallArg:
    __slots__ = ("index", "value", "value_two", "op")

    def __init__(self, index, value, value_two, op):
        self.index = index
        self.value = value
        self.value_two = value_two
        self.op = op

    @classmethod
    def from_dict(cls, d, where):
        _need_dict(d, where)
        index = _uint(d, "index", where, U32, required=True)
        if index >= MAX_ARGS:
            raise ConfigError("%s.index: %d is out of range (a syscall has %d arguments)" % (where, index, MAX_ARGS))
        op = _enum(d, "op", where, OPERATORS, "operator", required=True)
        return cls(index, _uint(d, "value", where, U64, required=True),
                   _uint(d, "valueTwo", where, U64) or 0, op)

    def operands(self):
        """(op, datum_a, datum_b) for struct scmp_arg_cmp: for MASKED_EQ
        `value` is the mask and `valueTwo` what the masked argument equals."""
        return OPERATORS[self.op], self.value, self.value_two


class SyscallRule:
    __slots__ = ("names", "action", "errno_ret", "args", "where")

    def __init__(self, names, action, errno_ret, args, where):
        self.names = names
        self.action = action
        self.errno_ret = errno_ret
        self.args = args
        self.where = where

    @classmethod
    def from_dict(cls, d, where):
        _need_dict(d, where)
        names = d.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError("%s.names: must be a non-empty array of syscall names" % where)
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError("%s.names[%d]: empty string is not a valid syscall" % (where, i))
        action = _enum(d, "action", where, ACTION_VALUES, "action", required=True)
        errno_ret = _errno_ret(d, "errnoRet", where, action)
        if action == "SCMP_ACT_NOTIFY" and "write" in names:
            # The init writes to its parent after loading the filter (runc's rule).
            raise ConfigError("%s.names: SCMP_ACT_NOTIFY cannot be used for the write syscall" % where)
        raw_args = d.get("args")
        if raw_args is None:
            raw_args = []
        if not isinstance(raw_args, list):
            raise ConfigError("%s.args: must be an array" % where)
        args = [SyscallArg.from_dict(a, "%s.args[%d]" % (where, i)) for i, a in enumerate(raw_args)]
        return cls(list(names), action, errno_ret, args, where)

    def action_value(self):
        return action_value(self.action, self.errno_ret)

    def condition_sets(self):
        """The argument condition lists to add, one libseccomp rule each.

        Conditions on distinct arguments are ANDed in one rule; when two
        compare the same argument runc falls back to one rule per
        condition (ORed), and so does pyrunc."""
        if not self.args:
            return [[]]
        seen = set()
        for a in self.args:
            if a.index in seen:
                return [[a] for a in self.args]
            seen.add(a.index)
        return [list(self.args)]


class Seccomp:
    """linux.seccomp, validated."""

    __slots__ = ("default_action", "default_errno_ret", "architectures", "flags",
                 "listener_path", "listener_metadata", "syscalls")

    def __init__(self, default_action, default_errno_ret=None, architectures=(), flags=None,
                 listener_path="", listener_metadata="", syscalls=()):
        self.default_action = default_action
        self.default_errno_ret = default_errno_ret
        self.architectures = list(architectures)
        self.flags = None if flags is None else list(flags)  # None: runtime's default
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.syscalls = list(syscalls)

    @classmethod
    def from_dict(cls, d, where="linux.seccomp"):
        _need_dict(d, where)
        default = _enum(d, "defaultAction", where, ACTION_VALUES, "action", required=True)
        if default == "SCMP_ACT_NOTIFY":
            raise ConfigError("%s.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action" % where)
        default_errno = _errno_ret(d, "defaultErrnoRet", where, default)
        archs = _str_list(d, "architectures", where)
        for i, a in enumerate(archs):
            if a not in ARCHS:
                raise ConfigError("%s.architectures[%d]: unknown architecture %r" % (where, i, a))
        flags = d.get("flags")
        if flags is not None:
            flags = _str_list(d, "flags", where)
            for i, f in enumerate(flags):
                if f not in FLAG_ATTRS:
                    raise ConfigError("%s.flags[%d]: unknown flag %r" % (where, i, f))
        listener_path = _str(d, "listenerPath", where)
        metadata = _str(d, "listenerMetadata", where)
        raw = d.get("syscalls")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise ConfigError("%s.syscalls: must be an array" % where)
        rules = [SyscallRule.from_dict(s, "%s.syscalls[%d]" % (where, i)) for i, s in enumerate(raw)]
        self = cls(default, default_errno, archs, flags, listener_path, metadata, rules)
        if self.uses_notify and not listener_path:
            raise ConfigError("%s.listenerPath: required when SCMP_ACT_NOTIFY is used" % where)
        return self

    @property
    def uses_notify(self):
        return any(r.action == "SCMP_ACT_NOTIFY" for r in self.syscalls)

    def check_notify_sent_by_process(self):
        """An unprivileged runtime cannot pidfd_getfd the notify fd: the
        process sends it with sendmsg after loading the filter, so NOTIFY on
        sendmsg would wait for an agent that has no fd yet."""
        for rule in self.syscalls:
            if rule.action == "SCMP_ACT_NOTIFY" and "sendmsg" in rule.names:
                raise ConfigError("%s.names: SCMP_ACT_NOTIFY cannot be used for sendmsg by an unprivileged "
                                  "runtime (the notify fd is handed over with it)" % rule.where)

    def default_value(self):
        return action_value(self.default_action, self.default_errno_ret)

    def compile(self):
        """A PreparedFilter (libseccomp context, not yet loaded)."""
        from .seccomp_filter import compile_filter

        return compile_filter(self)


# -- features / version (need libseccomp) ----------------------------------

def features():
    """`pyrunc features`' linux.seccomp, from this host's libseccomp."""
    from .seccomp_filter import features as _features

    return _features()


def libseccomp_version():
    from .seccomp_filter import libseccomp_version as _version

    return _version()


# -- notify fd handoff (socket imported only when used) ----------------------

def fetch_fd(pid, fd):
    """A copy of process `pid`'s fd `fd` (pidfd_getfd)."""
    from .seccomp_listener import fetch_fd as _fetch

    return _fetch(pid, fd)


def send_fd(sock_fd, fd, data=b"\0"):
    from .seccomp_listener import send_fd as _send

    return _send(sock_fd, fd, data)


def recv_fd(sock_fd):
    from .seccomp_listener import recv_fd as _recv

    return _recv(sock_fd)


def send_to_listener(fd, listener_path, state, listener_metadata="", pid=None):
    from .seccomp_listener import send_to_listener as _send

    return _send(fd, listener_path, state, listener_metadata, pid)


# -- validation helpers ----------------------------------------------------

def _need_dict(d, where):
    if not isinstance(d, dict):
        raise ConfigError("%s: must be an object" % where)


def _enum(d, key, where, allowed, what, required=False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError("%s.%s: required" % (where, key))
        return None
    if not isinstance(v, str) or v not in allowed:
        raise ConfigError("%s.%s: unknown %s %r" % (where, key, what, v))
    return v


def _uint(d, key, where, limit, required=False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError("%s.%s: required" % (where, key))
        return None
    if type(v) is not int or v < 0 or v > limit:
        raise ConfigError("%s.%s: must be an integer in [0, %d], got %r" % (where, key, limit, v))
    return v


def _errno_ret(d, key, where, action):
    v = _uint(d, key, where, 0xFFFF)
    if v is not None and action not in ERRNO_ACTIONS:
        # runtime-spec: an errno with an action that has none is an error
        raise ConfigError("%s.%s: %s does not return an errno" % (where, key, action))
    return v


def _str(d, key, where):
    v = d.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ConfigError("%s.%s: must be a string" % (where, key))
    return v


def _str_list(d, key, where):
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError("%s.%s: must be an array of strings" % (where, key))
    return v
