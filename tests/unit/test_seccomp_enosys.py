"""The -ENOSYS prefix (pyrunc.security.seccomp_enosys), run through a small
classic-BPF interpreter: every architecture section and the x86_64/x32
split reach the right end.  (tests/integration/test_runc_compat.py loads
it into the kernel for x86_64.)"""
import struct

import pytest

from pyrunc.security import seccomp_enosys as E

FILTER = "filter"  # what the interpreter returns when the prefix falls through
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7


def run(prog, arch, nr):
    """Interpret the prefix for seccomp_data(nr, arch); a jump to the end
    (libseccomp's program) returns FILTER."""
    insns = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        if code == E.LD_W_ABS:
            acc = {E.OFF_NR: nr, E.OFF_ARCH: arch}[k]
            pc += 1
        elif code == E.JMP_JA:
            pc += 1 + k
        elif code in (E.JMP_JEQ_K, E.JMP_JGT_K, E.JMP_JSET_K):
            cond = {E.JMP_JEQ_K: acc == k, E.JMP_JGT_K: acc > k, E.JMP_JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if cond else jf)
        elif code == E.RET_K:
            return k
        else:
            raise AssertionError("unexpected opcode %#x" % code)
    assert pc == len(insns), "jumped past the end"
    return FILTER


ENOSYS = E.RET_ERRNO | E.ENOSYS
X32 = E.X32_SYSCALL_BIT


def test_nothing_to_answer_is_no_prefix():
    assert E.prefix({}) == b""


def test_x86_64_only():
    prog = E.prefix({E.AUDIT_ARCH_X86_64: {"plain": 334}})
    assert run(prog, E.AUDIT_ARCH_X86_64, 1000) == ENOSYS
    assert run(prog, E.AUDIT_ARCH_X86_64, 335) == ENOSYS
    assert run(prog, E.AUDIT_ARCH_X86_64, 334) == FILTER
    assert run(prog, E.AUDIT_ARCH_X86_64, 0) == FILTER
    assert run(prog, E.AUDIT_ARCH_X86_64, X32 | 1000) == FILTER  # x32 is not in the profile
    assert run(prog, AUDIT_I386, 1000) == FILTER


def test_x86_64_and_x32_and_i386():
    prog = E.prefix({E.AUDIT_ARCH_X86_64: {"plain": 334, "x32": X32 | 547}, AUDIT_I386: {"plain": 450}})
    assert run(prog, E.AUDIT_ARCH_X86_64, 400) == ENOSYS
    assert run(prog, E.AUDIT_ARCH_X86_64, 300) == FILTER
    assert run(prog, E.AUDIT_ARCH_X86_64, X32 | 548) == ENOSYS
    assert run(prog, E.AUDIT_ARCH_X86_64, X32 | 400) == FILTER
    assert run(prog, AUDIT_I386, 451) == ENOSYS
    assert run(prog, AUDIT_I386, 400) == FILTER
    assert run(prog, AUDIT_AARCH64, 1000) == FILTER


def test_x32_only():
    prog = E.prefix({E.AUDIT_ARCH_X86_64: {"x32": X32 | 547}})
    assert run(prog, E.AUDIT_ARCH_X86_64, X32 | 600) == ENOSYS
    assert run(prog, E.AUDIT_ARCH_X86_64, X32 | 500) == FILTER
    assert run(prog, E.AUDIT_ARCH_X86_64, 600) == FILTER  # plain x86_64 is not in the profile


@pytest.mark.parametrize("arches", [["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86"]])
def test_last_syscalls_from_the_profile(arches):
    from pyrunc.security import seccomp_filter as F
    from pyrunc.security.seccomp import Seccomp

    doc = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": arches,
           "syscalls": [{"names": ["read", "openat2", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"}]}
    model = Seccomp.from_dict(doc, "linux.seccomp")
    last = E.last_syscalls(model, lambda n: F.lib.seccomp_arch_resolve_name(n.encode()),
                           lambda t, n: F.lib.seccomp_syscall_resolve_name_arch(t, n.encode()))
    assert last[E.AUDIT_ARCH_X86_64]["plain"] == 437  # openat2 on x86_64
    if "SCMP_ARCH_X32" in arches:
        assert last[E.AUDIT_ARCH_X86_64]["x32"] == X32 | 437
        assert last[AUDIT_I386]["plain"] == 437
