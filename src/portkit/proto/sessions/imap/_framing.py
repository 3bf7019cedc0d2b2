"""Cutting a client's bytes into IMAP commands (RFC 3501 sections 2.2 and 4.3).

A command is a line, possibly continued by literals ``{n}``: the server answers ``+``
before the client sends a synchronizing literal's octets, which lets it refuse a literal
over the limit *before* reading it: the client gets a tagged ``BAD`` instead of a
continuation. The whole command (every line and literal it chains) is capped too, far lower
before login than after: a stranger cannot make the server hold more than that for one
connection, however many literals it chains. A non-synchronizing literal (``{n+}``, RFC
7888) comes unasked; one over the limit is skipped after login, and before login the
connection is closed instead (RFC 7888 section 4 allows it, and it is cheaper).
"""

from __future__ import annotations

from dataclasses import dataclass

from portkit._errors import RemoteProtocolError
from portkit.proto.sessions._line import LINE_TOO_LONG, LineBuffer
from portkit.proto.sessions.imap._grammar import LITERAL_RE, Command, Tokenizer, valid_tag

__all__ = [
    "MAX_LINE",
    "R_BAD_LITERAL",
    "R_BYE_TOO_BIG",
    "R_COMMAND_TOO_BIG",
    "R_CONTINUE_LITERAL",
    "R_LINE_TOO_LONG",
    "R_NO_TAG",
    "CommandReader",
    "Reply",
]

#: Longest command line (without literals) accepted; longer lines get ``BAD``.
MAX_LINE = 64 * 1024

R_CONTINUE_LITERAL = b"+ ready for literal data"
R_LINE_TOO_LONG = b"* BAD line too long"
R_NO_TAG = b"* BAD missing command tag"
R_BAD_LITERAL = b"BAD [TOOBIG] literal of %d octets is larger than the limit of %d"
R_COMMAND_TOO_BIG = b"BAD [TOOBIG] command would be larger than the limit of %d octets"
R_BYE_TOO_BIG = b"* BYE [TOOBIG] non-synchronizing literal too large before login"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An answer the framing gives by itself: a refusal or a continuation request."""

    data: bytes
    close: bool = False  # end the connection after it


class CommandReader:
    """Commands from a :class:`LineBuffer`, each within its caps.

    Args:
        lines: the session's input.
        max_literal: the largest literal accepted.
        max_command: the most octets one command may hold after login.
        max_command_unauthenticated: the same before login.
    """

    def __init__(
        self,
        lines: LineBuffer,
        *,
        max_literal: int,
        max_command: int,
        max_command_unauthenticated: int,
    ) -> None:
        self.max_literal = max_literal
        self.max_command = max_command
        self.max_command_unauthenticated = max_command_unauthenticated
        #: Set by the session once a user has logged in: the larger cap applies.
        self.logged_in = False
        self._lines = lines
        self._tokens = Tokenizer()
        self._tag: str | None = None
        self._literal_left = 0  # octets of an accepted literal still to come
        self._skip_left = 0  # octets of a refused non-synchronizing literal to drop
        self._skipping = False  # dropping the rest of a refused command after its literal
        self._literal = bytearray()
        self._size = 0  # octets of the command in progress, lines and literals

    def buffered(self) -> int:
        """Octets of the command in progress, its accepted literals counted in full."""
        return self._size

    def next(self) -> Command | Reply | None:
        """The next complete command, a reply of the framing's own, or ``None`` (more data)."""
        while self._lines:
            if self._skip_left:
                self._skip_left -= len(self._lines.take(self._skip_left))
                continue
            if self._skipping:
                if not self._skip_rest():
                    return None
                continue
            if self._literal_left:
                chunk = self._lines.take(self._literal_left)
                self._literal += chunk
                self._literal_left -= len(chunk)
                if not self._literal_left:
                    self._tokens.feed_literal(bytes(self._literal))
                    self._literal.clear()
                continue
            line = self._lines.next_line()
            if line is None:
                return None
            if line is LINE_TOO_LONG:
                self._reset()
                return Reply(data=R_LINE_TOO_LONG + b"\r\n")
            result = self._line(line)
            if result is not None:
                return result
        return None

    def _skip_rest(self) -> bool:
        """Drop the line after a skipped literal (the refused command's rest); False: wait."""
        line = self._lines.next_line()
        if line is None:
            return False
        m = LITERAL_RE.search(line) if line is not LINE_TOO_LONG else None
        if m and m.group(2):  # yet another literal that comes unasked
            self._skip_left = int(m.group(1))
        else:
            self._skipping = False
        return True

    def _reset(self) -> None:
        self._tokens = Tokenizer()
        self._tag = None
        self._size = 0

    def _refuse(self, tag: str, line: bytes) -> Reply:
        self._reset()
        return Reply(data=tag.encode("ascii") + b" " + line + b"\r\n")

    def _line(self, line: bytes) -> Command | Reply | None:
        m = LITERAL_RE.search(line)
        text = line[: m.start()] if m else line
        if self._tag is None:
            raw_tag, sep, rest = text.partition(b" ")
            if not raw_tag or (not sep and not m) or not valid_tag(raw_tag):
                self._reset()
                return Reply(data=R_NO_TAG + b"\r\n")
            self._tag = raw_tag.decode("ascii")
            text = rest
        tag = self._tag
        limit = self.max_command if self.logged_in else self.max_command_unauthenticated
        self._size += len(line) + 2
        if self._size > limit:
            # Each line is at most MAX_LINE, but lines chained by literals are one command.
            return self._refuse(tag, R_COMMAND_TOO_BIG % limit)
        try:
            self._tokens.feed_text(text)
        except RemoteProtocolError as exc:
            return self._refuse(tag, b"BAD " + str(exc).encode())
        if m:
            return self._literal_announced(tag, int(m.group(1)), bool(m.group(2)), limit)
        try:
            tokens = self._tokens.finish()
        except RemoteProtocolError as exc:
            return self._refuse(tag, b"BAD " + str(exc).encode())
        self._reset()
        if not tokens or not isinstance(tokens[0], str):
            return Reply(data=tag.encode("ascii") + b" BAD missing command name\r\n")
        command = Command(tag=tag, name=tokens[0].upper(), args=tokens[1:])
        if command.name == "UID" and command.args and isinstance(command.args[0], str):
            command.name = "UID " + command.args[0].upper()
            command.args = command.args[1:]
        return command

    def _literal_announced(self, tag: str, size: int, unasked: bool, limit: int) -> Reply | None:
        if size > self.max_literal or self._size + size > limit:
            if size > self.max_literal:
                refusal = self._refuse(tag, R_BAD_LITERAL % (size, self.max_literal))
            else:
                refusal = self._refuse(tag, R_COMMAND_TOO_BIG % limit)
            if not unasked:
                return refusal
            if not self.logged_in:  # the octets are coming anyway: close instead
                return Reply(data=refusal.data + R_BYE_TOO_BIG + b"\r\n", close=True)
            self._skip_left = size
            self._skipping = True
            return refusal
        self._size += size
        self._literal_left = size
        if size == 0:
            self._tokens.feed_literal(b"")
        if unasked:
            return None
        return Reply(data=R_CONTINUE_LITERAL + b"\r\n")
