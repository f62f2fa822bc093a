"""One exception family.  The CLI turns any PyruncError into a one-line
message on stderr (and a JSON log line with --log-format json) and exits
with `exit_code`."""


class PyruncError(Exception):
    """Base of every error pyrunc reports to its caller."""

    exit_code = 1


class ConfigError(PyruncError):
    """config.json (or process.json) is malformed or violates the spec.

    The message names the JSON path and the rule, e.g.
    ``linux.namespaces[2].type: 'pidd' is not one of [...]``; `source`
    is the file name the CLI prefixes it with.
    """

    def __init__(self, message, source="config.json"):
        super().__init__(message)
        self.source = source

    def __str__(self):
        return "%s: %s" % (self.source, self.args[0])


class ContainerNotFound(PyruncError):
    def __init__(self, cid):
        super().__init__("container does not exist")
        self.id = cid


class ContainerExists(PyruncError):
    def __init__(self, cid):
        super().__init__("container with id exists: %s" % cid)


class InvalidID(PyruncError):
    pass


class StateError(PyruncError):
    """The verb is not allowed in the container's current status."""


class ExecError(PyruncError):
    """The container process could not be executed (runc's 126/127)."""

    def __init__(self, message, exit_code=127):
        super().__init__(message)
        self.exit_code = exit_code


class NotSupported(PyruncError):
    pass


class StateDamaged(PyruncError):
    """<root>/<id>/state.json is unreadable or not what pyrunc writes."""

    def __init__(self, cid, why):
        super().__init__("state.json of %s is damaged: %s" % (cid, why))
        self.id = cid
        self.why = why
