"""The package version, in one place (``nvpkit.__version__``, provenance, cache keys)."""
__version__ = "0.2.0"
