"""Benchmarks run from the command line (``amanah bench ...``); not imported by the running service."""
