"""The package's version, read by the build and written into SARIF output."""

__version__ = "0.1.0"
