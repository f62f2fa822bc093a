"""Building and loading a seccomp filter through libseccomp (runc's rules).

compile_filter() turns a validated Seccomp model into a libseccomp context:
extra architectures, flags as filter attributes, no_new_privs left alone,
one rule per syscall name (unknown names skipped with a debug line, the
action equal to the default skipped).  PreparedFilter.load() is the only
thing the init calls after that, just before execve.
"""
import os

from .._native_seccomp import ffi, lib
from ..errors import ConfigError, PyruncError
from ..log import logger
from .seccomp_enosys import ALLOW_LIKE
from .seccomp_tables import ACTION_VALUES, ARCHS, FLAG_ATTRS, OPERATORS, arch_libname

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9

NR_SCMP_ERROR = -1
EEXIST = 17
EDOM = 33
EACCES = 13
SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
# runc asks for libseccomp's binary-tree layout above this many rules.
OPTIMIZE_ABOVE = 32

# The libseccomp API level an action or flag needs (seccomp_api_get()).
ACTION_MIN_API = {"SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3, "SCMP_ACT_NOTIFY": 5}
FLAG_MIN_VERSION = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (2, 6, 0)}


def version_tuple():
    v = lib.seccomp_version()
    return (v.major, v.minor, v.micro)


def libseccomp_version():
    return "%d.%d.%d" % version_tuple()


class PreparedFilter:
    """A libseccomp context ready to load.

    `notify` says whether load() returns a notify fd; the listener fields
    are the config's, for whoever hands that fd to the agent."""

    __slots__ = ("_ctx", "notify", "listener_path", "listener_metadata", "program", "flag_bits")

    def __init__(self, ctx, notify, listener_path, listener_metadata):
        self._ctx = ctx
        self.notify = notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        # with the -ENOSYS prefix (seccomp_enosys): the whole program, loaded
        # by seccomp(2) itself; None: libseccomp loads its own
        self.program = None
        self.flag_bits = 0

    def load(self):
        """Install the filter on the calling thread.  -> the notify fd
        (close-on-exec) when a rule is SCMP_ACT_NOTIFY, else None.

        Imports nothing: safe after pivot_root."""
        ctx = self._ctx
        if ctx is None:
            raise PyruncError("linux.seccomp: the filter was already released")
        if self.program is not None:
            return self._load_program()
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            hint = " (needs CAP_SYS_ADMIN or no_new_privs)" if -rc == EACCES else ""
            raise PyruncError("linux.seccomp: loading the filter: %s%s" % (os.strerror(-rc), hint))
        if not self.notify:
            return None
        fd = lib.seccomp_notify_fd(ctx)
        if fd < 0:
            raise PyruncError("linux.seccomp: no notify fd after loading: %s" % os.strerror(-fd))
        return fd

    def _load_program(self):
        prog = self.program
        rc = lib.pyrunc_seccomp_set_filter(self.flag_bits, len(prog) // 8, ffi.from_buffer(prog))
        if rc < 0:
            err = ffi.errno
            hint = " (needs CAP_SYS_ADMIN or no_new_privs)" if err == EACCES else ""
            raise PyruncError("linux.seccomp: loading the filter: %s%s" % (os.strerror(err), hint))
        return None

    def export_bpf(self, fd):
        """Write the raw BPF program to fd (debugging, tests)."""
        rc = lib.seccomp_export_bpf(self._ctx, fd)
        if rc < 0:
            raise OSError(-rc, "seccomp_export_bpf: " + os.strerror(-rc))

    def release(self):
        if self._ctx is not None:
            lib.seccomp_release(self._ctx)
            self._ctx = None


def compile_filter(model):
    """Seccomp model -> PreparedFilter.  ConfigError names the field that
    this host's libseccomp/kernel cannot honour."""
    where = "linux.seccomp"
    default = model.default_value()
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise ConfigError("%s.defaultAction: libseccomp %s refused %s" % (where, libseccomp_version(), model.default_action))
    prepared = PreparedFilter(ctx, model.uses_notify, model.listener_path, model.listener_metadata)
    try:
        # Real kernel errnos from seccomp_load instead of ECANCELED.
        lib.seccomp_attr_set(ctx, ATTR_API_SYSRAWRC, 1)
        _check(lib.seccomp_attr_set(ctx, ATTR_CTL_NNP, 0), "%s: clearing no_new_privs on load" % where)
        _add_archs(ctx, model.architectures, where)
        _set_flags(ctx, model.flags, where)
        if sum(len(r.names) for r in model.syscalls) > OPTIMIZE_ABOVE:
            # not fatal: older libseccomp has no binary tree
            if lib.seccomp_attr_set(ctx, ATTR_CTL_OPTIMIZE, 2) < 0:
                logger().debug("seccomp binary tree optimization not available")
        for rule in model.syscalls:
            _add_rule(ctx, rule, default)
        if not model.uses_notify and model.default_action not in ALLOW_LIKE:
            _with_enosys_prefix(prepared, model)
    except BaseException:
        prepared.release()
        raise
    return prepared


# seccomp(2) flag bits for the spec's flag names
FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}


def _with_enosys_prefix(prepared, model):
    """runc's -ENOSYS prefix before libseccomp's program (seccomp_enosys).
    A filter with a notify listener keeps libseccomp's own load (its fd)."""
    from .seccomp_enosys import last_syscalls, prefix

    head = prefix(last_syscalls(model, lambda name: lib.seccomp_arch_resolve_name(name.encode()),
                                lambda token, name: lib.seccomp_syscall_resolve_name_arch(token, name.encode())))
    if not head:
        return
    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(prepared._ctx, fd), "linux.seccomp: exporting the filter")
        os.lseek(fd, 0, os.SEEK_SET)
        body = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            body += chunk
    finally:
        os.close(fd)
    prepared.program = head + body
    prepared.flag_bits = sum(FLAG_BITS[f] for f in effective_flags(model.flags))


def _check(rc, what):
    if rc < 0:
        raise ConfigError("%s: %s" % (what, os.strerror(-rc)))


def _add_archs(ctx, archs, where):
    for i, arch in enumerate(archs):
        token = lib.seccomp_arch_resolve_name(arch_libname(arch).encode())
        if token == 0:
            raise ConfigError("%s.architectures[%d]: %s is not supported by libseccomp %s"
                              % (where, i, arch, libseccomp_version()))
        rc = lib.seccomp_arch_add(ctx, token)
        if rc < 0 and -rc != EEXIST:  # the native arch is always there
            hint = " (its byte order differs from this host's)" if -rc == EDOM else ""
            raise ConfigError("%s.architectures[%d]: adding %s: %s%s" % (where, i, arch, os.strerror(-rc), hint))


def effective_flags(flags):
    """runc: no `flags` at all means SPEC_ALLOW where supported; an
    explicit list (even empty) is taken as is."""
    if flags is not None:
        return flags
    return [SPEC_ALLOW] if flag_supported(SPEC_ALLOW) else []


def _set_flags(ctx, flags, where):
    explicit = flags is not None
    for i, flag in enumerate(effective_flags(flags)):
        need = FLAG_MIN_VERSION.get(flag)
        rc = lib.seccomp_attr_set(ctx, FLAG_ATTRS[flag], 1) if not need or version_tuple() >= need else -95
        if rc < 0:
            field = "%s.flags[%d]" % (where, i) if explicit else "%s.flags" % where
            raise ConfigError("%s: %s is not supported by libseccomp %s on this kernel"
                              % (field, flag, libseccomp_version()))


def _add_rule(ctx, rule, default):
    action = rule.action_value()
    if action == default:
        return  # redundant; libseccomp would refuse it
    for n, name in enumerate(rule.names):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == NR_SCMP_ERROR:
            # Unknown to this libseccomp: not supported here, as runc says.
            logger().debug('unknown seccomp syscall "%s" ignored' % name)
            continue
        for conds in rule.condition_sets():
            rc = _rule_add(ctx, action, nr, conds)
            if rc < 0:
                raise ConfigError("%s.names[%d]: adding the rule for %s: %s"
                                  % (rule.where, n, name, os.strerror(-rc)))


def _rule_add(ctx, action, nr, conds):
    if not conds:
        return lib.seccomp_rule_add_array(ctx, action, nr, 0, ffi.NULL)
    arr = ffi.new("struct scmp_arg_cmp[]", len(conds))
    for i, cond in enumerate(conds):
        arr[i].arg = cond.index
        arr[i].op, arr[i].datum_a, arr[i].datum_b = cond.operands()
    return lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr)


# -- what this host supports ----------------------------------------------

def flag_supported(flag):
    """Whether libseccomp and the kernel can set `flag` (tried on a scratch
    context: libseccomp checks the kernel when the attribute is set)."""
    need = FLAG_MIN_VERSION.get(flag)
    if need and version_tuple() < need:
        return False
    ctx = lib.seccomp_init(ACTION_VALUES["SCMP_ACT_ALLOW"])
    if ctx == ffi.NULL:
        return False
    try:
        return lib.seccomp_attr_set(ctx, FLAG_ATTRS[flag], 1) == 0
    finally:
        lib.seccomp_release(ctx)


def supported_actions():
    api = lib.seccomp_api_get()
    return sorted(a for a in ACTION_VALUES if api >= ACTION_MIN_API.get(a, 1))


def arch_usable(arch):
    """libseccomp knows `arch` and can put it in a filter beside this host's
    native one (a filter holds one byte order)."""
    token = lib.seccomp_arch_resolve_name(arch_libname(arch).encode())
    if token == 0:
        return False
    ctx = lib.seccomp_init(ACTION_VALUES["SCMP_ACT_ALLOW"])
    if ctx == ffi.NULL:
        return False
    try:
        rc = lib.seccomp_arch_add(ctx, token)
        return rc == 0 or -rc == EEXIST
    finally:
        lib.seccomp_release(ctx)


def supported_archs():
    return sorted(a for a in ARCHS if arch_usable(a))


def features():
    known = list(FLAG_ATTRS)
    return {
        "enabled": True,
        "actions": supported_actions(),
        "operators": sorted(OPERATORS),
        "archs": supported_archs(),
        "knownFlags": known,
        "supportedFlags": [f for f in known if flag_supported(f)],
    }
