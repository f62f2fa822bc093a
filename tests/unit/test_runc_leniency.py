"""pyrunc.compat: what runc 1.1.5 accepts outside the spec is taken as runc
takes it, with one warning naming the JSON path; `--strict` keeps the
schema's verdict; what runc refuses stays refused."""
import copy
import json

import pytest

from pyrunc import compat, log, validate
from pyrunc.errors import ConfigError

BASE = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                                 "permitted": ["CAP_CHOWN"]}},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
}


@pytest.fixture
def warnings(tmp_path):
    """Log to a file (as --log does); -> a function returning the warnings
    logged so far, as messages."""
    path = tmp_path / "log.json"
    log.configure(str(path), "json")
    compat.set_strict(False)

    def read():
        lines = path.read_text().splitlines()
        return [json.loads(x)["msg"] for x in lines if json.loads(x)["level"] == "warning"]

    yield read
    log.configure()
    compat.set_strict(False)


def config(**changes):
    doc = copy.deepcopy(BASE)
    for path, value in changes.items():
        obj = doc
        keys = path.split("__")
        for k in keys[:-1]:
            obj = obj.setdefault(k, {})
        obj[keys[-1]] = value
    return doc


def strict_refuses(doc, field):
    compat.set_strict(True)
    try:
        with pytest.raises(ConfigError) as e:
            validate.validate_config(doc)
    finally:
        compat.set_strict(False)
    assert field in str(e.value)


@pytest.mark.parametrize("value", ["rprivate", "rslave", "rshared", "runbindable", ""])
def test_rootfs_propagation_runc_values(warnings, value):
    doc = validate.validate_config(config(linux__rootfsPropagation=value))
    # the runtime gets runc's value (rootfs.PROPAGATION_OPTIONS maps it)
    assert doc["linux"]["rootfsPropagation"] == value
    [w] = warnings()
    assert w.startswith('config.json: linux.rootfsPropagation: "%s" is not a spec value; taken as runc takes it' % value)
    strict_refuses(config(linux__rootfsPropagation=value), "linux.rootfsPropagation")


def test_rootfs_propagation_spec_values_warn_nothing(warnings):
    for value in ("private", "shared", "slave", "unbindable"):
        validate.validate_config(config(linux__rootfsPropagation=value))
    assert warnings() == []


def test_rootfs_propagation_unknown_still_refused(warnings):
    with pytest.raises(ConfigError, match="linux.rootfsPropagation"):
        validate.validate_config(config(linux__rootfsPropagation="rwhatever"))


@pytest.mark.parametrize("rule,expected", [
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwa"}, "rw"),
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mwrwm"}, "rwm"),
    ({"allow": False, "type": "a", "access": "rwa"}, "rwm"),
    ({"allow": False, "access": "ra"}, "rwm"),
])
def test_device_access_letters_as_runc_reads_them(warnings, rule, expected):
    doc = validate.validate_config(config(linux__resources={"devices": [rule]}))
    assert doc["linux"]["resources"]["devices"][0]["access"] == expected
    [w] = warnings()
    assert w.startswith("config.json: linux.resources.devices[0].access: ")
    assert w.endswith('taken as "%s", as runc does' % expected)


def test_device_rule_without_permissions_is_left_out(warnings):
    rules = [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "a"},
             {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]
    doc = validate.validate_config(config(linux__resources={"devices": copy.deepcopy(rules)}))
    assert doc["linux"]["resources"]["devices"] == [rules[1]]
    assert "linux.resources.devices[0].access" in warnings()[0]


@pytest.mark.parametrize("rule", [
    {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "RWM"},
    {"type": "c", "major": 10, "minor": 200, "access": "x"},  # allow missing: a deny rule
])
def test_deny_rule_that_denies_nothing_stays_refused(warnings, rule):
    """runc drops it; dropping a deny rule would give the container a
    device its author meant to refuse: an error, as before."""
    from pyrunc.cgroups.resources import Resources

    with pytest.raises(ConfigError, match=r"devices\[1\]\.access"):
        doc = validate.validate_config(config(linux__resources={"devices": [
            {"allow": True, "type": "a", "access": "rwm"}, rule]}))
        Resources.from_dict(doc["linux"]["resources"])  # what create builds from it


def test_device_rule_allow_missing_is_a_deny_and_empty_type_all(warnings):
    doc = validate.validate_config(config(linux__resources={"devices": [{"type": "", "access": "rwm"}]}))
    assert doc["linux"]["resources"]["devices"] == [{"allow": False, "type": "a", "access": "rwm"}]
    assert [w.split(": ")[1] for w in warnings()] == ["linux.resources.devices[0].allow",
                                                      "linux.resources.devices[0].type"]
    strict_refuses(config(linux__resources={"devices": [{"access": "rwm"}]}), "'allow' is a required property")


def test_unknown_capabilities_dropped_with_a_warning(warnings):
    caps = {"bounding": ["CAP_CHOWN", "CAP_NOT_A_CAP"], "effective": ["CAP_CHOWN"],
            "permitted": ["CAP_FOO", "CAP_CHOWN", "CAP_BAR"]}
    doc = validate.validate_config(config(process__capabilities=caps))
    assert doc["process"]["capabilities"]["bounding"] == ["CAP_CHOWN"]
    assert doc["process"]["capabilities"]["permitted"] == ["CAP_CHOWN"]
    assert warnings() == [
        'config.json: process.capabilities.bounding: ignoring unknown capabilities "CAP_NOT_A_CAP", as runc does',
        'config.json: process.capabilities.permitted: ignoring unknown capabilities "CAP_FOO", "CAP_BAR", '
        'as runc does',
    ]


def test_strict_keeps_unknown_capabilities_for_the_runtime_to_refuse(warnings):
    compat.set_strict(True)
    caps = {"bounding": ["CAP_NOT_A_CAP"]}
    doc = validate.validate_config(config(process__capabilities=caps))
    assert doc["process"]["capabilities"]["bounding"] == ["CAP_NOT_A_CAP"]
    from pyrunc.security.capabilities import check
    from pyrunc.spec import Capabilities

    with pytest.raises(ConfigError, match=r"process.capabilities.bounding\[0\]: unknown capability"):
        check(Capabilities(doc["process"]["capabilities"]))
    assert warnings() == []


def test_exec_process_capabilities_too(warnings):
    doc = validate.validate_process({"cwd": "/", "args": ["true"], "capabilities": {"ambient": ["CAP_X"]}})
    assert doc["capabilities"]["ambient"] == []
    assert warnings()[0].startswith("process.json: capabilities.ambient: ignoring unknown capabilities")


def test_sysctl_slash_names(warnings):
    doc = validate.validate_config(config(linux__sysctl={"net/ipv4/ip_forward": "1", "kernel.shmmax": "1"}))
    assert doc["linux"]["sysctl"] == {"kernel.shmmax": "1", "net.ipv4.ip_forward": "1"}
    assert warnings() == ['config.json: linux.sysctl["net/ipv4/ip_forward"]: slash-separated name taken as '
                          '"net.ipv4.ip_forward", as runc does']


@pytest.mark.parametrize("version", [None, "1.0", "v1.0.2", "1.0.2-dev"])
def test_oci_version_runc_does_not_read(warnings, version):
    doc = config()
    if version is None:
        del doc["ociVersion"]
    else:
        doc["ociVersion"] = version
    out = validate.validate_config(doc)
    assert out.get("ociVersion") == version  # hidden from the schema only
    if version == "1.0.2-dev":
        assert warnings() == []  # SemVer: nothing to say
        return
    [w] = warnings()
    assert w.startswith("config.json: ociVersion: ")
    strict_refuses(doc, "ociVersion")


def test_rlimit_without_soft_or_hard(warnings):
    doc = validate.validate_config(config(process__rlimits=[{"type": "RLIMIT_NOFILE", "hard": 10}]))
    assert doc["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 0}]
    assert warnings() == ["config.json: process.rlimits[0].soft: missing; taken as 0, as runc does"]


def test_seccomp_without_default_action_or_rules_is_no_filter(warnings):
    doc = validate.validate_config(config(linux__seccomp={"architectures": ["SCMP_ARCH_X86_64"]}))
    assert "seccomp" not in doc["linux"]
    assert warnings() == ["config.json: linux.seccomp: no defaultAction and no syscalls: no filter, as runc does"]


def test_seccomp_rules_without_default_action_still_refused(warnings):
    sec = {"syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}
    with pytest.raises(ConfigError, match="defaultAction"):
        validate.validate_config(config(linux__seccomp=sec))


def test_seccomp_errno_ret_on_an_action_without_errno_ignored(warnings):
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5,
           "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG", "errnoRet": 1},
                        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    doc = validate.validate_config(config(linux__seccomp=sec))
    assert "defaultErrnoRet" not in doc["linux"]["seccomp"]
    assert "errnoRet" not in doc["linux"]["seccomp"]["syscalls"][0]
    assert doc["linux"]["seccomp"]["syscalls"][1]["errnoRet"] == 1
    assert [w.split(": ")[1] for w in warnings()] == ["linux.seccomp.defaultErrnoRet",
                                                      "linux.seccomp.syscalls[0].errnoRet"]


def test_relative_mount_destination_warns(warnings):
    doc = config()
    doc["mounts"].append({"destination": "tmp", "type": "tmpfs", "source": "tmpfs"})
    validate.validate_config(doc)
    assert warnings() == ['config.json: mounts[1].destination: "tmp" is not absolute; taken relative to the '
                          "container's root, as runc does"]


def test_strict_rewrites_nothing(warnings):
    compat.set_strict(True)
    doc = config(linux__resources={"devices": [{"allow": True, "type": "c", "major": 1, "minor": 3,
                                                "access": "rwa"}]},
                 linux__sysctl={"net/ipv4/ip_forward": "1"})
    before = copy.deepcopy(doc)
    assert validate.validate_config(doc) == before
    assert warnings() == []


def test_console_size_missing_a_side(warnings):
    doc = validate.validate_config(config(process__consoleSize={"height": 24}))
    assert doc["process"]["consoleSize"] == {"height": 24, "width": 0}
    assert warnings() == ["config.json: process.consoleSize.width: missing; taken as 0 (not set), as runc does"]


def test_seccomp_rules_naming_no_syscall(warnings):
    sec = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"},
                        {"action": "SCMP_ACT_ALLOW"},
                        {"names": ["", "getpid"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    doc = validate.validate_config(config(linux__seccomp=sec))
    assert doc["linux"]["seccomp"]["syscalls"] == [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                                                   {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    assert [w.split(": ")[1] for w in warnings()] == ["linux.seccomp.syscalls[0].names",
                                                      "linux.seccomp.syscalls[1].names",
                                                      "linux.seccomp.syscalls[2].names"]


def test_seccomp_empty_rule_with_unknown_action_still_refused(warnings):
    sec = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_NOPE"}]}
    with pytest.raises(ConfigError, match=r"linux.seccomp.syscalls\[0\]"):
        validate.validate_config(config(linux__seccomp=sec))
