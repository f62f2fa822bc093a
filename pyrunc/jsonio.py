"""JSON without the `json` package's import cost.

`import json` pulls in `re`, `enum` and `functools` (~8 ms, most of a
short verb's budget).  The C accelerators in `_json` need none of that:
this module drives them directly and falls back to `json` for errors
(where their message quality matters more than milliseconds).
"""
import _json

_encode_str = _json.encode_basestring_ascii


class _ScanContext:
    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float",
                 "parse_int", "parse_constant", "memo")

    def __init__(self):
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = {"NaN": float("nan"), "Infinity": float("inf"),
                               "-Infinity": float("-inf")}.__getitem__
        self.memo = {}


_scan = _json.make_scanner(_ScanContext())
_WS = " \t\n\r"


def loads(s):
    """Parse a JSON document; invalid input raises json.JSONDecodeError."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scan(s, i)
    except (StopIteration, SystemError):
        # SystemError: _json raises through json.decoder's JSONDecodeError,
        # which fails this way until json.decoder has been imported.
        end = -1
    if end >= 0:
        while end < n and s[end] in _WS:
            end += 1
        if end == n:
            return obj
    import json  # slow path only for the error message

    return json.loads(s)


_compact = _json.make_encoder(None, None, _encode_str, None, ":", ",", False, False, True)


def dumps(obj):
    """Compact JSON (separators ',' and ':')."""
    return "".join(_compact(obj, 0))


def dumps_indent(obj, indent="  ", _level=0):
    """Pretty JSON like json.dumps(obj, indent=...) (Go's MarshalIndent)."""
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        pad = "\n" + indent * (_level + 1)
        items = [pad + _encode_str(str(k)) + ": " + dumps_indent(v, indent, _level + 1) for k, v in obj.items()]
        return "{" + ",".join(items) + "\n" + indent * _level + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        pad = "\n" + indent * (_level + 1)
        items = [pad + dumps_indent(v, indent, _level + 1) for v in obj]
        return "[" + ",".join(items) + "\n" + indent * _level + "]"
    return dumps(obj)
