"""The test oracle for our schemas: jsonschema validators for the official
runtime-spec v1.3.0 schemas and for ours, and hypothesis strategies that
build documents from our schemas (valid ones, then mutated).

Imported by test_schemas.py and test_validator.py; its own tests check
that the strategies really produce what they claim.

Where the official schemas live: CI has them at <repo>/../shared/
oci-spec-v1.3.0 (read-only); tests that need them skip, saying where they
looked, when they are absent.

Known, deliberate differences between ours and the official schemas (the
official comparison keeps away from exactly these; test_schemas.py proves
each one on its own):
  1. ociVersion must be SemVer 2.0.0 (config, state, features): the spec
     says MUST; the official schema takes any string.
  2. string maps (annotations, sysctl, unified): every value must be a
     string; the official `.{1,}` patternProperties leaves the value of an
     empty key (or a key made only of newlines) unchecked.
  3. vm.hwConfig.iomems: every entry is checked; the official schema uses
     the tuple form of `items`, which checks only the first.
  4. vm.hwConfig.irqs: entries are uint32; the official `#definitions/
     uint32` reference is broken and jsonschema cannot resolve it.
"""
import copy
import functools
import importlib.util
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "oci-schemas"
SPEC = REPO.parent / "shared" / "oci-spec-v1.3.0"
SPEC_MISSING = ("official OCI schemas not found at %s (CI provides <repo>/../shared/oci-spec-v1.3.0)"
                % SPEC)
needs_spec = pytest.mark.skipif(not SPEC.is_dir(), reason=SPEC_MISSING)

# kind -> (our file, pointer), (official file, pointer)
ROOTS = {
    "config": (("config.schema.json", ""), ("config-schema.json", "")),
    "process": (("config.schema.json", "/definitions/process"), ("config-schema.json", "/properties/process")),
    "state": (("state.schema.json", ""), ("state-schema.json", "")),
    "features": (("features.schema.json", ""), ("features-schema.json", "")),
}
SEMVER = json.loads((OURS / "types.json").read_text())["definitions"]["ociVersion"]["pattern"]

SETTINGS = settings(
    max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


@functools.lru_cache(maxsize=None)
def compiler_module():
    """oci-schemas/compile.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("oci_schema_compiler", OURS / "compile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _registry(folder):
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    resources = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                resources.append((name, DRAFT4.create_resource(json.load(f))))
    return Registry().with_resources(resources)


@functools.lru_cache(maxsize=None)
def js_validator(which, kind):
    """jsonschema's Draft4Validator for `kind`, on 'ours' or 'official'."""
    file, pointer = ROOTS[kind][0 if which == "ours" else 1]
    return js_node_validator(which, file, pointer)


@functools.lru_cache(maxsize=None)
def js_node_validator(which, file, pointer):
    """jsonschema's Draft4Validator for any node of our/the official schemas."""
    from jsonschema import Draft4Validator

    folder = OURS if which == "ours" else SPEC
    return Draft4Validator({"$ref": "%s#%s" % (file, pointer)}, registry=_cached_registry(str(folder)))


@functools.lru_cache(maxsize=None)
def _cached_registry(folder):
    return _registry(folder)


def js_valid(which, kind, doc):
    return js_validator(which, kind).is_valid(doc)


# --- documents from our schemas ------------------------------------------------

KEYS = st.text(alphabet="abcxyz_.-09", min_size=1, max_size=6)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.5, -0.5, 2.0]),
                    st.text(alphabet="ab \n", max_size=3))
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(KEYS, inner, max_size=2)), max_leaves=4)
# One value of each JSON type: a wrong-type mutation picks among them.
TYPE_SAMPLES = {
    "null": None, "boolean": True, "integer": 7, "number": 2.5, "string": "s",
    "array": [], "object": {},
}


class DocGen:
    """Hypothesis strategies for the documents a schema describes.

    `official=True` keeps to documents on which our schema and the
    official one must agree (see the module docstring)."""

    def __init__(self, official=False):
        self.official = official
        self.comp = compiler_module().Compiler(compiler_module().load_schemas(str(OURS)))
        self._cache = {}

    def resolve(self, file, pointer):
        return self.comp.node(file, pointer)

    # valid documents
    def valid(self, file, pointer):
        key = (file, pointer)
        if key not in self._cache:
            self._cache[key] = self._valid(file, pointer)
        return self._cache[key]

    def _max_items(self, pointer):
        if self.official and pointer.endswith("/hwConfig/properties/irqs"):
            return 0  # difference 4
        if self.official and pointer.endswith("/hwConfig/properties/iomems"):
            return 1  # difference 3
        return 2

    def _valid(self, file, pointer):
        max_items = self._max_items(pointer)
        file, pointer, schema = self.resolve(file, pointer)
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "string":
            if "pattern" in schema:
                return st.from_regex(schema["pattern"])
            return st.text(alphabet="ab/ .\n\u00e9", max_size=5)
        if kind == "integer":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            edges = [v for v in (lo, hi) if v is not None]
            ints = st.integers(lo, hi)
            return st.one_of(ints, st.sampled_from(edges)) if edges else ints
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            items = self.valid(file, pointer + "/items") if "items" in schema else ANY_JSON
            return st.lists(items, min_size=schema.get("minItems", 0), max_size=max_items)
        if kind == "object":
            return self._object(file, pointer, schema)
        return ANY_JSON

    def _object(self, file, pointer, schema):
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        sub = {name: self.valid(file, "%s/properties/%s" % (pointer, name)) for name in props}
        fixed = st.fixed_dictionaries({k: v for k, v in sub.items() if k in required},
                                      optional={k: v for k, v in sub.items() if k not in required})
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            more = st.dictionaries(KEYS, self.valid(file, pointer + "/additionalProperties"), max_size=2)
        elif not props:
            more = st.dictionaries(KEYS, ANY_JSON, max_size=2)
        else:  # members the schema does not name are allowed: sometimes add one
            more = st.one_of(st.just({}), st.dictionaries(st.just("xUnknown"), ANY_JSON, max_size=1))
        return st.builds(lambda a, b: {**b, **a}, fixed, more)

    # mutations
    def sites(self, doc, file, pointer):
        """Every (container, key, file, pointer) in `doc` a mutation can hit;
        container None is the document itself."""
        out = [(None, None, file, pointer)]
        self._sites(doc, file, pointer, out)
        return out

    def _sites(self, value, file, pointer, out):
        file, pointer, schema = self.resolve(file, pointer)
        if isinstance(value, dict):
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    child = "%s/properties/%s" % (pointer, k)
                elif isinstance(extra, dict):
                    child = pointer + "/additionalProperties"
                else:
                    continue
                out.append((value, k, file, child))
                self._sites(v, file, child, out)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                out.append((value, i, file, pointer + "/items"))
                self._sites(v, file, pointer + "/items", out)

    def mutations(self, value, file, pointer):
        """{rule: [replacement values]} for a node (given its current value);
        a replacement ('drop', key) deletes a required member instead."""
        _, _, schema = self.resolve(file, pointer)
        kind = schema.get("type")
        out = {"type": [v for t, v in TYPE_SAMPLES.items()
                        if t != kind and not (kind == "number" and t == "integer")]}
        if kind == "integer":
            out["float"] = [float(schema.get("minimum", 0))]  # a number, not an integer
            if "minimum" in schema:
                out["below"] = [schema["minimum"] - 1]
            if "maximum" in schema:
                out["above"] = [schema["maximum"] + 1]
        if "enum" in schema:
            out["enum"] = [schema["enum"][0] + "x", "", schema["enum"][-1].upper() + "_"]
        if "pattern" in schema and not (self.official and schema["pattern"] == SEMVER):
            out["pattern"] = ["", "!", "x\n", "1.0", "-1"]
        if kind == "array" and schema.get("minItems"):
            out["items"] = [[]]
        if isinstance(value, dict):
            drops = [("drop", k) for k in schema.get("required", ()) if k in value]
            if drops:
                out["required"] = drops
        return out


def documents(gen, kind, max_mutations=2, min_mutations=0):
    """A document from our schema for `kind`, valid or with a few mutations."""
    file, pointer = ROOTS[kind][0]
    return node_documents(gen, file, pointer, max_mutations, min_mutations)


@st.composite
def node_documents(draw, gen, file, pointer, max_mutations=2, min_mutations=0):
    """An instance of one node of our schemas, valid or with a few mutations.

    Each mutation first picks the rule to break, then a node where that
    rule applies, so that rare rules (a maximum) are broken as often as
    common ones (a type)."""
    doc = draw(gen.valid(file, pointer))
    for _ in range(draw(st.integers(min_mutations, max_mutations))):
        by_rule = {}
        for container, key, sfile, spointer in gen.sites(doc, file, pointer):
            current = doc if container is None else container[key]
            for rule, values in gen.mutations(current, sfile, spointer).items():
                by_rule.setdefault(rule, []).append((container, key, values))
        rule = draw(st.sampled_from(sorted(by_rule)))
        container, key, values = draw(st.sampled_from(by_rule[rule]))
        choice = draw(st.sampled_from(values))
        current = doc if container is None else container[key]
        if isinstance(choice, tuple):
            del current[choice[1]]
        elif container is None:
            doc = copy.deepcopy(choice)
        else:
            container[key] = copy.deepcopy(choice)
    return doc


@functools.lru_cache(maxsize=None)
def generator(official):
    return DocGen(official)


# --- the strategies' own tests ------------------------------------------------

@pytest.mark.parametrize("kind", sorted(ROOTS))
@SETTINGS
@given(data=st.data())
def test_unmutated_documents_are_valid(kind, data):
    # Otherwise the equivalence tests would compare mostly-invalid noise.
    doc = data.draw(documents(generator(False), kind, max_mutations=0))
    assert js_valid("ours", kind, doc), js_validator("ours", kind).iter_errors(doc)


def test_mutations_break_rules():
    from hypothesis import Phase, find

    # Some single mutation of a config must break each kind of rule.
    for needle in ("is not of type", "is a required property", "is not one of",
                   "is less than the minimum", "is greater than the maximum", "does not match"):
        find(documents(generator(False), "config", max_mutations=1, min_mutations=1),
             lambda d, needle=needle: any(needle in e.message
                                          for e in js_validator("ours", "config").iter_errors(d)),
             settings=settings(max_examples=300, deadline=None, database=None,
                               phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
