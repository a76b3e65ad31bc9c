"""Operations on a store: diff and its statistics, gc, fsck, sync, export, the HTML report.

Each works through the repository and the object store; the public scripting API
(``doteval.storage``) and the adapters (the CLI, the pytest plugin) call them and
render what they return.
"""
