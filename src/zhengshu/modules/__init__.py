"""Bounded contexts built on the case engine: the 12345 hotline first. A module imports
another only through that module's ``api.py``."""
