"""Benchmarks of crazy-gary: `python -m bench` (see bench/README.md)."""
