"""autotm-execute."""

__version__ = "0.1.0"
