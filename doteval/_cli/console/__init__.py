"""The console: what the adapters (the ``doteval`` CLI and the pytest plugin) print.

    errors.py       a ``DotevalError`` as ``Error: ...`` / ``hint: ...``, the same under every command
    progress.py     a run's progress on stderr (bars in a terminal, plain lines in a log)
    run_summary.py  what a run prints at its end (the summary, or what a dry run found)
    tables.py       tables on a terminal: the output width, fitting, the metrics table

The library reports through callbacks and returns data; here it becomes lines. Only the
adapters import this package, and it never exits the process or parses an option.
"""
