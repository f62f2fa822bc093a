"""pyrunc's version and the runtime-spec version it implements (a leaf:
imported by the package and by the modules that print them)."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
