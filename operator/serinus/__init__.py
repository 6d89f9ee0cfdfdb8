"""Serinus control plane: API, core engine, adapters and CLI."""

__version__ = "0.1.0"
