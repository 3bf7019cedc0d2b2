"""A base for small immutable value classes that start fast.

:mod:`dataclasses` (which imports :mod:`inspect`) costs several milliseconds to import,
a large share of a quick command's start-up (``portkit lookup``, ``portkit listening``);
classes on those paths derive from :class:`Frozen` instead and write their ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing` at run time, for the same reason
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Frozen"]


class Frozen:
    """Value semantics for a slotted class: keyword construction, equality, hash, repr,
    immutability and :meth:`replace`. Subclasses list their fields in ``__slots__``."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (what :func:`dataclasses.replace` does)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(self)(**values)
