"""Builds and runs cells: sweep → cell → launch (targets, upstream) → drive (Locust), plus the
database, remote load workers, `bench.py serve` and the profiler that samples a worker."""
