"""libseccomp's values for the runtime-spec's seccomp names: a leaf that the
model (seccomp.py) and the libseccomp binding (seccomp_filter.py) both
import, so neither imports the other for them."""
from errno import EPERM

# Action name -> libseccomp's action value (SCMP_ACT_* in <seccomp.h>).
ACTION_VALUES = {
    "SCMP_ACT_KILL": 0x00000000,          # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,         # | errno
    "SCMP_ACT_TRACE": 0x7FF00000,         # | msg data (errno when untraced: ENOSYS)
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# Actions that carry a 16-bit return code; runc's default for both is EPERM.
ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# Operator name -> enum scmp_compare.
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# The runtime-spec's architectures; libseccomp's name for each is the
# lower-cased suffix (seccomp_arch_resolve_name decides what this host's
# libseccomp knows).
ARCHS = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)

# Filter flag -> the libseccomp filter attribute that sets it.
FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 4,               # SCMP_FLTATR_CTL_TSYNC
    "SECCOMP_FILTER_FLAG_LOG": 6,                 # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,          # SCMP_FLTATR_CTL_SSB
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 10,  # SCMP_FLTATR_CTL_WAITKILL (2.6+)
}

MAX_ARGS = 6  # a Linux syscall has at most six arguments
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


def arch_libname(arch):
    """SCMP_ARCH_X86_64 -> x86_64 (libseccomp's name)."""
    return arch[len("SCMP_ARCH_"):].lower()


def action_value(action, errno_ret=None):
    """The libseccomp action for a spec action (+ errnoRet)."""
    value = ACTION_VALUES[action]
    if action in ERRNO_ACTIONS:
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value
