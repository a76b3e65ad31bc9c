"""The run path: ``@foreach``, executing samples, fingerprints, retries, timeouts.

One run of an experiment goes from the options of ``pytest``/``doteval run`` to
results journaled through the repository. Nothing here imports an operation or
an adapter.
"""
