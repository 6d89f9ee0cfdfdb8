"""Metrics providers: read one analysis window of both variants for the judge."""
