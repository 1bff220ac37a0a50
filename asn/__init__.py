"""asnc: a compiler for AssembleNet-family video networks."""

from importlib import metadata as _metadata

# One source of truth: pyproject.toml's version, as installed (editable or not).
try:
    __version__ = _metadata.version("asnc")
except _metadata.PackageNotFoundError:  # a bare checkout on sys.path, never installed
    __version__ = "0+unknown"
