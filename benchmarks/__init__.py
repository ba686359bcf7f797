"""Tarry's benchmarks: ``python -m benchmarks --help``."""
