"""cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program built
from the effective rule set (devices.DeviceState), loaded and attached with
bpf(2) through pyrunc._native_bpf, replacing the one attached before.

The program sees struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
u32 minor; } in R1; access_type is (access << 16) | type.  Registers:
R2 = type, R3 = access, R4 = major, R5 = minor; R0 = verdict (1 allow).
"""
import os
import struct
import sys

from .devices import WILDCARD, DeviceState, normalize
from .fs import CgroupError

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 2

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPE = {"b": DEV_BLOCK, "c": DEV_CHAR}

# opcodes (class | op | source)
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
ALU32_AND_K = 0x54
ALU32_RSH_K = 0x74
ALU32_MOV_K = 0xB4
ALU32_MOV_X = 0xBC
JEQ_K = 0x15
JNE_K = 0x55
JNE_X = 0x5D
EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)
LICENSE = b"Apache-2.0"
FIELD = "linux.resources.devices"


def insn(code, dst=0, src=0, off=0, imm=0):
    return (code, dst, src, off, imm)


def access_mask(access):
    mask = 0
    for c in access:
        mask |= _ACCESS_BITS[c]
    return mask


def _prologue():
    return [
        insn(LDX_MEM_W, R2, R1, 0),  # R2 = access_type
        insn(ALU32_AND_K, R2, imm=0xFFFF),  # R2 &= 0xffff: the type
        insn(LDX_MEM_W, R3, R1, 0),
        insn(ALU32_RSH_K, R3, imm=16),  # R3 = access
        insn(LDX_MEM_W, R4, R1, 4),  # R4 = major
        insn(LDX_MEM_W, R5, R1, 8),  # R5 = minor
    ]


def _block(typ, major, minor, access, verdict, partial):
    """Instructions that return `verdict` when the request matches; the
    jump offsets (-1 placeholders) are patched to the next block."""
    body = [insn(JNE_K, R2, off=-1, imm=_TYPE[typ])]
    mask = access_mask(access)
    if mask != ACC_MKNOD | ACC_READ | ACC_WRITE:
        body.append(insn(ALU32_MOV_X, R1, R3))
        body.append(insn(ALU32_AND_K, R1, imm=mask))
        if partial:
            # a deny exception hits when any requested bit is in it
            body.append(insn(JEQ_K, R1, off=-1, imm=0))
        else:
            # an allow exception needs every requested bit
            body.append(insn(JNE_X, R1, R3, off=-1))
    if major != WILDCARD:
        body.append(insn(JNE_K, R4, off=-1, imm=major))
    if minor != WILDCARD:
        body.append(insn(JNE_K, R5, off=-1, imm=minor))
    body.append(insn(ALU32_MOV_K, R0, imm=1 if verdict else 0))
    body.append(insn(EXIT))
    n = len(body)
    return [(c, d, s, (n - 1 - i) if off == -1 else off, imm)
            for i, (c, d, s, off, imm) in enumerate(body)]


def program(state):
    """DeviceState -> list of instruction tuples (code, dst, src, off, imm)."""
    insns = _prologue()
    verdict = not state.default_allow
    for (typ, major, minor), access in state.exceptions.items():
        insns.extend(_block(typ, major, minor, access, verdict, partial=state.default_allow))
    insns.append(insn(ALU32_MOV_K, R0, imm=1 if state.default_allow else 0))
    insns.append(insn(EXIT))
    return insns


def program_for_rules(rules):
    return program(DeviceState.from_rules(normalize(rules)))


def encode(insns, byteorder=sys.byteorder):
    """struct bpf_insn array: u8 code, u8 dst:4|src:4, s16 off, s32 imm."""
    fmt = "<BBhi" if byteorder == "little" else ">BBhi"
    out = bytearray()
    for code, dst, src, off, imm in insns:
        regs = (src << 4 | dst) if byteorder == "little" else (dst << 4 | src)
        out += struct.pack(fmt, code, regs, off, imm if imm < 2**31 else imm - 2**32)
    return bytes(out)


def _bpf():
    from .. import _native_bpf
    return _native_bpf.ffi, _native_bpf.lib


def load(insns):
    """Load the program; returns its fd (the caller closes it)."""
    ffi, lib = _bpf()
    code = encode(insns)
    buf = ffi.from_buffer(code)
    log = ffi.new("char[]", 65536)
    fd = lib.pyrunc_bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, buf, len(insns), LICENSE, log, 65536)
    if fd < 0:
        err = ffi.errno
        detail = ffi.string(log).decode(errors="replace").strip().splitlines()
        raise CgroupError("%s: load eBPF device program: %s%s" % (
            FIELD, os.strerror(err), (" (" + detail[-1] + ")") if detail else ""), err)
    return fd


def attached_ids(cgroup_fd):
    """(attach_flags, [prog ids]) of device programs attached to the cgroup."""
    ffi, lib = _bpf()
    cap = 64
    while True:
        flags = ffi.new("uint32_t *")
        ids = ffi.new("uint32_t[]", cap)
        count = ffi.new("uint32_t *", cap)
        rc = lib.pyrunc_bpf_prog_query(cgroup_fd, BPF_CGROUP_DEVICE, flags, ids, count)
        if rc < 0:
            err = ffi.errno
            if err == 28 and count[0] > cap:  # ENOSPC: grow and ask again
                cap = count[0]
                continue
            raise CgroupError("%s: query attached device programs: %s" % (FIELD, os.strerror(err)), err)
        return flags[0], [ids[i] for i in range(count[0])]


def attach(dirpath, insns):
    """Attach a new device program to the cgroup at `dirpath` and detach the
    ones that were there, so the new rules replace the old in one step
    (both are briefly attached: each must allow, so nothing new leaks)."""
    ffi, lib = _bpf()
    prog_fd = load(insns)
    try:
        cg_fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        os.close(prog_fd)
        raise CgroupError("%s: open %s: %s" % (FIELD, dirpath, e.strerror), e.errno) from None
    try:
        flags, old_ids = attached_ids(cg_fd)
        old_fds = []
        try:
            for pid in old_ids:
                fd = lib.pyrunc_bpf_prog_get_fd_by_id(pid)
                if fd >= 0:
                    old_fds.append(fd)
            mode = BPF_F_ALLOW_MULTI if (not old_ids or flags & BPF_F_ALLOW_MULTI) else 0
            if lib.pyrunc_bpf_prog_attach(cg_fd, prog_fd, BPF_CGROUP_DEVICE, mode, -1) < 0:
                err = ffi.errno
                raise CgroupError("%s: attach eBPF device program to %s: %s" % (
                    FIELD, dirpath, os.strerror(err)), err)
            if mode:
                for fd in old_fds:
                    if lib.pyrunc_bpf_prog_detach(cg_fd, fd, BPF_CGROUP_DEVICE) < 0:
                        err = ffi.errno
                        raise CgroupError("%s: detach old eBPF device program from %s: %s" % (
                            FIELD, dirpath, os.strerror(err)), err)
        finally:
            for fd in old_fds:
                os.close(fd)
    finally:
        os.close(cg_fd)
        os.close(prog_fd)


def apply_v2(dirpath, rules):
    attach(dirpath, program_for_rules(rules))
