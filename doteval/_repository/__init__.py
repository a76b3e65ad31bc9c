"""The repository: experiments, their manifests, sample tables and history.

An experiment is a line of manifests named by ref records. This layer knows
what a run, a sample and a score are, and stores them through ``doteval._objects``;
it never imports the run path, the operations or the adapters.
"""
