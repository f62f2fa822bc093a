"""Device rules: runc's defaults, the effective rule set, v1 transitions and
the eBPF program (its exact bytes, and its verdicts run through a small
interpreter of the instructions it uses, compared with the rule semantics)."""
import random
import struct

import pytest

from pyrunc.cgroups import default_device_rules
from pyrunc.cgroups import ebpf
from pyrunc.cgroups.devices import DeviceState, normalize, parse_list, v1_transition

DENY_ALL = {"allow": False, "access": "rwm"}


def test_default_rules_are_runcs():
    rules = default_device_rules()
    assert rules[0] == {"allow": True, "type": "c", "access": "m"}
    assert rules[1] == {"allow": True, "type": "b", "access": "m"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert {"allow": True, "type": "c", "major": 136, "access": "rwm"} in rules  # pts: any minor
    assert {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"} in rules
    assert len(rules) == 11


def test_default_rule_dropped_when_linux_devices_lists_the_path():
    rules = default_device_rules([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    assert not any(r.get("major") == 1 and r.get("minor") == 3 for r in rules)
    assert len(rules) == 10


def test_state_from_runc_like_list():
    s = DeviceState.from_rules(normalize([DENY_ALL] + default_device_rules()))
    assert not s.default_allow
    assert s.allows("c", 1, 3, "rw")
    assert s.allows("c", 136, 7, "rw")
    assert s.allows("b", 8, 0, "m")
    assert not s.allows("b", 8, 0, "r")
    assert not s.allows("c", 1, 1, "r")  # /dev/mem


def test_later_rules_override_and_never_punch_wildcards():
    s = DeviceState.from_rules(normalize([
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
        {"allow": True, "type": "c", "major": 4, "access": "rwm"},
        {"allow": False, "type": "c", "major": 4, "minor": 1, "access": "rwm"},
    ]))
    assert s.allows("c", 1, 3, "r") and not s.allows("c", 1, 3, "w") and not s.allows("c", 1, 3, "rw")
    assert s.exceptions[("c", 1, 3)] == "r"
    assert s.allows("c", 4, 1, "r")  # the v1 kernel keeps the wildcard exception


def test_reset_and_blacklist():
    s = DeviceState.from_rules(normalize([
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "access": "rwm"},  # "a": reset to allow-all
        {"allow": False, "type": "b", "major": 8, "access": "w"},
    ]))
    assert s.default_allow and s.exceptions == {("b", 8, -1): "w"}
    assert s.allows("b", 8, 1, "r")
    assert not s.allows("b", 8, 1, "rw")  # any denied bit refuses the request
    assert s.allows("c", 5, 5, "rwm")


def test_parse_list():
    assert parse_list("a *:* rwm\n") == DeviceState(True)
    s = parse_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n")
    assert s.exceptions == {("c", 1, 3): "rwm", ("c", 136, -1): "rw", ("b", -1, -1): "m"}


def test_v1_transition_from_allow_all():
    target = DeviceState.from_rules(normalize([DENY_ALL] + default_device_rules()[:3]))
    writes = v1_transition(DeviceState(True), target)
    assert writes[0] == ("devices.deny", "a")
    assert ("devices.allow", "c *:* m") in writes
    assert ("devices.allow", "c 1:3 rwm") in writes


def test_v1_transition_between_allow_lists_never_resets():
    current = parse_list("c 1:3 rwm\nc 1:5 rwm\n")
    target = DeviceState.from_rules(normalize([DENY_ALL, {"allow": True, "type": "c", "major": 1,
                                                          "minor": 3, "access": "r"}]))
    writes = v1_transition(current, target)
    assert ("devices.deny", "a") not in writes
    assert ("devices.deny", "c 1:3 wm") in writes
    assert ("devices.deny", "c 1:5 rwm") in writes


# -- eBPF ------------------------------------------------------------------

def test_program_bytes_for_one_rule():
    insns = ebpf.program_for_rules([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                               "access": "r"}])
    code = ebpf.encode(insns, "little")
    expected = [
        (0x61, 0x12, 0, 0),        # r2 = *(u32 *)(r1 + 0)
        (0x54, 0x02, 0, 0xFFFF),   # w2 &= 0xffff
        (0x61, 0x13, 0, 0),        # r3 = *(u32 *)(r1 + 0)
        (0x74, 0x03, 0, 16),       # w3 >>= 16
        (0x61, 0x14, 4, 0),        # r4 = major
        (0x61, 0x15, 8, 0),        # r5 = minor
        (0x55, 0x02, 7, 2),        # if r2 != CHAR goto +7 (the default)
        (0xBC, 0x31, 0, 0),        # w1 = w3
        (0x54, 0x01, 0, 2),        # w1 &= READ
        (0x5D, 0x31, 4, 0),        # if r1 != r3 goto +4
        (0x55, 0x04, 3, 1),        # if r4 != 1 goto +3
        (0x55, 0x05, 2, 3),        # if r5 != 3 goto +2
        (0xB4, 0x00, 0, 1),        # w0 = 1
        (0x95, 0x00, 0, 0),        # exit
        (0xB4, 0x00, 0, 0),        # w0 = 0 (default deny)
        (0x95, 0x00, 0, 0),        # exit
    ]
    assert code == b"".join(struct.pack("<BBhi", *e) for e in expected)


def run_program(insns, typ, major, minor, access):
    """Interpret the subset of eBPF the generator emits."""
    acc = sum(ebpf._ACCESS_BITS[c] for c in access)
    ctx = [(acc << 16) | ebpf._TYPE[typ], major, minor]
    regs = [0] * 11
    pc = 0
    m32 = 0xFFFFFFFF
    while True:
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == ebpf.LDX_MEM_W:
            regs[dst] = ctx[off // 4]
        elif code == ebpf.ALU32_AND_K:
            regs[dst] = (regs[dst] & imm) & m32
        elif code == ebpf.ALU32_RSH_K:
            regs[dst] = (regs[dst] & m32) >> imm
        elif code == ebpf.ALU32_MOV_K:
            regs[dst] = imm & m32
        elif code == ebpf.ALU32_MOV_X:
            regs[dst] = regs[src] & m32
        elif code == ebpf.JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == ebpf.JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif code == ebpf.JNE_X:
            pc += off if regs[dst] != regs[src] else 0
        elif code == ebpf.EXIT:
            return regs[0] == 1
        else:
            raise AssertionError("unexpected opcode %#x" % code)


def random_rule(rnd):
    rule = {"allow": rnd.random() < 0.6, "type": rnd.choice("acbcb")}
    if rnd.random() < 0.7:
        rule["major"] = rnd.choice((1, 4, 8, 136))
    if rnd.random() < 0.6:
        rule["minor"] = rnd.choice((0, 3, 5))
    rule["access"] = "".join(c for c in "rwm" if rnd.random() < 0.6) or "r"
    return rule


@pytest.mark.parametrize("seed", range(40))
def test_program_verdicts_match_rule_semantics(seed):
    rnd = random.Random(seed)
    rules = [random_rule(rnd) for _ in range(rnd.randint(1, 8))]
    if rnd.random() < 0.5:
        rules.insert(0, DENY_ALL)
    state = DeviceState.from_rules(normalize(rules))
    insns = ebpf.program(state)
    for typ in "cb":
        for major in (1, 4, 8, 136, 200):
            for minor in (0, 3, 5, 9):
                for access in ("r", "w", "m", "rw", "rwm", "wm"):
                    assert run_program(insns, typ, major, minor, access) == \
                        state.allows(typ, major, minor, access), (rules, typ, major, minor, access)


def test_program_allow_all_without_rules():
    insns = ebpf.program_for_rules([{"allow": True, "access": "rwm"}])
    assert insns[-2] == (ebpf.ALU32_MOV_K, 0, 0, 0, 1) and len(insns) == 8
