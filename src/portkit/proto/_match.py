"""The matcher framework: bytes in, a verdict out, with no I/O and bounded buffers.

A *matcher* looks at the bytes a server sent (its banner, or its answer to a probe) and
answers with one of three verdicts:

- :class:`Match` -- these bytes are this protocol (and maybe this product and version);
- :class:`NoMatch` -- these bytes cannot be this protocol, whatever follows;
- :class:`NeedMore` -- undecided until more bytes arrive (or the peer closes).

A matcher is a pure function of the whole response so far, so feeding a response in one
piece or one byte at a time gives the same verdict. :class:`Reader` does the feeding with a
hard cap on what it keeps. A *probe* is the bytes to send to provoke an answer and the names
of the matchers that judge the answer; the ladder in :mod:`portkit.scan` does the sending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "MAX_RESPONSE_BYTES",
    "Match",
    "Matcher",
    "NeedMore",
    "NoMatch",
    "Probe",
    "Reader",
    "Verdict",
    "expect_prefix",
    "first_line",
]

# Nothing we recognise needs more than this to decide; a flooding peer cannot make us
# keep more.
MAX_RESPONSE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """The bytes are this protocol; product and version when the server told."""

    service: str
    product: str | None = None
    version: str | None = None
    extra: str | None = None
    confidence: int = 10  # 0-10 like nmap's "conf"; 10 is a full structural match


@dataclass(frozen=True, slots=True, kw_only=True)
class NoMatch:
    """The bytes cannot be this protocol."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedMore:
    """Undecided: more bytes (or the end of the stream) are needed."""


Verdict = Match | NoMatch | NeedMore

NEED_MORE = NeedMore()


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    """A named, pure recogniser of one protocol's server bytes.

    ``judge(data, final)`` sees every byte received so far; ``final`` is true when no
    more will come (the peer closed or time ran out), and then ``NeedMore`` counts as
    ``NoMatch``. ``max_bytes`` bounds what the matcher may ask for.
    """

    name: str
    judge: Callable[[bytes, bool], Verdict]
    max_bytes: int = 4096

    def __call__(self, data: bytes, final: bool = False) -> Verdict:
        if len(data) > self.max_bytes:
            data = data[: self.max_bytes]
            final = True
        verdict = self.judge(data, final)
        if final and isinstance(verdict, NeedMore):
            return NoMatch(reason="incomplete")
        return verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What to send to make a client-first server answer, and who judges the answer.

    ``build(host)`` returns the bytes (some protocols name the host in the request).
    ``matchers`` name the matchers for the answer, in order of preference.
    ``services`` are the registry names for which this probe is the first choice.
    ``wait`` is how long its servers may take to answer, in seconds, where that is
    longer than the ladder's usual wait (``None``: the usual wait).
    """

    name: str
    build: Callable[[str], bytes]
    matchers: tuple[str, ...]
    services: tuple[str, ...] = ()
    transport: str = "tcp"
    wait: float | None = None


@dataclass(slots=True)
class Reader:
    """Feeds bytes to several matchers, keeping at most ``cap`` bytes.

    ``feed`` returns the first :class:`Match` (in matcher order) as soon as one is
    certain, or ``None``. ``done`` is true when every
    matcher has said no (there is nothing left to wait for).
    """

    matchers: tuple[Matcher, ...]
    cap: int = MAX_RESPONSE_BYTES
    data: bytearray = field(default_factory=bytearray)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    def feed(self, chunk: bytes) -> Match | None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        return self._judge(final=len(self.data) >= self.cap)

    def finish(self) -> Match | None:
        """Judge for the last time: no more bytes will come."""
        return self._judge(final=True)

    @property
    def full(self) -> bool:
        return len(self.data) >= self.cap

    @property
    def done(self) -> bool:
        return all(isinstance(self.verdicts.get(m.name), NoMatch) for m in self.matchers)

    def _judge(self, *, final: bool) -> Match | None:
        data = bytes(self.data)
        for matcher in self.matchers:
            previous = self.verdicts.get(matcher.name)
            if isinstance(previous, NoMatch | Match):
                continue
            self.verdicts[matcher.name] = matcher(data, final)
        # The first matcher (in order) that is sure wins; matchers are written to be
        # mutually exclusive, so waiting for undecided ones would only cost time.
        for matcher in self.matchers:
            verdict = self.verdicts[matcher.name]
            if isinstance(verdict, Match):
                return verdict
        return None


def expect_prefix(data: bytes, prefixes: Iterable[bytes]) -> Verdict | None:
    """Return ``NeedMore``/``NoMatch`` while ``data`` is shorter than/differs from all
    ``prefixes``; ``None`` once ``data`` starts with one of them."""
    undecided = False
    for prefix in prefixes:
        if data.startswith(prefix):
            return None
        if prefix.startswith(data):
            undecided = True
    return NEED_MORE if undecided else NoMatch(reason="unexpected first bytes")


def first_line(data: bytes, *, limit: int = 1024) -> bytes | None:
    """Return the first line without its line ending, or ``None`` if it is not complete.

    Raises nothing: a line longer than ``limit`` is returned cut at ``limit``.
    """
    end = data.find(b"\n", 0, limit)
    if end < 0:
        return data[:limit] if len(data) >= limit else None
    return data[:end].rstrip(b"\r")
