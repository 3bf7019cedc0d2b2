"""Package attributes imported on first use (PEP 562's module ``__getattr__``).

A package lists which module holds each such name; a command then pays at start-up only
for the modules it uses (``portkit lookup`` never imports the scanner).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing` at run time: this is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["load_attribute"]


def load_attribute(namespace: dict[str, Any], module: str, name: str) -> Any:
    """Import ``name`` from ``module``, keep it in ``namespace`` (the package's globals,
    so the next access is a plain attribute) and return it."""
    import importlib

    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
