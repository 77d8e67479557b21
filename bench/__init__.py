"""Benchmarks kept in the repository: ``bench/device_check.py`` (the one GPU check, one table) and the
pytest-benchmark CPU benches ``bench/test_*.py`` (see bench/RESULTS.md for what each measures).
The benchmark itself is ``plugattn bench``."""
