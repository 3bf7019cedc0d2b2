"""The version of portkit, written once (pyproject and ``portkit.__version__`` read it).

A module of its own so that any part of the package can read it without importing the
package's ``__init__``, which imports every layer.
"""

__version__ = "0.1.0"
