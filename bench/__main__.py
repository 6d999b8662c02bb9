"""``python -m bench``: the delivery benchmarks (``python -m bench.reports`` for the reports)."""

from bench.suite import main

main()
