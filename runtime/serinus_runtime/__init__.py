"""Serinus runtime: the scikit-learn inference server (no kopf, no kubernetes imports)."""

__version__ = "0.1.0"
