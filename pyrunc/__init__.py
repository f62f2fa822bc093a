"""pyrunc: an OCI container runtime in Python.

    from pyrunc import Container
    c = Container.create("web", bundle="/path/to/bundle")
    c.start(); print(c.state()["status"]); c.kill("TERM"); c.delete(force=True)

Attributes are resolved lazily so that `import pyrunc` stays cheap for the
CLI, which pays for every import on every verb.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"

__all__ = ["Container", "PyruncError", "__version__", "OCI_VERSION"]


def __getattr__(name):
    if name == "Container":
        from .container import Container

        return Container
    if name == "PyruncError":
        from .errors import PyruncError

        return PyruncError
    raise AttributeError(name)
