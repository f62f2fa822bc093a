"""The generated validator (pyrunc/_validator.py) and pyrunc.validate.

- it is what oci-schemas/compile.py generates today (never stale);
- it imports nothing, and validating a config loads neither re, json nor
  jsonschema;
- every pattern's DFA answers as re.search does;
- hypothesis: on documents built from our schemas (valid and mutated), its
  verdict equals jsonschema's on our schema, the error it reports is one
  jsonschema reports, and its verdict equals jsonschema's on the OFFICIAL
  schema (subset compared: documents that keep away from the four
  documented differences, see test_schema_oracle.py);
- the compiler's other keywords (anyOf, allOf, additionalProperties false,
  ...) agree with jsonschema on a synthetic schema;
- errors are one line: source, JSON path, rule.
"""
import ast
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from test_schema_oracle import (  # noqa: E402
    ANY_JSON, OURS, REPO, ROOTS, SETTINGS, compiler_module, documents, generator,
    js_node_validator, js_valid, js_validator, needs_spec, node_documents,
)

from pyrunc import _validator, validate  # noqa: E402
from pyrunc.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _strict_mode():
    """These check the schema's own verdict: `--strict` (pyrunc.compat's
    runc leniency is tested in test_runc_leniency.py)."""
    from pyrunc import compat

    compat.set_strict(True)
    yield
    compat.set_strict(False)

GENERATED = REPO / "pyrunc" / "_validator.py"
RAW = {"config": _validator.config, "process": _validator.process,
       "state": _validator.state, "features": _validator.features}
KINDS = sorted(ROOTS)


# --- the generated module --------------------------------------------------------

def test_generated_module_is_up_to_date():
    # Fails when a schema or compile.py changed without regenerating:
    # run `python oci-schemas/compile.py` and commit pyrunc/_validator.py.
    assert compiler_module().generate(str(OURS)) == GENERATED.read_text(encoding="utf-8")


def test_compile_script_check_mode():
    script = str(OURS / "compile.py")
    ok = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_generated_module_imports_nothing_at_top_level():
    tree = ast.parse(GENERATED.read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_validating_loads_no_heavy_module(tmp_path):
    config = {
        "ociVersion": "1.0.2-dev", "root": {"path": "rootfs"}, "hostname": "h",
        "process": {"cwd": "/", "args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}],
                    "execCPUAffinity": {"initial": "0-1"}},
        "linux": {"namespaces": [{"type": "pid"}], "devices": [{"type": "c", "path": "/dev/x"}],
                  "resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]},
                  "intelRdt": {"memBwSchema": "MB:0=20"}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = ("import sys; sys.path.insert(0, %r); import pyrunc.validate as v; "
            "v.load_config(%r); print(' '.join(sorted(m for m in ('re', 'json', 'jsonschema', 'enum') "
            "if m in sys.modules)))" % (str(REPO), str(path)))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# --- patterns as DFAs ---------------------------------------------------------------

def _compiled():
    comp = compiler_module().Compiler(compiler_module().load_schemas(str(OURS)))
    comp.generate()
    return comp


COMPILED = _compiled()
PATTERNS = COMPILED.patterns  # pattern -> function name in _validator
NODES = sorted((name, file, pointer) for (file, pointer), name in COMPILED.functions.items())


def _strings_for(pattern):
    chars = "".join(sorted(set(re.sub(r"\\.", "", pattern)) - set("^$[]()*+?|{}\\")))
    return st.one_of(
        st.from_regex(pattern),
        st.text(alphabet=chars + "0aZ-.\n+_", max_size=12),
        st.text(max_size=4),
    )


@SETTINGS
@given(data=st.data())
def test_pattern_dfas_answer_like_re_search(data):
    pattern = data.draw(st.sampled_from(sorted(PATTERNS)))
    s = data.draw(_strings_for(pattern))
    assert getattr(_validator, PATTERNS[pattern])(s) == (re.search(pattern, s) is not None), (pattern, s)


def test_every_pattern_of_ours_became_a_dfa():
    assert len(PATTERNS) == 7
    assert "_re_search" not in GENERATED.read_text()


EXTRA_PATTERNS = [
    "ab|cd", "^a(b|c)*d?$", "x{2,3}y", "^[^a-c]+$", "a.c", "^(0|[1-9][0-9]*)$", "\\.", "^$", "",
    "b+$", "^a?b{0,2}$", "[-a]", "^\\+[0-9]{1}$", "^(?:ab)+$", "a$", "^a", "[]a]", "^[a-]{2,}$",
]


def _dfa_runners():
    ns = {}
    mod = compiler_module()
    exec(mod.DFA_END + "\n" + mod.DFA_ANY, ns)
    return ns


@SETTINGS
@given(data=st.data())
def test_regex_compiler_agrees_with_re(data):
    ns = _dfa_runners()
    pattern = data.draw(st.sampled_from(EXTRA_PATTERNS))
    s = data.draw(st.one_of(st.from_regex(pattern), st.text(alphabet="abcdxy019-+.]\n", max_size=8)))
    table, end_anchored = compiler_module().compile_pattern(pattern)
    run = ns["_dfa_end" if end_anchored else "_dfa_any"]
    assert run(table, s) == (re.search(pattern, s) is not None), (pattern, s)


@pytest.mark.parametrize("pattern", ["\\d+", "(?i)a", "a|^b", "a*?", "(?=a)", "\\bx", "^a|b$"])
def test_regex_compiler_refuses_what_it_cannot_translate(pattern):
    with pytest.raises(compiler_module().Unsupported):
        compiler_module().compile_pattern(pattern)


# --- equivalence with jsonschema ----------------------------------------------------

def _path(err):
    return list(reversed(err[1:]))


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_same_verdict_and_error_as_jsonschema_on_our_schema(kind, data):
    doc = data.draw(documents(generator(False), kind))
    err = RAW[kind](doc)
    errors = list(js_validator("ours", kind).iter_errors(doc))
    assert (err is None) == (not errors), (err, [e.message for e in errors])
    if err is not None and "...(truncated)" not in err[0]:
        # the error we report is one jsonschema reports, at the same place
        assert (err[0], _path(err)) in [(e.message, list(e.absolute_path)) for e in errors]


@pytest.mark.parametrize("name, file, pointer", NODES, ids=[n[0] for n in NODES])
@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_each_generated_function_agrees_with_jsonschema(name, file, pointer, data):
    # Node by node: rules deep inside (a seccomp rule's required `names`)
    # get as many tries as the top-level ones.
    doc = data.draw(node_documents(generator(False), file, pointer))
    err = getattr(_validator, name)(doc)
    errors = list(js_node_validator("ours", file, pointer).iter_errors(doc))
    assert (err is None) == (not errors), (err, [e.message for e in errors])
    if err is not None and "...(truncated)" not in err[0]:
        assert (err[0], _path(err)) in [(e.message, list(e.absolute_path)) for e in errors]


@needs_spec
@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_same_verdict_as_official_schema(kind, data):
    doc = data.draw(documents(generator(True), kind))
    assert (RAW[kind](doc) is None) == js_valid("official", kind, doc)


SYNTHETIC = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["a"],
    "additionalProperties": False,
    "properties": {
        "a": {"anyOf": [{"type": "integer", "minimum": 2}, {"type": "string", "maxLength": 2},
                        {"$ref": "#/definitions/obj"}]},
        "b": {"allOf": [{"type": ["number", "null"]}, {"maximum": 3, "exclusiveMaximum": True},
                        {"minimum": -1, "exclusiveMinimum": True}]},
        "c": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"enum": ["x", "y"]}},
        "d": {"minLength": 1, "pattern": "b"},
        "e": {"type": "object", "patternProperties": {"^x": {"type": "boolean"}},
              "additionalProperties": {"type": "null"}},
        "f": {"type": "string", "pattern": "^\\d+$"},  # \d gets no DFA: the lazy `re` fallback
    },
    "definitions": {
        "obj": {"type": "object", "required": ["z"], "properties": {"z": {"type": "array", "maxItems": 0}}},
    },
}
SYN_KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f", "z", "x1", "y"])
SYN_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 4), st.sampled_from([2.5, 3.0, -1.0, 0.5]),
              st.sampled_from(["", "b", "ab", "abc", "x", "y", "12", "1a", "\u0661"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(SYN_KEYS, inner, max_size=3)),
    max_leaves=6)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from jsonschema import Draft4Validator

    folder = tmp_path_factory.mktemp("schemas")
    (folder / "s.json").write_text(json.dumps(SYNTHETIC))
    source = compiler_module().generate(str(folder), (("root", "s.json", ""),))
    ns = {}
    assert "_re_search(" in source
    exec(compile(source, "synthetic_validator", "exec"), ns)
    return ns["root"], Draft4Validator(SYNTHETIC)


@SETTINGS
@given(doc=st.one_of(st.dictionaries(SYN_KEYS, SYN_VALUES, max_size=4), SYN_VALUES))
def test_compiler_keywords_agree_with_jsonschema(synthetic, doc):
    check, oracle = synthetic
    assert (check(doc) is None) == oracle.is_valid(doc)


def test_compiler_refuses_unknown_keywords(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"type": "string", "format": "email"}))
    with pytest.raises(compiler_module().SchemaError, match="format"):
        compiler_module().generate(str(tmp_path), (("root", "s.json", ""),))


# --- pyrunc.validate: one line, path, rule ------------------------------------------

def _message(fn, doc, *args):
    with pytest.raises(ConfigError) as info:
        fn(doc, *args)
    text = str(info.value)
    assert "\n" not in text
    return text


BASE = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["sh"]}}


def _config(**linux):
    doc = json.loads(json.dumps(BASE))
    doc["linux"] = linux
    return doc


def test_enum_error_names_the_index_and_the_choices():
    doc = _config(namespaces=[{"type": "pid"}, {"type": "mount"}, {"type": "pidd"}])
    assert _message(validate.validate_config, doc) == (
        "config.json: linux.namespaces[2].type: 'pidd' is not one of "
        "['mount', 'pid', 'network', 'uts', 'ipc', 'user', 'cgroup', 'time']")


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("ociVersion"), "(root): 'ociVersion' is a required property"),
    (lambda d: d["process"].update(cwd=1), "process.cwd: 1 is not of type 'string'"),
    (lambda d: d["process"].update(user={"uid": -1}), "process.user.uid: -1 is less than the minimum of 0"),
    (lambda d: d["process"].update(user={"uid": 2 ** 32}),
     "process.user.uid: 4294967296 is greater than the maximum of 4294967295"),
    (lambda d: d["process"].update(user={"uid": 1.0}), "process.user.uid: 1.0 is not of type 'integer'"),
    (lambda d: d["process"].update(terminal=1), "process.terminal: 1 is not of type 'boolean'"),
    (lambda d: d["process"].update(rlimits=[{"type": "NOFILE", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type: 'NOFILE' does not match '^RLIMIT_[A-Z]+$'"),
    (lambda d: d.update(linux={"sysctl": {"net.ipv4.ip_forward": 1}}),
     'linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type \'string\''),
    (lambda d: d.update(annotations={"": 1}), 'annotations[""]: 1 is not of type \'string\''),
    (lambda d: d.update(linux={"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [], "action": "SCMP_ACT_ERRNO"}]}}),
     "linux.seccomp.syscalls[0].names: [] should be non-empty"),
    (lambda d: d.update(mounts=[{"destination": "/x"}, {"source": "/y"}]),
     "mounts[1]: 'destination' is a required property"),
])
def test_error_messages(mutate, expected):
    doc = json.loads(json.dumps(BASE))
    mutate(doc)
    assert _message(validate.validate_config, doc) == "config.json: " + expected


def test_root_that_is_not_an_object():
    assert _message(validate.validate_config, [], "b/config.json") == \
        "b/config.json: (root): [] is not of type 'object'"


def test_first_error_follows_the_schema_not_the_document_order():
    one = {"ociVersion": "1.0.0", "hostname": 5, "process": {"cwd": 5}}
    two = {"process": {"cwd": 5}, "hostname": 5, "ociVersion": "1.0.0"}
    assert _message(validate.validate_config, one) == _message(validate.validate_config, two) == \
        "config.json: process.cwd: 5 is not of type 'string'"


def test_huge_values_are_cut_to_one_short_line():
    doc = _config(maskedPaths="x\n" * 1000)
    text = _message(validate.validate_config, doc)
    assert len(text) < 300 and "...(truncated) is not of type 'array'" in text


def test_process_state_and_features_documents():
    assert validate.validate_process({"cwd": "/", "args": ["true"]})["cwd"] == "/"
    assert _message(validate.validate_process, {"args": ["true"]}) == \
        "process.json: (root): 'cwd' is a required property"
    state = {"ociVersion": "1.0.2", "id": "a", "status": "running", "pid": 4, "bundle": "/b"}
    assert validate.validate_state(state) is state
    assert _message(validate.validate_state, dict(state, status="paused")) == \
        "state: status: 'paused' is not one of ['creating', 'created', 'running', 'stopped']"
    assert _message(validate.validate_features, {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0",
                                                  "linux": {"capabilities": ["SYS_ADMIN"]}}) == \
        "features: linux.capabilities[0]: 'SYS_ADMIN' does not match '^CAP_[A-Z_]+$'"


def test_load_config(tmp_path):
    good = tmp_path / "config.json"
    good.write_text(json.dumps(BASE))
    assert validate.load_config(str(good)) == BASE
    bad = tmp_path / "bad.json"
    bad.write_text('{"ociVersion": "1.0.0",\n  "root": }')
    assert _message(validate.load_config, str(bad)) == \
        "%s: invalid JSON: Expecting value: line 2 column 11 (char 34)" % bad
    bad.write_bytes(b'{"ociVersion": "\xff"}')
    assert _message(validate.load_config, str(bad), "config.json") == \
        "config.json: invalid JSON: not UTF-8 (byte 16)"
    assert _message(validate.load_config, str(tmp_path / "none.json"), "config.json") == \
        "config.json: cannot read: No such file or directory"
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(dict(BASE, hostname=["h"])))
    assert _message(validate.load_config, str(invalid), "config.json") == \
        "config.json: hostname: ['h'] is not of type 'string'"


def test_format_path_quotes_what_a_dot_cannot_carry():
    fp = validate.format_path
    assert fp([]) == "(root)"
    assert fp(["linux", "namespaces", 2, "type"]) == "linux.namespaces[2].type"
    assert fp(["annotations", "org.opencontainers.x"]) == 'annotations["org.opencontainers.x"]'
    assert fp(["a", "-x", "b c", "é", "mlx5_1"]) == 'a["-x"]["b c"]["\u00e9"].mlx5_1'
    assert fp([0, "x"]) == "[0].x"


@SETTINGS
@given(doc=ANY_JSON)
def test_any_json_value_gets_a_verdict_not_an_exception(doc):
    for kind in KINDS:
        err = RAW[kind](doc)
        assert err is None or isinstance(err[0], str)
        assert (err is None) == js_valid("ours", kind, doc)
