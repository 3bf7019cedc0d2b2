"""What the POP3 and IMAP server sessions share: their events and bounded line framing.

Both protocols read CRLF-terminated command lines (RFC 1939 section 3, RFC 3501 section
2.2) and answer with the same kinds of events for the I/O layer. No sockets, no asyncio.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

__all__ = [
    "LINE_TOO_LONG",
    "Close",
    "Event",
    "LineBuffer",
    "LoginFailed",
    "LoginSucceeded",
    "Overflow",
    "Send",
    "StartTls",
    "decode_sasl_plain",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Write these bytes to the client."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls:
    """Upgrade the connection to TLS now (the positive reply was sent before this event)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed:
    """A login attempt failed; the I/O layer may delay the reply that follows."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSucceeded:
    """A user logged in."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close the connection after the bytes already sent."""


Event = Send | StartTls | LoginFailed | LoginSucceeded | Close


class Overflow(enum.Enum):
    """What :meth:`LineBuffer.next_line` returns for a line longer than its cap."""

    LINE_TOO_LONG = "line too long"


LINE_TOO_LONG = Overflow.LINE_TOO_LONG


class LineBuffer:
    """Bytes from the client, cut into lines ending in LF (a CR before it is removed).

    At most ``max_line`` octets of an unfinished line are kept: a longer one is dropped up
    to its end and reported once as :data:`LINE_TOO_LONG`, so a peer that never sends a
    line feed cannot grow the buffer without bound.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False  # dropping the rest of an over-long line

    def feed(self, data: bytes) -> None:
        """Append bytes from the client."""
        self._buffer += data

    def __len__(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        """Forget everything buffered (e.g. bytes pipelined in the clear before TLS)."""
        self._buffer.clear()

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` octets as they came (literal data, no framing)."""
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def next_line(self) -> bytes | Overflow | None:
        """The next complete line without its line ending, :data:`LINE_TOO_LONG`, or ``None``.

        ``None`` means more data is needed. An over-long line is reported once, when it is
        first seen to be too long; its remainder is skipped silently.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                # max_line octets and the CR of their CRLF may wait for the LF: judged
                # with less, a line would be too long or not depending on how it arrived.
                if len(self._buffer) > self.max_line + 1:
                    self._buffer.clear()
                    if not self._discarding:
                        self._discarding = True
                        return LINE_TOO_LONG
                return None
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_line:
                return LINE_TOO_LONG
            return line


def decode_sasl_plain(response: bytes) -> tuple[str, str, str] | None:
    """Decode a base64 SASL PLAIN response into (authzid, authcid, password), or ``None``.

    RFC 4616 section 2: ``[authzid] NUL authcid NUL passwd`` in UTF-8. ``None`` means the
    response was malformed (not base64, not UTF-8, or not three fields).
    """
    try:
        authzid, authcid, passwd = (
            base64.b64decode(response, validate=True).decode("utf-8").split("\0")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return authzid, authcid, passwd
