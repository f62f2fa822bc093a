#!/usr/bin/env python3
"""Compile the JSON Schemas in oci-schemas/ into pyrunc/_validator.py.

    python oci-schemas/compile.py          # rewrite pyrunc/_validator.py
    python oci-schemas/compile.py --check  # exit 1 if it is stale

Why: `jsonschema` costs ~80 ms to import and `re` ~10 ms; a verb's whole
budget is a few milliseconds.  The generated module is plain Python with no
imports: one function per object/array/combinator node (scalar checks are
inlined at their use), and every `pattern` turned into a DFA table here, at
build time.  Only a pattern this compiler cannot turn into a DFA falls back
to `re`, imported on first use.

The schemas are draft-04 and the generated code follows jsonschema's
Draft4Validator exactly (integers are ints, not floats or bools; `pattern`
is `re.search`, so `$` also matches before a final newline; a `$ref` hides
its siblings).  Each check function returns None when the instance is valid,
else a list [message, innermost path segment, ..., outermost segment]; the
caller appends its own segment on the way out, so valid documents cost no
path bookkeeping at all.  Messages are jsonschema's.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(os.path.dirname(HERE), "pyrunc", "_validator.py")

# name in the generated module -> (schema file, JSON pointer of the node)
ENTRY_POINTS = (
    ("config", "config.schema.json", ""),
    ("process", "config.schema.json", "/definitions/process"),
    ("state", "state.schema.json", ""),
    ("features", "features.schema.json", ""),
)

# Keywords that only annotate; everything else must be understood below, so
# a schema can never use a rule the generated code silently ignores.
ANNOTATIONS = {"$schema", "id", "title", "description", "definitions", "default", "examples"}
SUPPORTED = {
    "$ref", "type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "pattern", "minLength", "maxLength", "required", "properties", "patternProperties",
    "additionalProperties", "items", "minItems", "maxItems", "allOf", "anyOf",
}
# Exact classes: documents come from a JSON parser (dict, list, str, int,
# float, bool, None), and `x.__class__ is str` is both faster and smaller
# than isinstance().  bool is not an integer, as in jsonschema.
TYPE_TESTS = {
    "string": "{v}.__class__ is str",
    "integer": "{v}.__class__ is int",
    "number": "({v}.__class__ is int or {v}.__class__ is float)",
    "boolean": "{v}.__class__ is bool",
    "object": "{v}.__class__ is dict",
    "array": "{v}.__class__ is list",
    "null": "{v} is None",
}

class SchemaError(Exception):
    pass


def load_schemas(folder=HERE):
    """{file name: parsed schema} for every *.json in `folder`."""
    docs = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                docs[name] = json.load(f)
    return docs


# --- patterns -> DFA -------------------------------------------------------

class Unsupported(Exception):
    """A regex feature the DFA compiler does not handle: use `re` instead."""


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
_PUNCT = set("\\.^$*+?()[]{}|-/ ,:#&~!\"'%<>=@`_;")


class _RegexParser:
    """Parses a small regex dialect into a tree of
    ('set', negated, chars) | ('seq', [...]) | ('alt', [...]) | ('rep', node, lo, hi)."""

    def __init__(self, text):
        self.s = text
        self.i = 0

    def parse(self):
        node = self.alternation()
        if self.i != len(self.s):
            raise Unsupported("unexpected %r" % self.s[self.i])
        return node

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else None

    def alternation(self):
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self):
        items = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.quantified(self.atom()))
        return ("seq", items)

    def atom(self):
        c = self.s[self.i]
        self.i += 1
        if c == "(":
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise Unsupported("group flags")
            node = self.alternation()
            if self.peek() != ")":
                raise Unsupported("unbalanced group")
            self.i += 1
            return node
        if c == "[":
            return self.char_class()
        if c == ".":
            return ("set", True, frozenset("\n"))
        if c == "\\":
            return ("set", False, frozenset(self.escape()))
        if c in "^$*+?{)]|":
            raise Unsupported("operator %r here" % c)
        return ("set", False, frozenset(c))

    def escape(self):
        if self.i >= len(self.s):
            raise Unsupported("trailing backslash")
        c = self.s[self.i]
        self.i += 1
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c in _PUNCT:
            return c
        raise Unsupported("escape \\%s" % c)  # \d, \w, \b...: Unicode-dependent

    def char_class(self):
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        chars = set()
        first = True
        while True:
            if self.i >= len(self.s):
                raise Unsupported("unterminated class")
            c = self.s[self.i]
            self.i += 1
            if c == "]" and not first:
                break
            first = False
            if c == "\\":
                c = self.escape()
            elif c == "[":
                raise Unsupported("nested set syntax")
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.i += 1
                hi = self.s[self.i]
                self.i += 1
                if hi == "\\":
                    hi = self.escape()
                if ord(hi) < ord(c) or ord(hi) - ord(c) > 512:
                    raise Unsupported("range %r-%r" % (c, hi))
                chars.update(chr(o) for o in range(ord(c), ord(hi) + 1))
            else:
                chars.add(c)
        return ("set", negated, frozenset(chars))

    def quantified(self, node):
        while True:
            c = self.peek()
            if c == "*":
                lo, hi = 0, None
            elif c == "+":
                lo, hi = 1, None
            elif c == "?":
                lo, hi = 0, 1
            elif c == "{":
                end = self.s.find("}", self.i)
                body = self.s[self.i + 1:end] if end > 0 else ""
                parts = body.split(",")
                if not body or len(parts) > 2 or not all(p.isdigit() for p in parts if p) or not parts[0]:
                    raise Unsupported("quantifier {%s}" % body)
                lo = int(parts[0])
                hi = lo if len(parts) == 1 else (int(parts[1]) if parts[1] else None)
                if lo > 64 or (hi is not None and (hi > 64 or hi < lo)):
                    raise Unsupported("quantifier {%s}" % body)
                self.i = end  # the += 1 below steps over the "}"
            else:
                return node
            self.i += 1
            if self.peek() in ("?", "+"):
                raise Unsupported("lazy/possessive quantifier")
            node = ("rep", node, lo, hi)


class _NFA:
    """Thompson construction: states are ints; edges are (set, target) pairs
    plus epsilon moves."""

    def __init__(self):
        self.edges = []
        self.eps = []

    def state(self):
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, node, start):
        """Wire `node` from `start`; return its end state."""
        kind = node[0]
        if kind == "set":
            end = self.state()
            self.edges[start].append((node, end))
            return end
        if kind == "seq":
            for item in node[1]:
                start = self.build(item, start)
            return start
        if kind == "alt":
            end = self.state()
            for branch in node[1]:
                self.eps[self.build(branch, start)].append(end)
            return end
        _, sub, lo, hi = node
        for _ in range(lo):
            start = self.build(sub, start)
        if hi is None:
            loop = self.state()
            self.eps[start].append(loop)
            self.eps[self.build(sub, loop)].append(loop)
            return loop
        end = self.state()
        self.eps[start].append(end)
        for _ in range(hi - lo):
            start = self.build(sub, start)
            self.eps[start].append(end)
        return end

    def closure(self, states):
        seen = set(states)
        todo = list(states)
        while todo:
            for t in self.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)


def _matches(charset, symbol):
    """Does ('set', negated, chars) match `symbol` (a char, or None = any
    char not named anywhere in the pattern)?"""
    _, negated, chars = charset
    return negated if symbol is None else ((symbol in chars) != negated)


def compile_pattern(pattern):
    """Pattern -> (DFA table, end_anchored) with re.search semantics.

    Table: ({char: class}, class of every other char, rows, accepting):
    rows[state][class] is the next state, -1 the dead one; state 0 is the
    start; accepting[state] says whether a match ends there.  Raises
    Unsupported for what it cannot translate exactly."""
    body = pattern
    start_anchored = body.startswith("^")
    if start_anchored:
        body = body[1:]
    end_anchored = body.endswith("$") and _unescaped_tail(body)
    if end_anchored:
        body = body[:-1]
    tree = _RegexParser(body).parse()
    if (start_anchored or end_anchored) and tree[0] == "alt":
        raise Unsupported("anchors around a top-level alternation")
    nfa = _NFA()
    first = nfa.state()
    if not start_anchored:  # re.search may start anywhere: a leading .* (newlines too)
        nfa.edges[first].append((("set", True, frozenset()), first))
    accept = nfa.build(tree, first)
    alphabet = sorted(set().union(*(cs[2] for edges in nfa.edges for cs, _ in edges)))
    symbols = alphabet + [None]
    start = nfa.closure([first])
    numbering = {start: 0}
    order = [start]
    columns = {sym: [] for sym in symbols}  # symbol -> next state, per DFA state
    for current in order:  # grows while we walk it: breadth-first, deterministic
        for sym in symbols:
            targets = [t for s in sorted(current) for cs, t in nfa.edges[s] if _matches(cs, sym)]
            nxt = nfa.closure(targets) if targets else frozenset()
            if not nxt:
                columns[sym].append(-1)
                continue
            if nxt not in numbering:
                numbering[nxt] = len(order)
                order.append(nxt)
            columns[sym].append(numbering[nxt])
    # Characters that move every state alike share one column (a class).
    classes = {}
    for sym in symbols:
        classes.setdefault(tuple(columns[sym]), len(classes))
    class_columns = sorted(classes, key=classes.get)
    charmap = {c: classes[tuple(columns[c])] for c in alphabet}
    other = classes[tuple(columns[None])]
    rows = tuple(tuple(col[i] for col in class_columns) for i in range(len(order)))
    accepting = tuple(accept in state for state in order)
    return (charmap, other, rows, accepting), end_anchored


def _unescaped_tail(body):
    """True if the final character of `body` is not escaped by backslashes."""
    n = 0
    i = len(body) - 2
    while i >= 0 and body[i] == "\\":
        n += 1
        i -= 1
    return n % 2 == 0


# --- schema nodes -> Python ------------------------------------------------

def _split_ref(ref, base):
    """'file#/pointer' relative to the file `base` -> (file, pointer)."""
    file, _, pointer = ref.partition("#")
    if pointer and not pointer.startswith("/"):
        raise SchemaError("%s: $ref %r: only JSON pointer fragments" % (base, ref))
    return (file or base), pointer


def _walk(doc, pointer, where):
    node = doc
    for part in pointer.split("/")[1:] if pointer else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SchemaError("%s: no %r" % (where, pointer))
    return node


def _py_ident(text):
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out.strip("_") or "root"


class Compiler:
    def __init__(self, docs):
        self.docs = docs
        self.functions = {}   # (file, pointer) -> function name
        self.bodies = {}      # function name -> source, in discovery order
        self.pending = []     # (file, pointer) whose function is not emitted yet
        self.patterns = {}    # pattern -> helper name
        self.pattern_defs = []
        self.constants = {}   # repr -> name
        self.constant_defs = []
        self.uses_dfa_end = self.uses_dfa_any = self.uses_re = self.uses_anyof = False
        self.names = set()

    # Nodes -------------------------------------------------------------

    def node(self, file, pointer):
        """Follow $ref chains: (file, pointer, schema) of the real node."""
        seen = set()
        while True:
            if file not in self.docs:
                raise SchemaError("unknown schema file %r" % file)
            schema = _walk(self.docs[file], pointer, file)
            if not isinstance(schema, dict):
                raise SchemaError("%s#%s: a schema must be an object" % (file, pointer))
            unknown = set(schema) - SUPPORTED - ANNOTATIONS
            if unknown:
                raise SchemaError("%s#%s: unsupported keywords %s" % (file, pointer, sorted(unknown)))
            if "$ref" not in schema:
                return file, pointer, schema
            if set(schema) - ANNOTATIONS - {"$ref"}:
                # draft-04 ignores them; refuse rather than mislead a reader
                raise SchemaError("%s#%s: keywords beside $ref are ignored" % (file, pointer))
            if (file, pointer) in seen:
                raise SchemaError("%s#%s: $ref loop" % (file, pointer))
            seen.add((file, pointer))
            file, pointer = _split_ref(schema["$ref"], file)

    @staticmethod
    def is_simple(schema):
        """Scalar rules only: inlined at each use, no function call."""
        if not set(schema) & {"properties", "patternProperties", "additionalProperties", "required",
                              "items", "minItems", "maxItems", "allOf", "anyOf"}:
            return True
        return False

    @staticmethod
    def is_trivial(schema):
        """A bare type test: cheaper inline than as a call.  Anything more
        gets a function, shared by its users: the module's size is its
        import time, which every verb pays."""
        return not set(schema) - ANNOTATIONS - {"type"}

    @staticmethod
    def is_trivial(schema):
        """Only a type test: as cheap inline as the call would be."""
        return not set(schema) - ANNOTATIONS - {"type"}

    def function_for(self, file, pointer):
        file, pointer, _ = self.node(file, pointer)
        key = (file, pointer)
        if key not in self.functions:
            stem = file.split(".")[0]
            parts = [p for p in pointer.split("/")[1:] if p not in ("definitions", "properties")]
            name = "_" + _py_ident("_".join([stem] + parts).replace("additionalProperties", "values"))
            base, n = name, 1
            while name in self.names:
                n += 1
                name = "%s_%d" % (base, n)
            self.names.add(name)
            self.functions[key] = name
            self.pending.append(key)
        return self.functions[key]

    def constant(self, value):
        if isinstance(value, frozenset):  # a stable spelling: set order varies per run
            text = "frozenset(%r)" % (tuple(sorted(value)),)
        else:
            text = repr(value)
        if text not in self.constants:
            name = "_C%d" % (len(self.constants) + 1)
            self.constants[text] = name
            self.constant_defs.append("%s = %s" % (name, text))
        return self.constants[text]

    def pattern_test(self, pattern):
        """Name of a one-argument function: does re.search(pattern, s) match?"""
        if pattern not in self.patterns:
            name = "_p%d" % (len(self.patterns) + 1)
            self.patterns[pattern] = name
            try:
                table, end_anchored = compile_pattern(pattern)
            except Unsupported:
                self.uses_re = True
                self.pattern_defs.append(
                    "def %s(s):  # %r\n    return _re_search(%r, s)\n" % (name, pattern, pattern))
                return name
            runner = "_dfa_end" if end_anchored else "_dfa_any"
            if end_anchored:
                self.uses_dfa_end = True
            else:
                self.uses_dfa_any = True
            charmap, other, rows, accepting = table
            self.pattern_defs.append(
                "_T%s = (  # %r\n    %r,\n    %r,\n    (\n        %s,\n    ),\n    %r,\n)\n\n\n"
                "def %s(s):\n    return %s(_T%s, s)\n"
                % (name[2:], pattern, charmap, other, ",\n        ".join(repr(r) for r in rows),
                   accepting, name, runner, name[2:]))
        return self.patterns[pattern]

    # Code ---------------------------------------------------------------

    @staticmethod
    def fail(msg, seg):
        return "return [%s]" % msg if seg is None else "return [%s, %s]" % (msg, seg)

    def check(self, file, pointer, var, seg, out, ind):
        """Append to `out` lines that return an error list if `var` (whose
        path segment within the current function is the expression `seg`, or
        None for the function's own argument) violates the node."""
        real_file, real_pointer, schema = self.node(file, pointer)
        via_ref = (real_file, real_pointer) != (file, pointer)
        # Inline a bare type test, or scalar rules written in place; call a
        # function for the rest (shared by every $ref to it).
        if not (self.is_trivial(schema) or (self.is_simple(schema) and not via_ref)):
            fn = self.function_for(real_file, real_pointer)
            out.append(ind + "e = %s(%s)" % (fn, var))
            out.append(ind + "if e is not None:")
            out.append(ind + ("    return e" if seg is None else "    return _at(e, %s)" % seg))
            return
        if not var.isidentifier():
            out.append(ind + "v = " + var)
            var = "v"
        self.scalar_rules(schema, var, seg, out, ind)

    def type_rule(self, schema, var, seg, out, ind):
        types = schema.get("type")
        if types is None:
            return None
        types = [types] if isinstance(types, str) else list(types)
        for t in types:
            if t not in TYPE_TESTS:
                raise SchemaError("unknown type %r" % t)
        test = " or ".join(TYPE_TESTS[t].format(v=var) for t in types)
        names = ", ".join(repr(t) for t in types)
        out.append(ind + "if not (%s):" % test)
        out.append(ind + "    " + self.fail("_r(%s) + %r" % (var, " is not of type " + names), seg))
        return types

    def scalar_rules(self, schema, var, seg, out, ind):
        types = self.type_rule(schema, var, seg, out, ind)
        if "enum" in schema:
            values = schema["enum"]
            if not all(isinstance(v, str) for v in values):
                raise SchemaError("enum: only strings are supported")
            const = self.constant(frozenset(values)) if len(values) > 3 else self.constant(tuple(values))
            test = "%s in %s" % (var, const)
            if types != ["string"]:
                test = "isinstance(%s, str) and %s" % (var, test)
            out.append(ind + "if not (%s):" % test)
            out.append(ind + "    " + self.fail("_r(%s) + %r" % (var, " is not one of %r" % (values,)), seg))
        self.number_rules(schema, types, var, seg, out, ind)
        self.string_rules(schema, types, var, seg, out, ind)

    def gate(self, types, wanted, var, out, ind):
        """Rules of one instance type apply only to instances of that type."""
        if types is not None and set(types) <= set(wanted):
            return ind
        test = " or ".join(TYPE_TESTS[t].format(v=var) for t in wanted)
        out.append(ind + "if %s:" % test)
        return ind + "    "

    def number_rules(self, schema, types, var, seg, out, ind):
        keys = [k for k in ("minimum", "maximum") if k in schema]
        if not keys:
            return
        inner = self.gate(types, ("number", "integer"), var, out, ind)
        for key in keys:
            limit = schema[key]
            exclusive = schema.get("exclusive" + key[0].upper() + key[1:], False)
            if key == "minimum":
                op, words = ("<=", "less than or equal to") if exclusive else ("<", "less than")
                words += " the minimum of %r" % limit
            else:
                op, words = (">=", "greater than or equal to") if exclusive else (">", "greater than")
                words += " the maximum of %r" % limit
            out.append(inner + "if %s %s %r:" % (var, op, limit))
            out.append(inner + "    " + self.fail("_r(%s) + %r" % (var, " is " + words), seg))

    def string_rules(self, schema, types, var, seg, out, ind):
        keys = [k for k in ("minLength", "maxLength", "pattern") if k in schema]
        if not keys:
            return
        inner = self.gate(types, ("string",), var, out, ind)
        if "minLength" in schema:
            n = schema["minLength"]
            out.append(inner + "if len(%s) < %d:" % (var, n))
            words = " should be non-empty" if n == 1 else " is too short"
            out.append(inner + "    " + self.fail("_r(%s) + %r" % (var, words), seg))
        if "maxLength" in schema:
            n = schema["maxLength"]
            out.append(inner + "if len(%s) > %d:" % (var, n))
            words = " is expected to be empty" if n == 0 else " is too long"
            out.append(inner + "    " + self.fail("_r(%s) + %r" % (var, words), seg))
        if "pattern" in schema:
            fn = self.pattern_test(schema["pattern"])
            out.append(inner + "if not %s(%s):" % (fn, var))
            words = " does not match %r" % schema["pattern"]
            out.append(inner + "    " + self.fail("_r(%s) + %r" % (var, words), seg))

    def object_rules(self, file, pointer, schema, types, out):
        keys = ("required", "properties", "patternProperties", "additionalProperties")
        if not any(k in schema for k in keys):
            return
        ind = self.gate(types, ("object",), "x", out, "    ")
        for name in schema.get("required", ()):
            out.append(ind + "if %r not in x:" % name)
            out.append(ind + "    return [%r]" % ("%r is a required property" % name))
        props = schema.get("properties", {})
        for name in props:
            sub = "%s/properties/%s" % (pointer, name.replace("~", "~0").replace("/", "~1"))
            out.append(ind + "if %r in x:" % name)
            self.check(file, sub, "x[%r]" % name, repr(name), out, ind + "    ")
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        if not patterns and extra is True:
            return
        out.append(ind + "for k, v in x.items():")
        body = ind + "    "
        known = None
        if props:
            known = self.constant(frozenset(props))
        for pat in patterns:
            sub = "%s/patternProperties/%s" % (pointer, pat.replace("~", "~0").replace("/", "~1"))
            out.append(body + "if %s(k):" % self.pattern_test(pat))
            self.check(file, sub, "v", "k", out, body + "    ")
        if extra is True:
            return
        conds = []
        if known:
            conds.append("k not in %s" % known)
        conds += ["not %s(k)" % self.pattern_test(p) for p in patterns]
        test = " and ".join(conds) or "True"
        if extra is False:
            if patterns:
                raise SchemaError("additionalProperties false beside patternProperties: unsupported")
            out.append(body + "if %s:" % test)
            out.append(body + "    return [_extra(x, %s)]" % (known or self.constant(frozenset())))
            return
        if test == "True":
            self.check(file, pointer + "/additionalProperties", "v", "k", out, body)
        else:
            out.append(body + "if %s:" % test)
            self.check(file, pointer + "/additionalProperties", "v", "k", out, body + "    ")

    def array_rules(self, file, pointer, schema, types, out):
        keys = ("items", "minItems", "maxItems")
        if not any(k in schema for k in keys):
            return
        ind = self.gate(types, ("array",), "x", out, "    ")
        if "minItems" in schema:
            n = schema["minItems"]
            out.append(ind + "if len(x) < %d:" % n)
            words = " should be non-empty" if n == 1 else " is too short"
            out.append(ind + "    return [_r(x) + %r]" % words)
        if "maxItems" in schema:
            n = schema["maxItems"]
            out.append(ind + "if len(x) > %d:" % n)
            words = " is expected to be empty" if n == 0 else " is too long"
            out.append(ind + "    return [_r(x) + %r]" % words)
        if "items" in schema:
            if not isinstance(schema["items"], dict):
                raise SchemaError("%s#%s: tuple-form items: unsupported" % (file, pointer))
            out.append(ind + "for i, v in enumerate(x):")
            self.check(file, pointer + "/items", "v", "i", out, ind + "    ")

    def combinator_rules(self, file, pointer, schema, out):
        for i in range(len(schema.get("allOf", ()))):
            self.check(file, "%s/allOf/%d" % (pointer, i), "x", None, out, "    ")
        if "anyOf" in schema:
            self.uses_anyof = True
            # every branch gets a function, simple ones too: _any_of calls them
            fns = [self.function_for(file, "%s/anyOf/%d" % (pointer, i))
                   for i in range(len(schema["anyOf"]))]
            out.append("    e = _any_of(x, (%s,))" % ", ".join(fns))
            out.append("    if e is not None:")
            out.append("        return e")

    def emit_function(self, file, pointer):
        name = self.functions[(file, pointer)]
        schema = self.node(file, pointer)[2]
        out = ["def %s(x):" % name, "    # %s#%s" % (file, pointer or "/")]
        if self.is_simple(schema):
            self.scalar_rules(schema, "x", None, out, "    ")
        else:
            types = self.type_rule(schema, "x", None, out, "    ")
            if "enum" in schema:
                raise SchemaError("%s#%s: enum on a structured node: unsupported" % (file, pointer))
            self.number_rules(schema, types, "x", None, out, "    ")
            self.string_rules(schema, types, "x", None, out, "    ")
            self.object_rules(file, pointer, schema, types, out)
            self.array_rules(file, pointer, schema, types, out)
            self.combinator_rules(file, pointer, schema, out)
        out.append("    return None")
        self.bodies[name] = "\n".join(out) + "\n"

    def generate(self, entry_points=ENTRY_POINTS):
        exports = [(name, self.function_for(file, pointer)) for name, file, pointer in entry_points]
        while self.pending:
            self.emit_function(*self.pending.pop(0))
        return self.render(exports)

    def render(self, exports):
        parts = [HEADER]
        if self.uses_dfa_end:
            parts.append(DFA_END)
        if self.uses_dfa_any:
            parts.append(DFA_ANY)
        if self.uses_re:
            parts.append(RE_FALLBACK)
        if self.uses_anyof:
            parts.append(ANY_OF)
        if self.constant_defs:
            parts.append("\n".join(self.constant_defs) + "\n")
        parts.extend(self.pattern_defs)
        parts.extend(self.bodies.values())
        parts.append("\n".join("%s = %s" % pair for pair in exports) + "\n")
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)


HEADER = '''\
# Generated by oci-schemas/compile.py from oci-schemas/*.json: do not edit.
# Regenerate with: python oci-schemas/compile.py
"""Schema checks as plain functions (see oci-schemas/compile.py).

Each returns None for a valid instance, else [message, innermost path
segment, ..., outermost]; pyrunc.validate turns that into one line.
"""
def _r(x):
    """repr for messages, kept to one short line."""
    s = repr(x)
    return s if len(s) <= 200 else s[:180] + "...(truncated)"


def _at(e, seg):
    """Prefix an error's path with the caller's segment."""
    e.append(seg)
    return e


def _extra(x, known):
    names = sorted((k for k in x if k not in known), key=str)
    verb = "was" if len(names) == 1 else "were"
    return "Additional properties are not allowed (%s %s unexpected)" % (
        ", ".join(repr(k) for k in names), verb)
'''

DFA_END = '''\
def _dfa_run(t, s):
    chars, other, rows, accepting = t
    st = 0
    for c in s:
        st = rows[st][chars.get(c, other)]
        if st < 0:
            return False
    return accepting[st]


def _dfa_end(t, s):
    """re.search for a pattern ending in $: which also matches before a
    final newline."""
    return _dfa_run(t, s) or (s[-1:] == "\\n" and _dfa_run(t, s[:-1]))
'''

DFA_ANY = '''\
def _dfa_any(t, s):
    """re.search for a pattern without a final $: any accepting prefix."""
    chars, other, rows, accepting = t
    st = 0
    if accepting[0]:
        return True
    for c in s:
        st = rows[st][chars.get(c, other)]
        if st < 0:
            return False
        if accepting[st]:
            return True
    return False
'''

RE_FALLBACK = '''\
_RE = {}


def _re_search(pattern, s):
    """Patterns without a DFA: `re`, imported on first use only."""
    rx = _RE.get(pattern)
    if rx is None:
        import re

        rx = _RE[pattern] = re.compile(pattern)
    return rx.search(s) is not None
'''

ANY_OF = '''\
def _any_of(x, branches):
    """None if a branch accepts x; else the deepest branch error."""
    best = None
    for branch in branches:
        e = branch(x)
        if e is None:
            return None
        if best is None or len(e) > len(best):
            best = e
    if len(best) == 1 and len(branches) > 1:
        return [_r(x) + " is not valid under any of the given schemas"]
    return best
'''


def generate(folder=HERE, entry_points=ENTRY_POINTS):
    return Compiler(load_schemas(folder)).generate(entry_points)


def main(argv):
    source = generate()
    if "--check" in argv:
        with open(TARGET, encoding="utf-8") as f:
            if f.read() != source:
                print("%s is stale: run python oci-schemas/compile.py" % TARGET, file=sys.stderr)
                return 1
        return 0
    tmp = TARGET + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(source)
    os.replace(tmp, TARGET)
    print("wrote %s (%d lines)" % (os.path.relpath(TARGET), source.count("\n")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
