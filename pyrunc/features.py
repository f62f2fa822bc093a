"""`pyrunc features`: what this build implements (runtime-spec features
document).  Every claim here has a test behind it."""
from . import OCI_VERSION


def features():
    from .hooks import FATAL_KINDS  # noqa: F401  (hooks module is the authority on kinds)
    from .rootfs import PROPAGATION_OPTIONS, REC_ATTR_OPTIONS, _FLAG_OPTIONS
    from .security.capabilities import known_caps
    from .security.process_attrs import MPOL_FLAGS, MPOL_MODES
    from .spec import HOOK_KINDS, NAMESPACE_FILES

    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(_FLAG_OPTIONS) | set(PROPAGATION_OPTIONS) | set(REC_ATTR_OPTIONS)),
        "linux": {
            "namespaces": sorted(NAMESPACE_FILES),
            "capabilities": list(known_caps()),
            "cgroup": _cgroup_features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
            "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features": "pyrunc",
            # runc's key: checkpoint/restore through CRIU (--criu)
            "org.opencontainers.runc.checkpoint.enabled": "true",
            # which validation this invocation applies (README: Compatibility with runc)
            "io.github.pyrunc.validation": _validation_mode(),
        },
    }
    sec = _seccomp_features()
    if sec is not None:
        doc["linux"]["seccomp"] = sec
    return doc


def _validation_mode():
    from .compat import STRICT

    if STRICT:
        return "strict: config.json must satisfy the runtime-spec schema exactly"
    return "runc: what runc 1.1.5 accepts outside the spec is taken as runc takes it, with a warning"


def _cgroup_features():
    try:
        from .cgroups import features as cg
    except ImportError:
        return {"v1": False, "v2": False, "systemd": False, "systemdUser": False, "rdma": False}
    return cg()


def _seccomp_features():
    try:
        from .security.seccomp import features as sec
    except ImportError:
        return None
    return sec()
