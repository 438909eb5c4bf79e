"""Benchmarks: `python -m wavegan_dist.bench data ...` (input pipeline vs training step)."""
