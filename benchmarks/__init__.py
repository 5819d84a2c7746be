"""Benchmarks: `python -m benchmarks.run [--quick]`. Not tests: nothing here asserts a time."""
