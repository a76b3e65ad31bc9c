"""doteval's version, in a module of its own: the HTML report prints it without importing the package root."""

__version__ = "0.1.0"
