"""Benchmarks: how fast, how big, against what (issue 5). Entry point: ``python -m bench.run``."""
