"""`serinus demo`: the iris model versions it rolls out, built from code (see bundles.py)."""
