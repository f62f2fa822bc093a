"""-ENOSYS for syscalls newer than the profile, as runc does.

A profile lists the syscalls its author knew.  A syscall added to the kernel
later would get the profile's default action (EPERM, say), and programs
that probe for a new syscall and fall back on ENOSYS (glibc's clone3, for
one) then fail instead of falling back.  runc (libcontainer/seccomp/patchbpf)
puts a short BPF prefix before libseccomp's program: on each architecture of
the profile, a syscall number above the highest one the profile names is
answered with -ENOSYS; everything else goes on to the filter.  This module
builds that prefix; seccomp_filter loads prefix + libseccomp's program.

runc adds nothing when the default action lets syscalls through (ALLOW,
LOG, TRACE), and nothing for an architecture whose rules name no syscall
known there; neither does this.
"""
import struct

ENOSYS = 38
RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X32 = 0x4000003E  # libseccomp's token; x32 syscalls report AUDIT_ARCH_X86_64
ALLOW_LIKE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")

# classic BPF opcodes
LD_W_ABS = 0x20
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JSET_K = 0x45
RET_K = 0x06
OFF_NR, OFF_ARCH = 0, 4  # struct seccomp_data

FILTER, ENOSYS_RET, NEXT = "filter", "enosys", "next"


def last_syscalls(model, resolve_arch, resolve_name_arch):
    """{audit arch: {"plain"|"x32": highest syscall number the profile names}}
    for the profile's architectures (none listed: none, as runc)."""
    from .seccomp_tables import arch_libname

    out = {}
    names = [n for rule in model.syscalls for n in rule.names]
    for arch in model.architectures:
        token = resolve_arch(arch_libname(arch))
        if not token:
            continue
        numbers = [resolve_name_arch(token, n) for n in names]
        top = max([nr for nr in numbers if nr >= 0], default=0)
        if top <= 0:
            continue
        if token == SCMP_ARCH_X32:
            out.setdefault(AUDIT_ARCH_X86_64, {})["x32"] = top
        else:
            out.setdefault(token, {})["plain"] = top
    return out


def prefix(last):
    """The prefix program for last_syscalls()'s map, as bytes of struct
    sock_filter; b"" when there is nothing to answer."""
    prog = []
    for audit, tops in sorted(last.items()):
        section = [(LD_W_ABS, 0, 0, OFF_ARCH), (JMP_JEQ_K, 0, NEXT, audit), (LD_W_ABS, 0, 0, OFF_NR)]
        if audit == AUDIT_ARCH_X86_64:
            section += _x86_64_checks(tops)
        else:
            section.append((JMP_JGT_K, ENOSYS_RET, FILTER, tops["plain"]))
        prog.append(section)
    if not prog:
        return b""
    flat = []
    for section in prog:
        start_next = len(flat) + len(section)
        for c, jt, jf, k in section:
            here = len(flat)
            rel = start_next - here - 1  # NEXT: the next section's first instruction
            flat.append((c, rel if jt == NEXT else jt, rel if jf == NEXT else jf, k))
    flat.append((JMP_JA, 0, 0, FILTER))  # no section matched
    flat.append((RET_K, 0, 0, RET_ERRNO | ENOSYS))
    return _assemble(flat, enosys_at=len(flat) - 1, filter_at=len(flat))


def _x86_64_checks(tops):
    """x86_64 and x32 share an audit arch; x32 numbers carry bit 30."""
    plain, x32 = tops.get("plain"), tops.get("x32")
    if plain is not None and x32 is not None:
        return [(JMP_JSET_K, 1, 0, X32_SYSCALL_BIT),
                (JMP_JGT_K, ENOSYS_RET, FILTER, plain),
                (JMP_JGT_K, ENOSYS_RET, FILTER, x32)]
    if plain is not None:
        return [(JMP_JSET_K, FILTER, 0, X32_SYSCALL_BIT), (JMP_JGT_K, ENOSYS_RET, FILTER, plain)]
    return [(JMP_JSET_K, 0, FILTER, X32_SYSCALL_BIT), (JMP_JGT_K, ENOSYS_RET, FILTER, x32)]


def _assemble(flat, enosys_at, filter_at):
    """FILTER/ENOSYS labels -> relative offsets (ints already are); pack."""
    out = []
    for i, (code, jt, jf, k) in enumerate(flat):
        if code == JMP_JA:
            k = _target(k, i, enosys_at, filter_at)
        elif code in (JMP_JEQ_K, JMP_JGT_K, JMP_JSET_K):
            jt, jf = _target(jt, i, enosys_at, filter_at), _target(jf, i, enosys_at, filter_at)
        out.append(struct.pack("=HBBI", code, jt, jf, k))
    return b"".join(out)


def _target(t, i, enosys_at, filter_at):
    if t == FILTER:
        return filter_at - i - 1
    if t == ENOSYS_RET:
        return enosys_at - i - 1
    return t
