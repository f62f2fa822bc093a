"""A small TAP (version 12/13) reader for the runtime-tools validation binaries.

Only top-level lines count: the suite nests the in-container `runtimetest`
output inside indented YAML diagnostics, and those lines must not be read as
results of the outer binary.
"""

import re

OK, NOT_OK, SKIP, TODO = "ok", "not ok", "skip", "todo"

_TEST_LINE = re.compile(r"^(not ok|ok)\b[ \t]*(\d+)?[ \t]*(?:-[ \t]*)?(.*)$")
# A directive starts at the first '#' that is not escaped as '\#'.
_DIRECTIVE = re.compile(r"(?<!\\)#[ \t]*(SKIP|TODO)\S*[ \t]*(.*)$", re.IGNORECASE)
_PLAN = re.compile(r"^1\.\.(\d+)")


class TapTest:
    __slots__ = ("number", "status", "description", "reason", "diagnostic", "synthetic")

    def __init__(self, number, status, description, reason="", synthetic=False):
        self.number = number
        self.status = status
        self.description = description
        self.reason = reason
        self.diagnostic = ""
        # True for a verdict the harness adds (crash, timeout, hook binaries'
        # error block), not a TAP test line.
        self.synthetic = synthetic

    def as_dict(self):
        d = {"number": self.number, "status": self.status, "description": self.description}
        if self.reason:
            d["reason"] = self.reason
        if self.diagnostic:
            d["diagnostic"] = self.diagnostic
        return d


class TapStream:
    __slots__ = ("tests", "plan", "bailed_out", "orphan_diagnostics")

    def __init__(self):
        self.tests = []
        self.plan = None
        self.bailed_out = None
        # YAML blocks before any test line: the suite's hook binaries report
        # their verdict this way, under a "1..0" plan.
        self.orphan_diagnostics = []


def _parse_test_line(match, next_number):
    status, number, rest = match.group(1), match.group(2), match.group(3)
    number = int(number) if number else next_number
    reason = ""
    directive = _DIRECTIVE.search(rest)
    if directive:
        kind = directive.group(1).upper()
        reason = directive.group(2).strip()
        rest = rest[: directive.start()]
        if kind == "SKIP":
            status = SKIP  # `ok N # SKIP` and (oddly) `not ok N # SKIP` alike
        elif status == NOT_OK:
            status = TODO  # a failing TODO test is not a failure
    return TapTest(number, status, rest.strip().replace("\\#", "#"), reason)


def parse(text):
    """Parse TAP text into a TapStream (tests in order, plan, bail-out)."""
    stream = TapStream()
    in_yaml = False
    yaml_lines = []
    for line in text.splitlines():
        if in_yaml:
            if line.strip() == "...":
                in_yaml = False
                if stream.tests:
                    stream.tests[-1].diagnostic = "\n".join(yaml_lines)
                else:
                    stream.orphan_diagnostics.append("\n".join(yaml_lines))
            else:
                yaml_lines.append(line)
            continue
        if line.startswith("#") and stream.tests:
            # "# expect: X, actual: Y" comments explain the test above.
            last = stream.tests[-1]
            last.diagnostic = (last.diagnostic + "\n" if last.diagnostic else "") + line
            continue
        if line.startswith((" ", "\t")):
            if line.strip() == "---":
                in_yaml, yaml_lines = True, []
            continue
        m = _TEST_LINE.match(line)
        if m:
            stream.tests.append(_parse_test_line(m, len(stream.tests) + 1))
            continue
        m = _PLAN.match(line)
        if m:
            stream.plan = int(m.group(1))
            continue
        if line.startswith("Bail out!"):
            stream.bailed_out = line[len("Bail out!"):].strip() or "bailed out"
    return stream
