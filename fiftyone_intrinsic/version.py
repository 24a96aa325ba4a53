"""The package version, recorded in every stored run."""

__version__ = "0.1.0"
