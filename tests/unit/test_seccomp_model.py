"""linux.seccomp validation, constants and `features` (no filter is loaded)."""
import os
import subprocess
import sys

import pytest

from pyrunc import log
from pyrunc.errors import ConfigError
from pyrunc.security import seccomp
from pyrunc.security.seccomp import Seccomp
from pyrunc.security.seccomp_filter import flag_supported, libseccomp_version, version_tuple

SCHEMA_DIR = "/work/shared/oci-spec-v1.3.0"
HEADER = "/usr/include/seccomp.h"


def doc(**kw):
    d = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]}
    d.update(kw)
    return d


def rule(**kw):
    r = {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}
    r.update(kw)
    return r


@pytest.mark.parametrize("bad,message", [
    ([], r"^config.json: linux.seccomp: must be an object$"),
    ({}, r"^config.json: linux.seccomp.defaultAction: required$"),
    (doc(defaultAction="SCMP_ACT_FOO"), r"linux.seccomp.defaultAction: unknown action 'SCMP_ACT_FOO'$"),
    (doc(defaultAction="SCMP_ACT_NOTIFY"), r"defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"),
    (doc(defaultErrnoRet=5), r"linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW does not return an errno"),
    (doc(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=-1), r"defaultErrnoRet: must be an integer in \[0, 65535\]"),
    (doc(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=True), r"defaultErrnoRet: must be an integer"),
    (doc(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_VAX"]), r"linux.seccomp.architectures\[1\]: unknown architecture 'SCMP_ARCH_VAX'"),
    (doc(architectures="SCMP_ARCH_X86"), r"linux.seccomp.architectures: must be an array of strings"),
    (doc(flags=["SECCOMP_FILTER_FLAG_NOPE"]), r"linux.seccomp.flags\[0\]: unknown flag 'SECCOMP_FILTER_FLAG_NOPE'"),
    (doc(listenerPath=3), r"linux.seccomp.listenerPath: must be a string"),
    (doc(syscalls={}), r"linux.seccomp.syscalls: must be an array"),
    (doc(syscalls=[rule(), "x"]), r"linux.seccomp.syscalls\[1\]: must be an object"),
    (doc(syscalls=[rule(), rule(), rule(), rule(action="SCMP_ACT_FOO")]),
     r"^config.json: linux.seccomp.syscalls\[3\].action: unknown action 'SCMP_ACT_FOO'$"),
    (doc(syscalls=[rule(action=None)]), r"linux.seccomp.syscalls\[0\].action: required"),
    (doc(syscalls=[rule(names=[])]), r"linux.seccomp.syscalls\[0\].names: must be a non-empty array"),
    (doc(syscalls=[rule(names=["uname", ""])]), r"linux.seccomp.syscalls\[0\].names\[1\]: empty string is not a valid syscall"),
    (doc(syscalls=[rule(action="SCMP_ACT_KILL", errnoRet=1)]), r"syscalls\[0\].errnoRet: SCMP_ACT_KILL does not return an errno"),
    (doc(syscalls=[rule(errnoRet=70000)]), r"syscalls\[0\].errnoRet: must be an integer in \[0, 65535\]"),
    (doc(syscalls=[rule(action="SCMP_ACT_NOTIFY")]), r"linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used"),
    (doc(listenerPath="/x", syscalls=[rule(names=["write"], action="SCMP_ACT_NOTIFY")]),
     r"syscalls\[0\].names: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    (doc(syscalls=[rule(args={})]), r"syscalls\[0\].args: must be an array"),
    (doc(syscalls=[rule(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]),
     r"syscalls\[0\].args\[0\].index: 6 is out of range"),
    (doc(syscalls=[rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}])]),
     r"syscalls\[0\].args\[0\].op: unknown operator 'SCMP_CMP_XX'"),
    (doc(syscalls=[rule(args=[{"index": 0, "op": "SCMP_CMP_EQ"}])]), r"syscalls\[0\].args\[0\].value: required"),
    (doc(syscalls=[rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])]),
     r"syscalls\[0\].args\[0\].value: must be an integer in \[0, 18446744073709551615\]"),
    (doc(syscalls=[rule(args=[{"index": 0, "value": 1, "valueTwo": "2", "op": "SCMP_CMP_MASKED_EQ"}])]),
     r"syscalls\[0\].args\[0\].valueTwo: must be an integer"),
])
def test_invalid_configs_name_the_field(bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        Seccomp.from_dict(bad)
    assert "\n" not in str(info.value)


def test_valid_model():
    s = Seccomp.from_dict({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64"], "flags": [], "listenerPath": "/run/agent.sock",
        "listenerMetadata": "m",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 0xFF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
        ]})
    assert s.default_value() == 0x00050000 | 38
    assert s.flags == [] and s.uses_notify and s.listener_metadata == "m"
    assert s.syscalls[0].action_value() == 0x7FFF0000
    assert s.syscalls[2].args[2].operands() == (7, 0xFF, 1)
    # two conditions on arg 0: one rule per condition (runc's split)
    assert [len(c) for c in s.syscalls[2].condition_sets()] == [1, 1, 1]
    assert Seccomp.from_dict(doc()).flags is None  # absent: the runtime's default


@pytest.mark.parametrize("action,errno_ret,value", [
    ("SCMP_ACT_ERRNO", None, 0x00050001),   # EPERM by default
    ("SCMP_ACT_ERRNO", 0, 0x00050000),
    ("SCMP_ACT_TRACE", None, 0x7FF00001),
    ("SCMP_ACT_TRACE", 1234, 0x7FF004D2),
    ("SCMP_ACT_KILL", None, 0),
    ("SCMP_ACT_KILL_PROCESS", None, 0x80000000),
])
def test_action_values(action, errno_ret, value):
    assert seccomp.action_value(action, errno_ret) == value


def header_defines():
    """Name -> value of the simple #defines and enum members in <seccomp.h>."""
    import re

    text = open(HEADER).read()
    values = {}
    for name, val in re.findall(r"#define\s+(SCMP_ACT_\w+)\s+(0x[0-9a-fA-F]+)U", text):
        values[name] = int(val, 16)
    for name, val in re.findall(r"#define\s+(SCMP_ACT_(?:ERRNO|TRACE))\(x\)\s+\((0x[0-9a-fA-F]+)U", text):
        values[name] = int(val, 16)
    for name, val in re.findall(r"\b(SCMP_(?:CMP|FLTATR)_\w+)\s*=\s*(\d+)", text):
        values[name] = int(val)
    for name, alias in re.findall(r"#define\s+(SCMP_ACT_\w+)\s+(SCMP_ACT_\w+)\s*$", text, re.M):
        values[name] = values[alias]
    return values


@pytest.mark.skipif(not os.path.exists(HEADER), reason="no <seccomp.h> here (libseccomp-dev not installed)")
def test_constants_match_the_installed_header():
    h = header_defines()
    for name, value in seccomp.ACTION_VALUES.items():
        assert h[name] == value, name
    for name, value in seccomp.OPERATORS.items():
        assert h[name] == value, name
    attrs = {"SECCOMP_FILTER_FLAG_TSYNC": "SCMP_FLTATR_CTL_TSYNC", "SECCOMP_FILTER_FLAG_LOG": "SCMP_FLTATR_CTL_LOG",
             "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "SCMP_FLTATR_CTL_SSB",
             "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": "SCMP_FLTATR_CTL_WAITKILL"}
    for flag, attr in attrs.items():
        if attr in h:  # WAITKILL only from libseccomp 2.6
            assert h[attr] == seccomp.FLAG_ATTRS[flag], flag
    from pyrunc.security import seccomp_filter as sf
    assert (h["SCMP_FLTATR_CTL_NNP"], h["SCMP_FLTATR_CTL_OPTIMIZE"], h["SCMP_FLTATR_API_SYSRAWRC"]) == \
        (sf.ATTR_CTL_NNP, sf.ATTR_CTL_OPTIMIZE, sf.ATTR_API_SYSRAWRC)


def schema_enum(name):
    import json

    with open(os.path.join(SCHEMA_DIR, "defs-linux.json")) as f:
        return json.load(f)["definitions"][name]["enum"]


def test_model_tables_cover_the_spec():
    if not os.path.isdir(SCHEMA_DIR):
        pytest.skip("runtime-spec schemas not at %s" % SCHEMA_DIR)
    assert sorted(seccomp.ACTION_VALUES) == sorted(schema_enum("SeccompAction"))
    assert sorted(seccomp.OPERATORS) == sorted(schema_enum("SeccompOperators"))
    assert sorted(seccomp.ARCHS) == sorted(schema_enum("SeccompArch"))
    assert sorted(seccomp.FLAG_ATTRS) == sorted(schema_enum("SeccompFlag"))


def test_features_are_what_libseccomp_does_here():
    f = seccomp.features()
    assert f["enabled"] is True
    assert f["operators"] == sorted(seccomp.OPERATORS)
    assert f["knownFlags"] == list(seccomp.FLAG_ATTRS)
    assert set(f["supportedFlags"]) <= set(f["knownFlags"])
    # every claim holds: each action, arch and supported flag compiles
    for action in f["actions"]:
        d = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": action}]}
        if action == "SCMP_ACT_NOTIFY":
            d["listenerPath"] = "/x"
        Seccomp.from_dict(d).compile().release()
    for arch in f["archs"]:
        Seccomp.from_dict(doc(architectures=[arch])).compile().release()
    for flag in f["supportedFlags"]:
        Seccomp.from_dict(doc(flags=[flag])).compile().release()
    # and what is left out is refused with the field named
    for arch in set(seccomp.ARCHS) - set(f["archs"]):
        with pytest.raises(ConfigError, match=r"linux.seccomp.architectures\[0\]: (%s is not supported by libseccomp "
                                              r"|adding %s: .*byte order)" % (arch, arch)):
            Seccomp.from_dict(doc(architectures=[arch])).compile()
    for flag in set(f["knownFlags"]) - set(f["supportedFlags"]):
        with pytest.raises(ConfigError, match=r"linux.seccomp.flags\[1\]: %s is not supported" % flag):
            Seccomp.from_dict(doc(flags=["SECCOMP_FILTER_FLAG_LOG", flag])).compile()


def test_wait_killable_recv_needs_libseccomp_2_6():
    flag = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    if version_tuple() >= (2, 6, 0):
        pytest.skip("libseccomp %s: the flag may be supported" % libseccomp_version())
    assert not flag_supported(flag)
    assert flag not in seccomp.features()["supportedFlags"]


def test_version():
    v = seccomp.libseccomp_version()
    assert v == "%d.%d.%d" % version_tuple() and version_tuple() >= (2, 5, 0)


def test_unknown_syscall_is_a_debug_line(tmp_path):
    path = str(tmp_path / "log")
    saved = log.logger()
    log.configure(path, "text", debug=True)
    try:
        d = doc(syscalls=[rule(names=["no_such_syscall_xyz", "uname"])])
        Seccomp.from_dict(d).compile().release()
    finally:
        log._logger = saved
    with open(path) as f:
        text = f.read()
    assert 'level=debug' in text and 'unknown seccomp syscall \\"no_such_syscall_xyz\\" ignored' in text


def test_model_import_is_cheap():
    """Loading a config must not load libseccomp, socket, re or json."""
    pkg_parent = os.path.dirname(os.path.dirname(__import__("pyrunc").__file__))
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from pyrunc.security.seccomp import Seccomp\n"
            "Seccomp.from_dict({'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['x'], 'action': 'SCMP_ACT_LOG'}]})\n"
            "print(' '.join(m for m in ('pyrunc._native_seccomp', 'socket', 're', 'json') if m in sys.modules))"
            % pkg_parent)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_fd_passing_helpers():
    import socket

    from pyrunc.security import seccomp_listener as sl

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        seccomp.send_fd(a.fileno(), r, b"hello")
        fd, data = seccomp.recv_fd(b.fileno())
        assert data == b"hello" and fd not in (r, w)
        assert os.get_inheritable(fd) is False  # MSG_CMSG_CLOEXEC
        os.write(w, b"x")
        assert os.read(fd, 1) == b"x"  # the same pipe
        os.close(fd)
        a.sendmsg([b"two"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, sl._fd_bytes([r, w]))])
        fd, data = seccomp.recv_fd(b.fileno())
        assert data == b"two" and os.path.samestat(os.fstat(fd), os.fstat(r))
        os.close(fd)
        a.send(b"plain")
        assert seccomp.recv_fd(b.fileno()) == (None, b"plain")
        assert a.fileno() >= 0 and b.fileno() >= 0  # the helpers leave the sockets open
    finally:
        for s in (a, b):
            s.close()
        os.close(r)
        os.close(w)


def test_container_process_state_shape():
    from pyrunc.security.seccomp_listener import container_process_state

    state = {"ociVersion": "1.3.0", "id": "c", "status": "creating", "pid": 42, "bundle": "/b"}
    doc = container_process_state(state)
    assert doc == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": 42, "state": state}
    assert container_process_state(state, "m", pid=7)["metadata"] == "m"
    assert container_process_state(state, "m", pid=7)["pid"] == 7
