"""Benchmarks: printed figures, never timed assertions (see bench/README.md)."""
