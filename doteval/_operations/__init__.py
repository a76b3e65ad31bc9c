"""Operations on a store: diff and its statistics, gc, fsck, sync, export.

Each works through the repository and the object store; the adapters (the CLI,
the pytest plugin, the HTML report) call them and render what they return.
"""
