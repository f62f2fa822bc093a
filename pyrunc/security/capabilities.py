"""Linux capabilities: names, masks, and applying the five OCI sets."""
import os

from ..errors import ConfigError

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: i for i, name in enumerate(CAP_NAMES)}


def last_cap():
    """The highest capability this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def known_caps():
    return CAP_NAMES[: last_cap() + 1]


def mask_of(names, field):
    """Bit mask for a list of names.  Unknown names are an error; names this
    kernel lacks (newer than cap_last_cap) are skipped, as runc does."""
    top = last_cap()
    mask = 0
    for i, name in enumerate(names):
        num = CAP_NUMBERS.get(name)
        if num is None:
            raise ConfigError("%s[%d]: unknown capability %r" % (field, i, name))
        if num <= top:
            mask |= 1 << num
    return mask


def check(caps):
    """Reject unknown names before anything is created."""
    for field in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask_of(getattr(caps, field), "process.capabilities." + field)


def own_bounding_set():
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << (last_cap() + 1)) - 1


def check_within_bounding(caps):
    """A capability the runtime itself cannot have can't be given to the
    container: refuse at create (runc: "unable to apply caps")."""
    have = own_bounding_set()
    for field in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = getattr(caps, field)
        missing = mask_of(names, "process.capabilities." + field) & ~have
        if missing:
            raise ConfigError("process.capabilities.%s: %s not in the runtime's bounding set"
                              % (field, ", ".join(names_of(missing))))


def drop_bounding(caps):
    """Step 1, while still privileged: shrink the bounding set."""
    from .. import linux

    keep = mask_of(caps.bounding, "process.capabilities.bounding")
    for num in range(last_cap() + 1):
        if not keep & (1 << num):
            linux.prctl(linux.PR_CAPBSET_DROP, num)


def apply_sets(caps):
    """Step 2, after the uid change: effective/permitted/inheritable, then
    ambient.  Inheritable is exactly what the config asks (CVE-2022-29162:
    never fill it by default)."""
    from .. import linux

    eff = mask_of(caps.effective, "process.capabilities.effective")
    perm = mask_of(caps.permitted, "process.capabilities.permitted")
    inh = mask_of(caps.inheritable, "process.capabilities.inheritable")
    linux.capset(eff, perm, inh)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    for num in _bits(mask_of(caps.ambient, "process.capabilities.ambient")):
        try:
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, num)
        except OSError:
            # The kernel refuses ambient caps not in permitted+inheritable;
            # runc ignores that too (logs it).
            pass


def _bits(mask):
    num = 0
    while mask:
        if mask & 1:
            yield num
        mask >>= 1
        num += 1


def names_of(mask):
    return [CAP_NAMES[n] for n in _bits(mask) if n < len(CAP_NAMES)]
