"""Check config.json, process.json, state and features documents against
our schemas (oci-schemas/), through the generated pyrunc._validator.

No jsonschema and no `re` here: this runs on every create/run/exec.  A
failure raises ConfigError with one line: the JSON path, then the rule in
jsonschema's words, e.g.

    config.json: linux.namespaces[2].type: 'pidd' is not one of [...]
"""
import os

from . import _validator
from .errors import ConfigError


def validate_config(doc, source="config.json"):
    """Raise ConfigError unless `doc` is a valid config.json; return it.

    Unless --strict, what runc 1.1.5 accepts outside the spec is first
    taken as runc takes it, with a warning (pyrunc.compat)."""
    return _check_relaxed(_validator.config, doc, source, "config")


def validate_process(doc, source="process.json"):
    """A `runc exec --process` file: the `process` object of a config."""
    return _check_relaxed(_validator.process, doc, source, "process")


def _check_relaxed(check, doc, source, kind):
    from .compat import hidden_from_schema, relax

    with hidden_from_schema(relax(doc, source, kind)):
        return _check(check, doc, source)


def validate_state(doc, source="state"):
    return _check(_validator.state, doc, source)


def validate_features(doc, source="features"):
    return _check(_validator.features, doc, source)


def load_config(path, source=None):
    """Read, parse and validate a config.json; return the document.

    Every failure (unreadable file, bad UTF-8, bad JSON, schema violation)
    is a ConfigError whose source names the file."""
    return _load(path, validate_config, source)


def load_process(path, source=None):
    return _load(path, validate_process, source)


DEFAULT_MAX_BYTES = 64 << 20


def max_bytes():
    """The largest config/process file accepted: $PYRUNC_MAX_CONFIG_BYTES,
    else 64 MiB.  Checked before parsing: an absurd file is one line,
    not minutes of CPU and gigabytes of memory."""
    value = os.environ.get("PYRUNC_MAX_CONFIG_BYTES", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_BYTES


def _load(path, validate, source):
    source = source or path
    limit = max_bytes()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
    except OSError as e:
        raise ConfigError("cannot read: %s" % (e.strerror or e), source) from None
    if size > limit or len(data) > limit:
        raise ConfigError("%d bytes is over the limit of %d (PYRUNC_MAX_CONFIG_BYTES)"
                          % (max(size, len(data)), limit), source)
    return validate(parse_json(data, source), source)


def parse_json(data, source):
    """JSON text (bytes or str) -> document; ConfigError on bad input."""
    from .jsonio import loads

    try:
        return loads(data)
    except UnicodeDecodeError as e:
        raise ConfigError("invalid JSON: not UTF-8 (byte %d)" % e.start, source) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source) from None
    except (ValueError, SystemError):
        # Bad JSON.  (_json's bare scanner raises SystemError for some
        # errors while json.decoder is not loaded yet.)  The json package
        # says where, as "msg: line L column C (char N)".
        pass
    import json

    try:
        return json.loads(data)
    except ValueError as e:
        raise ConfigError("invalid JSON: %s" % e, source) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source) from None


def _check(check, doc, source):
    err = check(doc)
    if err is not None:
        raise ConfigError(format_error(err), source)
    return doc


def format_error(err):
    """[message, innermost segment, ..., outermost] -> 'a.b[2].c: message'."""
    return "%s: %s" % (format_path(reversed(err[1:])), err[0])


def format_path(segments):
    out = []
    for seg in segments:
        if isinstance(seg, int):
            out.append("[%d]" % seg)
        elif _plain(seg):
            out.append("." + seg if out else seg)
        else:
            out.append("[%s]" % _quote(seg))
    return "".join(out) or "(root)"


def _plain(key):
    """A key that reads unambiguously after a dot: letters, digits, _ and -."""
    return key.isascii() and key.replace("_", "a").replace("-", "a").isalnum() and not key[0] == "-"


def _quote(key):
    from _json import encode_basestring

    return encode_basestring(key)
