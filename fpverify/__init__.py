"""fpverify: the command line and benchmarks that tie matcher, edge and server together."""

__version__ = "0.1.0"
