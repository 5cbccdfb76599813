"""devenv: durable, self-cleaning development environments on Temporal."""

__version__ = "0.1.0"
