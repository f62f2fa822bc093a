"""Our schemas (oci-schemas/) against the official runtime-spec v1.3.0 ones:
the spec's own good/bad examples, field-by-field structure, and each
deliberate difference proven on its own (see test_schema_oracle.py).

Non-Linux examples (freebsd-*, zos-*): our config schema checks every
platform section the spec defines, exactly as the official schema does, so
their verdicts are the official ones (the good ones pass, the bad
freebsd-vnet-disable fails on freebsd.jail.vnet).  The schema says whether
a document is a valid config.json; whether pyrunc, a Linux runtime, can
run it is decided after validation, by the lifecycle code.
"""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_schema_oracle import (  # noqa: E402
    OURS, ROOTS, SPEC, SPEC_MISSING, js_valid, js_validator, needs_spec,
)

from pyrunc import validate  # noqa: E402
from pyrunc.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _strict_mode():
    """These check the schema's own verdict: `--strict` (pyrunc.compat's
    runc leniency is tested in test_runc_leniency.py)."""
    from pyrunc import compat

    compat.set_strict(True)
    yield
    compat.set_strict(False)

CHECKS = {
    "config": validate.validate_config,
    "state": validate.validate_state,
    "features": validate.validate_features,
}
SOURCES = {"config": "config.json", "state": "state", "features": "features"}


def _examples():
    if not SPEC.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=SPEC_MISSING))]
    paths = sorted((SPEC / "test").glob("*/*/*.json"))
    return [pytest.param(p, id="/".join(p.parts[-3:])) for p in paths]


# The one-line error each bad example must give (the CLI prints exactly this).
BAD_MESSAGES = {
    "config/bad/freebsd-vnet-disable.json":
        "config.json: freebsd.jail.vnet: 'disable' is not one of ['new', 'inherit']",
    "config/bad/invalid-json.json":
        "config.json: invalid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    "config/bad/linux-hugepage.json":
        "config.json: linux.resources.hugepageLimits[0].pageSize: '64kB' does not match "
        "'^[1-9][0-9]*[KMG]B$'",
    "config/bad/linux-netdevice.json":
        "config.json: linux.netDevices.eth0.name: 23 is not of type 'string'",
    "config/bad/linux-rdma.json":
        "config.json: linux.resources.rdma.mlx5_1.hcaHandles: 'not a uint32' is not of type 'integer'",
    "features/bad/missing-ociVersionMax.json":
        "features: (root): 'ociVersionMax' is a required property",
    "state/bad/invalid-json.json":
        "state: invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
}


@pytest.mark.parametrize("path", _examples())
def test_spec_example_verdict(path):
    kind, verdict, name = path.parts[-3:]
    key = "/".join(path.parts[-3:])
    good = verdict == "good"
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        doc = None
    if doc is not None:
        # the oracle agrees with its own examples, and so does our schema
        assert js_valid("official", kind, doc) is good
        assert js_valid("ours", kind, doc) is good
    # ...and the generated validator, reached the way pyrunc reads files
    try:
        got = validate._load(str(path), CHECKS[kind], SOURCES[kind])
    except ConfigError as e:
        assert not good, "%s rejected: %s" % (key, e)
        assert str(e) == BAD_MESSAGES[key]
    else:
        assert good, "%s accepted" % key
        assert got == doc


@needs_spec
def test_every_bad_example_has_an_expected_message():
    bad = {"/".join(p.parts[-3:]) for p in (SPEC / "test").glob("*/bad/*.json")}
    assert bad == set(BAD_MESSAGES)


def test_our_schema_files_are_valid_draft4():
    from jsonschema import Draft4Validator

    names = sorted(n for n in os.listdir(OURS) if n.endswith(".json"))
    assert names == ["config.schema.json", "features.schema.json", "linux.schema.json",
                     "platforms.schema.json", "state.schema.json", "types.json"]
    for name in names:
        with open(OURS / name) as f:
            schema = json.load(f)
        assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
        Draft4Validator.check_schema(schema)


# --- structure: every field of the spec, with its rules ------------------------

class _Flattener:
    """Schema -> {field path: rules}, following $refs across files.
    Paths: `linux.resources.memory.limit`, `[]` for array items, `{}` for
    map values, `[0]` for tuple-form items."""

    def __init__(self, folder):
        self.docs = {}
        for name in os.listdir(folder):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    self.docs[name] = json.load(f)
        self.out = {}

    def resolve(self, file, ref):
        target, _, pointer = ref.partition("#")
        file = target or file
        if pointer and not pointer.startswith("/"):
            return file, None  # not a JSON pointer: unresolvable
        node = self.docs[file]
        for part in pointer.split("/")[1:]:
            node = node[part]
        return file, node

    def visit(self, file, schema, path):
        while "$ref" in schema:  # draft-04: $ref hides its siblings
            file, schema = self.resolve(file, schema["$ref"])
            if schema is None:
                self.out[path] = {"unresolvable": True}
                return
        rules = self.out.setdefault(path, {})
        for key in ("type", "minimum", "maximum", "pattern", "minItems"):
            if key in schema:
                rules[key] = schema[key]
        if "enum" in schema:
            rules["enum"] = frozenset(schema["enum"])
        if "required" in schema:
            rules["required"] = rules.get("required", frozenset()) | frozenset(schema["required"])
        for sub in list(schema.get("allOf", ())) + list(schema.get("anyOf", ())):
            if len(schema.get("anyOf", ())) > 1:
                raise AssertionError("%s: a real anyOf" % path)
            self.visit(file, sub, path)
        for name, sub in schema.get("properties", {}).items():
            self.visit(file, sub, "%s.%s" % (path, name) if path else name)
        items = schema.get("items")
        if isinstance(items, dict):
            self.visit(file, items, path + "[]")
        elif isinstance(items, list):
            for i, sub in enumerate(items):
                self.visit(file, sub, "%s[%d]" % (path, i))
        if isinstance(schema.get("additionalProperties"), dict):
            self.visit(file, schema["additionalProperties"], path + "{}")
        for pattern, sub in schema.get("patternProperties", {}).items():
            self.visit(file, sub, "%s{%s}" % (path, pattern))


def flatten(folder, kind, which):
    file, pointer = ROOTS[kind][0 if which == "ours" else 1]
    fl = _Flattener(str(folder))
    _, schema = fl.resolve(file, "#" + pointer)
    fl.visit(file, schema, "")
    return fl.out


@needs_spec
@pytest.mark.parametrize("kind", sorted(ROOTS))
def test_same_fields_and_rules_as_official(kind):
    ours = flatten(OURS, kind, "ours")
    official = flatten(SPEC, kind, "official")
    semver = json.loads((OURS / "types.json").read_text())["definitions"]["ociVersion"]["pattern"]
    # The documented differences, applied to the official view:
    for path in list(official):
        if path.endswith("{.{1,}}"):  # 2: string maps check every value
            official[path[:-len("{.{1,}}")] + "{}"] = official.pop(path)
        if path.split(".")[-1] in ("ociVersion", "ociVersionMin", "ociVersionMax") and "{" not in path:
            official[path] = dict(official[path], pattern=semver)  # 1: SemVer
    if kind == "config":
        for path in [p for p in official if p.startswith("vm.hwConfig.iomems[0]")]:  # 3
            official[path.replace("iomems[0]", "iomems[]")] = official.pop(path)
        assert official["vm.hwConfig.irqs[]"] == {"unresolvable": True}  # 4
        official["vm.hwConfig.irqs[]"] = {"type": "integer", "minimum": 0, "maximum": 4294967295}
    assert set(ours) == set(official), (set(ours) ^ set(official))
    for path in sorted(ours):
        assert ours[path] == official[path], path
    assert len(ours) > {"config": 300, "process": 40, "state": 6, "features": 20}[kind]


# --- the deliberate differences, one by one ------------------------------------

def _verdicts(kind, doc):
    ours_generated = CHECKS.get(kind, validate.validate_process)
    try:
        ours_generated(doc)
        generated = True
    except ConfigError:
        generated = False
    return js_valid("ours", kind, doc), generated


@needs_spec
def test_difference_1_ociVersion_must_be_semver():
    for version in ("1.0", "v1.0.0", "1.0.0 ", "01.0.0", "latest"):
        doc = {"ociVersion": version, "root": {"path": "rootfs"}}
        assert js_valid("official", "config", doc)
        assert _verdicts("config", doc) == (False, False)
    for version in ("1.0.0", "1.0.2-dev", "1.3.0-rc.1+build.5", "0.2.0"):
        assert _verdicts("config", {"ociVersion": version}) == (True, True)


@needs_spec
def test_difference_2_every_string_map_value_is_a_string():
    for key in ("", "\n"):
        doc = {"ociVersion": "1.0.0", "annotations": {key: 1}}
        assert js_valid("official", "config", doc)
        assert _verdicts("config", doc) == (False, False)


@needs_spec
def test_difference_3_every_vm_iomem_entry_is_checked():
    entry = {"firstMFN": 1, "nrMFNs": 2}
    doc = {"ociVersion": "1.0.0", "vm": {"kernel": {"path": "k"}, "hwConfig": {"iomems": [entry, {}]}}}
    assert js_valid("official", "config", doc)
    assert _verdicts("config", doc) == (False, False)
    doc["vm"]["hwConfig"]["iomems"] = [entry, entry]
    assert _verdicts("config", doc) == (True, True)


@needs_spec
def test_difference_4_vm_irqs_are_uint32():
    from referencing.exceptions import Unresolvable

    doc = {"ociVersion": "1.0.0", "vm": {"kernel": {"path": "k"}, "hwConfig": {"irqs": [5]}}}
    with pytest.raises(Unresolvable):
        js_validator("official", "config").is_valid(doc)
    assert _verdicts("config", doc) == (True, True)
    doc["vm"]["hwConfig"]["irqs"] = [-1]
    assert _verdicts("config", doc) == (False, False)
