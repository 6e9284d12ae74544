"""Packaged default configs (data files, read with importlib.resources)."""
