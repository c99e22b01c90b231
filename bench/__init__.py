"""Benchmark scripts (not tests): python bench/run.py --help."""
