"""doteval benchmark suite: run with `python -m bench` (full) or `python -m bench --quick`."""
