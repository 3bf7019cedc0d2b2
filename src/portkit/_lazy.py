"""Package attributes imported on first use (PEP 562's module ``__getattr__``).

A package lists which module holds each such name; a command then pays at start-up only
for the modules it uses (``portkit lookup`` never imports the scanner).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing` at run time: this is on every command's start-up path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, namespace: dict[str, Any], modules: Mapping[str, str]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: a name in ``modules`` is imported from
    the module given there (``"._connect"`` is relative to ``package``) on first use and
    kept in ``namespace`` (the package's globals), so the next access is a plain attribute.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
