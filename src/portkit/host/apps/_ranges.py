"""HTTP byte ranges (RFC 9110 section 14): parse a ``Range`` header against a length.

Pure: text in, a decision out. The decision is one of

- :data:`IGNORE`: serve the whole representation with 200 (no header, a unit other than
  ``bytes``, a syntactically invalid set, or too many ranges; RFC 9110 section 14.2 lets a
  server ignore such a field),
- :data:`UNSATISFIABLE`: answer 416 with ``Content-Range: bytes */LENGTH`` (section 15.5.17),
- a tuple of :class:`ByteRange` to serve with 206, already clipped to the length and
  coalesced (overlapping or nearly adjacent ranges merged, section 14.2 allows it), so a
  client cannot make us send the same bytes many times.
"""

from __future__ import annotations

import dataclasses
import enum
import re

__all__ = ["IGNORE", "MAX_RANGES", "UNSATISFIABLE", "ByteRange", "RangeVerdict", "parse_range"]

#: More range-specs than this and the field is ignored (a 200 is always a correct answer).
MAX_RANGES = 100
#: Ranges separated by fewer bytes than this are merged: a part's headers cost about as much.
COALESCE_GAP = 80
#: The longest Range field we look at.
MAX_FIELD = 4096


class RangeVerdict(enum.Enum):
    IGNORE = "ignore"
    UNSATISFIABLE = "unsatisfiable"


IGNORE = RangeVerdict.IGNORE
UNSATISFIABLE = RangeVerdict.UNSATISFIABLE


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive of a representation of ``length`` bytes."""

    first: int
    last: int
    length: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def content_range(self) -> str:
        """The ``Content-Range`` value (RFC 9110 section 14.4)."""
        return f"bytes {self.first}-{self.last}/{self.length}"


# RFC 9110 section 14.1.2: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" length.
_SPEC = re.compile(r"(\d{1,19})?-(\d{1,19})?")
# section 14.1: the unit is a token, compared case-insensitively; OWS around commas.
_FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)", re.DOTALL)


def parse_range(value: str | None, length: int) -> RangeVerdict | tuple[ByteRange, ...]:
    """Decide how to answer ``Range: value`` for a representation of ``length`` bytes."""
    if value is None or len(value) > MAX_FIELD:
        return IGNORE
    field = _FIELD.fullmatch(value.strip())
    if field is None or field.group(1).lower() != "bytes":
        return IGNORE  # section 14.2: an unknown range unit MUST be ignored
    specs = [s.strip(" \t") for s in field.group(2).split(",")]
    # section 5.6.1: empty list elements are allowed and do not count; at least one is needed.
    specs = [s for s in specs if s]
    if not specs or len(specs) > MAX_RANGES:
        return IGNORE
    wanted: list[tuple[int, int]] = []
    for spec in specs:
        match = _SPEC.fullmatch(spec)
        if match is None:
            return IGNORE
        first_text, last_text = match.groups()
        if first_text is None and last_text is None:
            return IGNORE
        if first_text is None:
            suffix = int(last_text)
            if suffix == 0:
                continue  # a zero-length suffix is unsatisfiable (section 14.1.3)
            wanted.append((max(length - suffix, 0), length - 1))
            continue
        first = int(first_text)
        if last_text is not None and int(last_text) < first:
            return IGNORE  # section 14.1.1: invalid if last-pos < first-pos
        last = int(last_text) if last_text is not None else length - 1
        if first >= length:
            continue  # section 14.1.1: unsatisfiable unless first-pos < length
        wanted.append((first, min(last, length - 1)))
    if length == 0:
        return IGNORE  # nothing to cut: the (empty) whole is the only sensible answer
    if not wanted:
        return UNSATISFIABLE
    return tuple(ByteRange(first=f, last=last, length=length) for f, last in _coalesce(wanted))


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + COALESCE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged
