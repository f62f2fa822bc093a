"""The expected-failures file: which validation failures are known, and why.

One entry a line:

    <runtime> <binary>[:<test>]  # reason

<runtime> is a runtime name as the harness reports it (pyrunc, runc, crun,
or the basename of a runtime given by path) or `*` for all of them.
<binary> is a validation binary's name without `.t` (shell-style wildcards
allowed).  <test> is a test number, or a shell-style pattern matched against
the test's description (the harness's own failures read "exit status N",
"timed out after Ns", "no TAP plan", "missing N planned tests"); without it
the entry covers every failure of that binary.  The reason is required.
"""

from fnmatch import fnmatchcase


class ExpectationError(ValueError):
    pass


class Expectation:
    __slots__ = ("runtime", "binary", "test", "reason", "line", "used")

    def __init__(self, runtime, binary, test, reason, line):
        self.runtime = runtime
        self.binary = binary
        self.test = test
        self.reason = reason
        self.line = line
        self.used = False

    def covers_run(self, runtime, binary):
        return (self.runtime in ("*", runtime)) and fnmatchcase(binary, self.binary)

    def covers_failure(self, runtime, binary, number, description):
        if not self.covers_run(runtime, binary):
            return False
        if self.test is None:
            return True
        if self.test.isdigit():
            return number is not None and int(self.test) == number
        return fnmatchcase(description, self.test)

    def label(self):
        target = self.binary if self.test is None else "%s:%s" % (self.binary, self.test)
        return "%s %s" % (self.runtime, target)


def _split_reason(text):
    """Split 'entry  # reason' at the first '#' that follows whitespace."""
    for i, ch in enumerate(text):
        if ch == "#" and i > 0 and text[i - 1] in " \t":
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def parse_line(raw, where):
    entry, reason = _split_reason(raw)
    fields = entry.split(None, 1)
    if len(fields) != 2:
        raise ExpectationError("%s: want '<runtime> <binary>[:<test>]  # reason', got %r" % (where, raw.strip()))
    if not reason:
        raise ExpectationError("%s: entry %r has no '# reason'" % (where, entry))
    runtime, target = fields
    binary, sep, test = target.partition(":")
    test = test.strip() if sep else None
    if sep and not test:
        raise ExpectationError("%s: empty test after ':' in %r" % (where, entry))
    return Expectation(runtime, binary.strip(), test, reason, where)


def load(path):
    """Read an expected-failures file; a missing file means no expectations."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        found.append(parse_line(raw, "%s:%d" % (path, n)))
    return found


def classify(expectations, failures, runs):
    """Split failures into expected and unexpected, and find stale entries.

    failures: iterable of (runtime, binary, number, description).
    runs: set of (runtime, binary) that actually ran.
    Returns (unexpected_failures, unexpected_passes): the failures no entry
    covers, and the entries for a run that happened but matched no failure.
    """
    unexpected = []
    for failure in failures:
        hits = [e for e in expectations if e.covers_failure(*failure)]
        for e in hits:
            e.used = True
        if not hits:
            unexpected.append(failure)
    stale = [
        e for e in expectations
        if not e.used and any(e.covers_run(rt, b) for rt, b in runs)
    ]
    return unexpected, stale
