"""Reproducible benchmarks of oro-graph against PostGraphile 5 and the database's own limit.

``python -m benchmarks run [--quick] [--json FILE]`` builds (or reuses) the PostgreSQL datasets,
starts the servers as subprocesses, drives them from a load generator in its own process and
writes ``benchmarks/RESULTS.md``. Figures are ratios measured in one run: the machines are shared.
"""
