"""Benchmarks: pytest-benchmark CPU benches (``bench/test_*.py``) and the GPU script
``python -m bench.kernels`` (see bench/RESULTS.md)."""
