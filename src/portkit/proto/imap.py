"""IMAP4rev1 server session as a sans-io state machine (RFC 3501).

Bytes from the client go in through :meth:`ImapSession.receive`; out come events for the
I/O layer: :class:`Send`, :class:`StartTls`, :class:`LoginFailed`, :class:`Close`. While a
client idles (RFC 2177) the I/O layer calls :meth:`ImapSession.poll` now and then to report
mailbox changes. No sockets, no asyncio.

Framing (RFC 3501 section 2.2 and 4.3): a command is a line, possibly continued by
synchronizing literals ``{n}``. The server answers ``+`` before the client sends the
literal's octets, which lets it refuse a literal over :attr:`ImapSession.max_literal`
*before* reading it: the client gets a tagged ``BAD`` instead of a continuation. The whole
command (every line and literal it chains) is capped too, far lower before login
(:data:`MAX_COMMAND_UNAUTHENTICATED`) than after: a stranger cannot make the server hold
more than that for one connection, however many literals it chains.

The legal moves are one table, :data:`TRANSITIONS`: (state, command) -> handler. A command
the table does not list for the current state is answered ``BAD`` naming both, and
:meth:`ImapSession.transition` raises :class:`~portkit.LocalProtocolError` for it.

Messages are parsed with the standard library's :mod:`email` package (BODYSTRUCTURE,
ENVELOPE, section bodies); only the RFC 5322 header/body split is done here.

One mailbox, ``INBOX``, is served; the data comes from an :class:`ImapBackend`.
"""

from __future__ import annotations

import calendar
import email
import email.generator
import email.message
import email.policy
import email.utils
import enum
import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

from portkit._errors import LocalProtocolError, PortkitError, RemoteProtocolError
from portkit.proto._session import (
    LINE_TOO_LONG,
    Close,
    Event,
    LineBuffer,
    LoginFailed,
    LoginSucceeded,
    Send,
    StartTls,
    decode_sasl_plain,
)

__all__ = [
    "COMMANDS",
    "MAX_COMMAND",
    "MAX_COMMAND_UNAUTHENTICATED",
    "MAX_LINE",
    "MAX_LITERAL",
    "MAX_MIME_DEPTH",
    "OUTPUT_BATCH",
    "SYSTEM_FLAGS",
    "TRANSITIONS",
    "Close",
    "Event",
    "ImapBackend",
    "ImapMailbox",
    "ImapSession",
    "ImapState",
    "LoginFailed",
    "LoginSucceeded",
    "MessageRecord",
    "Send",
    "Snapshot",
    "StartTls",
    "parse_message",
    "parse_sequence_set",
]

#: Longest command line (without literals) accepted; longer lines get ``BAD``.
MAX_LINE = 64 * 1024
#: Default largest literal accepted; bigger ones are refused before they are sent.
MAX_LITERAL = 1024 * 1024
#: Default cap on one whole command (lines and literals) after login.
MAX_COMMAND = 2 * 1024 * 1024
#: Cap on one whole command before login: enough for LOGIN or AUTHENTICATE with literals.
MAX_COMMAND_UNAUTHENTICATED = 64 * 1024
#: MIME parts nested deeper than this are described as one flat text part (dovecot has the
#: same kind of bound): a hostile message cannot make BODYSTRUCTURE recurse without end.
MAX_MIME_DEPTH = 100
#: Parenthesized lists and search keys nested deeper than this are refused with BAD.
MAX_NESTING = 64
#: FETCH output is produced in batches of about this many octets (bounded memory).
OUTPUT_BATCH = 1024 * 1024

#: The flags stored permanently (RFC 3501 section 2.3.2); keywords are not kept.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_FLAG_LOOKUP = {f.lower(): f for f in SYSTEM_FLAGS}


class ImapState(enum.Enum):
    """The states of RFC 3501 section 3, plus the waits for a SASL response and for DONE."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATING = "authenticating"  # AUTHENTICATE sent "+", waiting for the response
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    IDLE = "idle"  # RFC 2177: waiting for DONE, pushing updates
    LOGOUT = "logout"


# Named replies. Response codes: RFC 3501 section 7.1, RFC 5530.
R_GREETING = b"* OK [CAPABILITY %s] portkit IMAP4rev1 server ready"
R_BYE = b"* BYE portkit IMAP4rev1 server logging out"
R_CONTINUE_LITERAL = b"+ ready for literal data"
R_CONTINUE_SASL = b"+ "
R_CONTINUE_IDLE = b"+ idling"
R_LINE_TOO_LONG = b"* BAD line too long"
R_NO_TAG = b"* BAD missing command tag"
R_BAD_LITERAL = b"BAD [TOOBIG] literal of %d octets is larger than the limit of %d"
R_COMMAND_TOO_BIG = b"BAD [TOOBIG] command would be larger than the limit of %d octets"
R_BYE_TOO_BIG = b"* BYE [TOOBIG] non-synchronizing literal too large before login"
R_AUTH_FAILED = b"NO [AUTHENTICATIONFAILED] invalid user name or password"
R_LOGIN_DISABLED = b"NO [PRIVACYREQUIRED] plaintext login needs tls first (use STARTTLS)"
R_NO_MAILBOX = b"NO [NONEXISTENT] no such mailbox (only INBOX is served)"
R_CANNOT = b"NO [CANNOT] only INBOX is served"
R_READ_ONLY = b"NO [READ-ONLY] mailbox is read-only"
R_EXPUNGEISSUED = b"NO [EXPUNGEISSUED] some messages were expunged by another session"
R_TLS_NA = b"BAD tls not available"
R_TLS_ACTIVE = b"BAD tls already active"
R_TLS_GO = b"OK begin tls negotiation now"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    """One message as the store reports it."""

    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float  # seconds since the epoch
    recent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The mailbox at one instant: UID bookkeeping and its messages in UID order."""

    uidvalidity: int
    uidnext: int
    messages: Sequence[MessageRecord]


class ImapMailbox(Protocol):
    """The INBOX of one user."""

    def snapshot(self, *, claim_recent: bool) -> Snapshot:
        """The messages now; with ``claim_recent`` this session takes their \\Recent."""
        ...

    def read(self, uid: int) -> bytes:
        """The bytes of a message; raise :class:`~portkit.PortkitError` if it is gone."""
        ...

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Replace the system flags of a message."""
        ...

    def expunge(self, uids: Sequence[int]) -> None:
        """Remove messages permanently."""
        ...

    def append(self, data: bytes, flags: frozenset[str]) -> None:
        """Add a message."""
        ...


class ImapBackend(Protocol):
    """Accounts and mailboxes for a session."""

    def authenticate(self, user: str, password: str) -> bool:
        """Whether the credentials are valid."""
        ...

    def inbox(self, user: str) -> ImapMailbox:
        """The user's INBOX."""
        ...


# ---------------------------------------------------------------------------------------
# Command syntax (RFC 3501 section 9): atoms, strings (quoted or literal), lists.


Token = Union[str, bytes, "list[Token]"]
# str: an atom (including NIL, numbers, sequence sets, BODY[...] fetch attributes);
# bytes: a quoted string or literal; list: a parenthesized list.


class _Tokenizer:
    """Turns the segments of one command (line text and literals) into tokens."""

    def __init__(self) -> None:
        self.root: list[Token] = []
        self.stack: list[list[Token]] = [self.root]

    def feed_text(self, text: bytes) -> None:
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == 0x20:
                i += 1
            elif c == 0x28:  # (
                if len(self.stack) > MAX_NESTING:
                    raise RemoteProtocolError(f"lists nested more than {MAX_NESTING} deep")
                new: list[Token] = []
                self.stack[-1].append(new)
                self.stack.append(new)
                i += 1
            elif c == 0x29:  # )
                if len(self.stack) == 1:
                    raise RemoteProtocolError("unbalanced ')' in command")
                self.stack.pop()
                i += 1
            elif c == 0x22:  # "  quoted string, RFC 3501 section 4.3
                out = bytearray()
                i += 1
                while True:
                    if i >= n:
                        raise RemoteProtocolError("unterminated quoted string")
                    ch = text[i]
                    if ch == 0x5C:  # backslash quotes only " and \
                        if i + 1 >= n or text[i + 1] not in b'"\\':
                            raise RemoteProtocolError("bad escape in quoted string")
                        out.append(text[i + 1])
                        i += 2
                    elif ch == 0x22:
                        i += 1
                        break
                    else:
                        out.append(ch)
                        i += 1
                self.stack[-1].append(bytes(out))
            elif c == 0x7B:  # { only at the end of a line, handled by the framer
                raise RemoteProtocolError("literal marker not at end of line")
            else:
                start = i
                depth = 0
                while i < n:
                    ch = text[i]
                    if ch < 0x20 or ch == 0x7F:
                        raise RemoteProtocolError("control character in command")
                    if ch == 0x5B:  # [ opens a section: spaces and parens allowed inside
                        depth += 1
                    elif ch == 0x5D and depth:
                        depth -= 1
                    elif depth == 0 and ch in (0x20, 0x28, 0x29, 0x22, 0x7B):
                        break
                    i += 1
                if depth:
                    raise RemoteProtocolError("unbalanced '[' in command")
                atom = text[start:i]
                try:
                    self.stack[-1].append(atom.decode("ascii"))
                except UnicodeDecodeError:
                    raise RemoteProtocolError("8-bit characters in an atom") from None

    def feed_literal(self, data: bytes) -> None:
        self.stack[-1].append(data)

    def finish(self) -> list[Token]:
        if len(self.stack) != 1:
            raise RemoteProtocolError("unbalanced '(' in command")
        return self.root


_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")


def _astring(token: Token, what: str) -> str:
    if isinstance(token, list):
        raise RemoteProtocolError(f"{what} must be a string, not a list")
    if isinstance(token, bytes):
        try:
            return token.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{what} is not utf-8") from None
    return token


def _quote(value: str | bytes | None) -> bytes:
    """An IMAP string: NIL, a quoted string, or a literal when quoting cannot carry it."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) < 1024 and all(0x20 <= b < 0x7F for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def _flag_list(flags: frozenset[str], recent: bool = False) -> bytes:
    items = [f for f in SYSTEM_FLAGS if f in flags]
    if recent:
        items.append("\\Recent")
    return b"(" + " ".join(items).encode("ascii") + b")"


def parse_sequence_set(text: str, largest: int) -> list[tuple[int, int]]:
    """Parse ``1:3,5,7:*`` into inclusive ranges; ``*`` is ``largest`` (RFC 3501 9)."""

    def number(part: str) -> int:
        if part == "*":
            return largest
        if not part.isdigit() or part.startswith("0") or len(part) > 10:
            raise RemoteProtocolError(f"bad sequence number {part!r}")
        return int(part)

    ranges: list[tuple[int, int]] = []
    if not text:
        raise RemoteProtocolError("empty sequence set")
    for item in text.split(","):
        low, sep, high = item.partition(":")
        a = number(low)
        b = number(high) if sep else a
        ranges.append((min(a, b), max(a, b)))
    return ranges


def _in_ranges(value: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(a <= value <= b for a, b in ranges)


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _internaldate(ts: float) -> bytes:
    t = time.gmtime(ts)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def _parse_date(token: Token) -> int:
    """An IMAP ``date`` (``1-Feb-1994``) as days since the epoch (RFC 3501 section 9)."""
    text = _astring(token, "date")
    try:
        day, mon, year = text.split("-")
        month = [m.lower() for m in _MONTHS].index(mon.lower()) + 1
        return calendar.timegm((int(year), month, int(day), 0, 0, 0)) // 86400
    except ValueError:
        raise RemoteProtocolError(f"bad date {text!r}") from None


# ---------------------------------------------------------------------------------------
# Message structure with the email package (RFC 3501 section 7.4.2).

_POLICY = email.policy.compat32


class _BoundedMessage(email.message.Message):
    """A message or part that knows how deeply it is nested; past the bound it is a leaf.

    The email parser attaches each part to its parent before reading the part's header,
    and asks :meth:`get_content_type` whether to parse the body as more parts (multipart/*,
    message/rfc822). Past :data:`MAX_MIME_DEPTH` the answer is ``text/plain``: the rest is
    one flat body, so neither the parser nor BODYSTRUCTURE recurses deeper than the bound.
    """

    depth = 0

    def attach(self, payload: email.message.Message[str, str] | str) -> None:
        if isinstance(payload, _BoundedMessage):
            payload.depth = self.depth + 1
        super().attach(payload)

    def get_content_type(self) -> str:
        if self.depth >= MAX_MIME_DEPTH:
            return "text/plain"
        return super().get_content_type()


def parse_message(raw: bytes) -> email.message.Message:
    """A message parsed by the email package, nested at most :data:`MAX_MIME_DEPTH` deep."""
    return email.message_from_bytes(raw, _class=_BoundedMessage, policy=_POLICY)


def _split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (RFC 5322 section 2.1); the header keeps its CRLFCRLF."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos >= 0:
            return raw[: pos + len(sep)], raw[pos + len(sep) :]
    return raw, b""


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _header_fields(header: bytes, names: set[str], *, keep: bool) -> bytes:
    """The header lines whose field name is (``keep``) or is not in ``names``, plus CRLF."""
    out: list[bytes] = []
    current = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if current:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        current = (name in names) == keep
        if current:
            out.append(line)
    return b"".join(out) + b"\r\n"


def _payload_bytes(part: email.message.Message) -> bytes:
    """The body octets of a non-multipart part, as they were received."""
    payload = part.get_payload(decode=False)
    if isinstance(payload, list):
        return _serialize(part, body_only=True)
    return str(payload).encode("ascii", "surrogateescape")


def _serialize(part: email.message.Message, *, body_only: bool = False) -> bytes:
    buf = io.BytesIO()
    gen = email.generator.BytesGenerator(
        buf, mangle_from_=False, policy=_POLICY.clone(linesep="\r\n")
    )
    gen.flatten(part)
    data = buf.getvalue()
    return _split_header(data)[1] if body_only else data


def _nstring_header(msg: email.message.Message, name: str) -> bytes:
    value = msg.get(name)
    return _quote(_unfold(str(value)) if value is not None else None)


def _addresses(msg: email.message.Message, name: str) -> bytes:
    values = msg.get_all(name)
    if not values:
        return b"NIL"
    out = []
    for display, addr in email.utils.getaddresses([_unfold(str(v)) for v in values]):
        if not addr and not display:
            continue
        mailbox, at, host = addr.rpartition("@")
        if not at:
            mailbox, host = addr, ""
        out.append(
            b"("
            + _quote(display or None)
            + b" NIL "
            + _quote(mailbox)
            + b" "
            + _quote(host or None)
            + b")"
        )
    return b"(" + b"".join(out) + b")" if out else b"NIL"


def envelope(msg: email.message.Message) -> bytes:
    """The ENVELOPE of a message (RFC 3501 section 7.4.2)."""
    sender = "Sender" if msg.get("Sender") else "From"
    reply_to = "Reply-To" if msg.get("Reply-To") else "From"
    return (
        b"("
        + b" ".join(
            [
                _nstring_header(msg, "Date"),
                _nstring_header(msg, "Subject"),
                _addresses(msg, "From"),
                _addresses(msg, sender),
                _addresses(msg, reply_to),
                _addresses(msg, "To"),
                _addresses(msg, "Cc"),
                _addresses(msg, "Bcc"),
                _nstring_header(msg, "In-Reply-To"),
                _nstring_header(msg, "Message-ID"),
            ]
        )
        + b")"
    )


def _params(part: email.message.Message, header: str) -> bytes:
    params = part.get_params(header=header, failobj=[])
    pairs = [(k, v) for k, v in params[1:] if isinstance(v, str)] if params else []
    if not pairs:
        return b"NIL"
    return b"(" + b" ".join(_quote(k.upper()) + b" " + _quote(v) for k, v in pairs) + b")"


def bodystructure(part: email.message.Message, *, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (or BODY when not ``extensible``) of a message or part (RFC 3501 7.4.2)."""
    maintype = part.get_content_maintype()
    subtype = part.get_content_subtype()
    if part.is_multipart() and maintype == "multipart":
        children = b"".join(
            bodystructure(p, extensible=extensible)
            for p in part.get_payload()
            if isinstance(p, email.message.Message)
        )
        out = children + b" " + _quote(subtype.upper())
        if extensible:
            out += b" " + _params(part, "content-type") + b" " + _disposition(part) + b" NIL NIL"
        return b"(" + out + b")"
    body = _payload_bytes(part)
    fields = [
        _quote(maintype.upper()),
        _quote(subtype.upper()),
        _params(part, "content-type"),
        _nstring_header(part, "Content-ID"),
        _nstring_header(part, "Content-Description"),
        _quote(str(part.get("Content-Transfer-Encoding", "7BIT")).strip().upper()),
        b"%d" % len(body),
    ]
    if maintype == "message" and subtype == "rfc822" and part.is_multipart():
        inner = part.get_payload(0)
        assert isinstance(inner, email.message.Message)
        fields += [envelope(inner), bodystructure(inner, extensible=extensible)]
        fields.append(b"%d" % _lines(body))
    elif maintype == "text":
        fields.append(b"%d" % _lines(body))
    if extensible:
        fields += [_nstring_header(part, "Content-MD5"), _disposition(part), b"NIL", b"NIL"]
    return b"(" + b" ".join(fields) + b")"


def _lines(body: bytes) -> int:
    """Lines in a body part: a last line without its line break still counts."""
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def _disposition(part: email.message.Message) -> bytes:
    value = part.get_content_disposition()
    if value is None:
        return b"NIL"
    return b"(" + _quote(value.upper()) + b" " + _params(part, "content-disposition") + b")"


def _subpart(msg: email.message.Message, numbers: Sequence[int]) -> email.message.Message:
    """The part a section number names (RFC 3501 section 6.4.5)."""
    part = msg
    for n in numbers:
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            assert isinstance(inner, email.message.Message)
            part = inner
        if part.is_multipart():
            children = part.get_payload()
            if not isinstance(children, list) or not 1 <= n <= len(children):
                raise LookupError(n)
            child = children[n - 1]
            assert isinstance(child, email.message.Message)
            part = child
        elif n != 1:
            raise LookupError(n)
    return part


# ---------------------------------------------------------------------------------------
# FETCH attributes.


@dataclass(frozen=True, slots=True, kw_only=True)
class _FetchAtt:
    name: str  # FLAGS, UID, RFC822.SIZE, INTERNALDATE, ENVELOPE, BODYSTRUCTURE, BODY, SECTION
    section: str = ""  # e.g. "", "HEADER", "1.2.TEXT", "HEADER.FIELDS (FROM TO)"
    peek: bool = False
    partial: tuple[int, int] | None = None
    label: str = ""  # how the response names it, e.g. "BODY[HEADER]<0>" or "RFC822"


_SECTION_RE = re.compile(
    r"^(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<(\d{1,10})\.(\d{1,10})>)?$", re.IGNORECASE
)
_SIMPLE_ATTS = {"FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE", "BODY"}
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


def _parse_fetch_att(token: Token) -> _FetchAtt:
    if not isinstance(token, str):
        raise RemoteProtocolError("fetch attribute must be an atom")
    upper = token.upper()
    if upper in _SIMPLE_ATTS:
        return _FetchAtt(name=upper, label=upper)
    if upper == "RFC822":
        return _FetchAtt(name="SECTION", section="", label="RFC822")
    if upper == "RFC822.HEADER":
        return _FetchAtt(name="SECTION", section="HEADER", peek=True, label="RFC822.HEADER")
    if upper == "RFC822.TEXT":
        return _FetchAtt(name="SECTION", section="TEXT", label="RFC822.TEXT")
    m = _SECTION_RE.match(token)
    if not m:
        raise RemoteProtocolError(f"unknown fetch attribute {token!r}")
    section = " ".join(m.group(2).split()).upper()
    _check_section(section)
    partial = (int(m.group(3)), int(m.group(4))) if m.group(3) is not None else None
    label = f"BODY[{section}]" + (f"<{partial[0]}>" if partial else "")
    return _FetchAtt(
        name="SECTION",
        section=section,
        peek=m.group(1).upper() == "BODY.PEEK",
        partial=partial,
        label=label,
    )


_SECTION_TEXT_RE = re.compile(
    r"^(?:(\d{1,5}(?:\.\d{1,5})*)(?:\.(?=[A-Z])|$))?"
    r"(HEADER|TEXT|MIME|HEADER\.FIELDS \([^()]*\)|HEADER\.FIELDS\.NOT \([^()]*\))?$"
)


def _check_section(section: str) -> None:
    m = _SECTION_TEXT_RE.match(section)
    if not m or (m.group(2) == "MIME" and not m.group(1)):
        raise RemoteProtocolError(f"bad section {section!r}")


def _section_bytes(raw: bytes, section: str) -> bytes:
    """The octets a BODY[section] names (RFC 3501 section 6.4.5)."""
    m = _SECTION_TEXT_RE.match(section)
    assert m is not None
    numbers = [int(n) for n in m.group(1).split(".")] if m.group(1) else []
    spec = m.group(2) or ""
    if not numbers:
        header, body = _split_header(raw)
        target_header, target_body, target_all = header, body, raw
    else:
        msg = parse_message(raw)
        try:
            part = _subpart(msg, numbers)
        except LookupError:
            return b""
        if spec == "MIME":
            return _split_header(_serialize(part))[0]
        if spec in ("", "MIME"):
            return _payload_bytes(part)
        # HEADER/TEXT of a part apply to an encapsulated message/rfc822.
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            assert isinstance(inner, email.message.Message)
            part = inner
        target_all = _serialize(part)
        target_header, target_body = _split_header(target_all)
    if spec == "":
        return target_all
    if spec == "HEADER":
        return target_header
    if spec == "TEXT":
        return target_body
    names = {n.lower() for n in spec[spec.index("(") + 1 : -1].split()}
    return _header_fields(target_header, names, keep=not spec.startswith("HEADER.FIELDS.NOT"))


# ---------------------------------------------------------------------------------------
# The session.


@dataclass(slots=True)
class _View:
    """What this session has told the client about one message (RFC 3501 section 2.3.1.2)."""

    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float
    recent: bool


@dataclass(slots=True)
class _Command:
    tag: str
    name: str
    args: list[Token] = field(default_factory=list)


Handler = Callable[["ImapSession", _Command], None]


class _Bad(Exception):
    """A syntax error in a command's arguments: answered BAD."""


class ImapSession:
    """One IMAP conversation with one client.

    Args:
        backend: authenticates users and gives their INBOX.
        tls_available: a certificate is configured, so STARTTLS can be offered.
        tls_active: the connection is already TLS (993, or after STARTTLS).
        plaintext_login: allow LOGIN/AUTHENTICATE without TLS (otherwise LOGINDISABLED,
            RFC 3501 section 6.2.3).
        max_literal: the largest literal accepted (refused before it is sent).
        max_command: the most octets one command may hold after login, lines and literals
            together (never less than ``max_literal`` plus a line).
        max_command_unauthenticated: the same before login (and during AUTHENTICATE).
    """

    def __init__(
        self,
        backend: ImapBackend,
        *,
        tls_available: bool = False,
        tls_active: bool = False,
        plaintext_login: bool = True,
        max_literal: int = MAX_LITERAL,
        max_command: int = MAX_COMMAND,
        max_command_unauthenticated: int = MAX_COMMAND_UNAUTHENTICATED,
    ) -> None:
        self.backend = backend
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_login = plaintext_login
        self.max_literal = max_literal
        self.max_command = max(max_command, max_literal + MAX_LINE)
        self.max_command_unauthenticated = max_command_unauthenticated
        self.state = ImapState.NOT_AUTHENTICATED
        self.user: str | None = None
        self.read_only = False
        self._inbox: ImapMailbox | None = None
        self._view: list[_View] = []
        self._uidvalidity = 0
        self._uidnext = 1
        self._out: list[Event] = []
        # framing
        self._lines = LineBuffer(MAX_LINE)
        self._tokens = _Tokenizer()
        self._tag: str | None = None
        self._literal_left = 0  # octets of an accepted literal still to come
        self._skip_left = 0  # octets of a refused non-synchronizing literal to drop
        self._literal = bytearray()
        self._command_size = 0  # octets of the command in progress, lines and literals
        self._pending: _Command | None = None  # AUTHENTICATE or IDLE waiting for a line
        self._idle_from = ImapState.AUTHENTICATED
        self._job: Iterator[None] | None = None  # a FETCH answering in batches

    # -- I/O surface -----------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        """The untagged OK greeting with the capabilities (RFC 3501 section 7.1.1)."""
        return [Send(data=R_GREETING % self._capability_text() + b"\r\n")]

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the client; return the events they cause, in order.

        A FETCH of many messages answers in batches of about :data:`OUTPUT_BATCH` octets:
        while :meth:`pending` is true, call ``receive(b"")`` (after sending what came out)
        for the next batch. Input is kept until the command in progress is done.
        """
        self._lines.feed(data)
        if self._job is not None:
            self._run_job()
        while self._job is None and self.state is not ImapState.LOGOUT and self._lines:
            if self._skip_left:
                self._skip_left -= len(self._lines.take(self._skip_left))
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
                break
            if line is LINE_TOO_LONG:
                self._reset_command()
                self._untagged_raw(R_LINE_TOO_LONG)
                continue
            self._line(line)
            if self._out and isinstance(self._out[-1], StartTls):
                # RFC 3501 section 6.2.1 / CVE-2011-0411: nothing pipelined in the clear
                # after STARTTLS may be taken as if it came over TLS.
                self._lines.clear()
                break
        out, self._out = self._out, []
        return out

    def pending(self) -> bool:
        """Whether a command's output is not complete yet (see :meth:`receive`)."""
        return self._job is not None

    def _run_job(self) -> None:
        """Advance the command in progress until it ends or a batch of output is ready."""
        assert self._job is not None
        start = len(self._out)
        size = 0
        for _ in self._job:
            size += sum(len(e.data) for e in self._out[start:] if isinstance(e, Send))
            start = len(self._out)
            if size >= OUTPUT_BATCH:
                return
        self._job = None

    def poll(self) -> list[Event]:
        """While idling (RFC 2177), report mailbox changes; otherwise nothing."""
        if self.state is ImapState.IDLE:
            self._sync(expunges=True)
        out, self._out = self._out, []
        return out

    def tls_started(self) -> None:
        """The I/O layer finished the TLS handshake after :class:`StartTls`."""
        self.tls_active = True

    def connection_lost(self) -> None:
        """The client went away."""
        self.state = ImapState.LOGOUT
        self._inbox = None

    # -- framing ----------------------------------------------------------------------------

    def _reset_command(self) -> None:
        self._tokens = _Tokenizer()
        self._tag = None
        self._command_size = 0

    def _command_limit(self) -> int:
        if self.state in (ImapState.NOT_AUTHENTICATED, ImapState.AUTHENTICATING):
            return self.max_command_unauthenticated
        return self.max_command

    def _line(self, line: bytes) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if pending.name == "IDLE":
                self._idle_done(pending, line)
            else:
                self._sasl_response(pending, line)
            return
        m = _LITERAL_RE.search(line)
        text = line[: m.start()] if m else line
        if self._tag is None:
            raw_tag, sep, rest = text.partition(b" ")
            if not raw_tag or (not sep and not m) or not _valid_tag(raw_tag):
                self._untagged_raw(R_NO_TAG)
                self._reset_command()
                return
            self._tag = raw_tag.decode("ascii")
            text = rest
        limit = self._command_limit()
        self._command_size += len(line) + 2
        if self._command_size > limit:
            # Each line is at most MAX_LINE, but lines chained by literals are one command.
            self._tagged_raw(self._tag, R_COMMAND_TOO_BIG % limit)
            self._reset_command()
            return
        try:
            self._tokens.feed_text(text)
        except RemoteProtocolError as exc:
            self._tagged_raw(self._tag, b"BAD " + str(exc).encode())
            self._reset_command()
            return
        assert self._tag is not None
        if m:
            size = int(m.group(1))
            if size > self.max_literal or self._command_size + size > limit:
                if size > self.max_literal:
                    self._tagged_raw(self._tag, R_BAD_LITERAL % (size, self.max_literal))
                else:
                    self._tagged_raw(self._tag, R_COMMAND_TOO_BIG % limit)
                self._reset_command()
                if m.group(2):  # non-synchronizing: the octets are coming anyway
                    if self.state is ImapState.NOT_AUTHENTICATED:
                        # RFC 7888 section 4 lets the server close instead of reading
                        # them; before login that is the cheaper choice.
                        self._untagged_raw(R_BYE_TOO_BIG)
                        self.state = ImapState.LOGOUT
                        self._out.append(Close())
                    else:
                        self._skip_left = size
                return
            self._command_size += size
            if not m.group(2):
                self._out.append(Send(data=R_CONTINUE_LITERAL + b"\r\n"))
            self._literal_left = size
            if size == 0:
                self._tokens.feed_literal(b"")
            return
        tag = self._tag
        try:
            tokens = self._tokens.finish()
        except RemoteProtocolError as exc:
            self._tagged_raw(tag, b"BAD " + str(exc).encode())
            self._reset_command()
            return
        self._reset_command()
        if not tokens or not isinstance(tokens[0], str):
            self._tagged_raw(tag, b"BAD missing command name")
            return
        command = _Command(tag=tag, name=tokens[0].upper(), args=tokens[1:])
        if command.name == "UID" and command.args and isinstance(command.args[0], str):
            command.name = "UID " + command.args[0].upper()
            command.args = command.args[1:]
        if (self.state, command.name) not in TRANSITIONS:
            known = any(name == command.name for _, name in TRANSITIONS)
            why = (
                f"command {command.name} is not allowed in state {self.state.value}"
                if known
                else f"unknown command {command.name}"
            )
            self._tagged_raw(tag, b"BAD " + why.encode("ascii", "replace"))
            return
        try:
            self.transition(command)
        except (_Bad, RemoteProtocolError) as exc:
            self._tagged_raw(tag, b"BAD " + str(exc).encode("utf-8", "replace"))

    def transition(self, command: _Command) -> None:
        """Run a parsed command in the current state; raise if the table has no such move."""
        handler = TRANSITIONS.get((self.state, command.name))
        if handler is None:
            raise LocalProtocolError(
                f"imap command {command.name!r} is not allowed in state {self.state.value!r}"
            )
        handler(self, command)

    def _untagged_raw(self, line: bytes) -> None:
        self._out.append(Send(data=line + b"\r\n"))

    def _untagged(self, line: bytes) -> None:
        self._out.append(Send(data=b"* " + line + b"\r\n"))

    def _tagged_raw(self, tag: str, line: bytes) -> None:
        self._out.append(Send(data=tag.encode("ascii") + b" " + line + b"\r\n"))

    def _ok(self, cmd: _Command, text: str = "", code: bytes = b"") -> None:
        done = text or f"{cmd.name} completed"
        self._tagged_raw(cmd.tag, b"OK " + (code + b" " if code else b"") + done.encode())

    # -- any state (RFC 3501 section 6.1) ---------------------------------------------------

    def _capability_text(self) -> bytes:
        caps = ["IMAP4rev1", "IDLE", "UNSELECT", "NAMESPACE", "SASL-IR"]
        if self.state is ImapState.NOT_AUTHENTICATED:
            if self.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            if self._login_allowed():
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
        return " ".join(caps).encode("ascii")

    def _login_allowed(self) -> bool:
        return self.plaintext_login or self.tls_active

    def _capability(self, cmd: _Command) -> None:
        self._untagged(b"CAPABILITY " + self._capability_text())
        self._ok(cmd)

    def _noop(self, cmd: _Command) -> None:
        # RFC 3501 6.1.2: NOOP (and CHECK) is how clients poll for new mail and expunges.
        if self.state is ImapState.SELECTED:
            self._sync(expunges=True)
        self._ok(cmd)

    def _logout(self, cmd: _Command) -> None:
        self._untagged_raw(R_BYE)
        self._ok(cmd)
        self.state = ImapState.LOGOUT
        self._inbox = None
        self._out.append(Close())

    # -- not authenticated (RFC 3501 section 6.2) ---------------------------------------------

    def _starttls(self, cmd: _Command) -> None:
        if self.tls_active:
            self._tagged_raw(cmd.tag, R_TLS_ACTIVE)
        elif not self.tls_available:
            self._tagged_raw(cmd.tag, R_TLS_NA)
        else:
            self._tagged_raw(cmd.tag, R_TLS_GO)
            self._out.append(StartTls())

    def _login(self, cmd: _Command) -> None:
        if len(cmd.args) != 2:
            raise _Bad("LOGIN takes a user name and a password")
        user, password = _astring(cmd.args[0], "user"), _astring(cmd.args[1], "password")
        if not self._login_allowed():
            self._tagged_raw(cmd.tag, R_LOGIN_DISABLED)
            return
        self._complete_login(cmd, user, password)

    def _authenticate(self, cmd: _Command) -> None:
        if not cmd.args or len(cmd.args) > 2:
            raise _Bad("AUTHENTICATE takes a mechanism and an optional initial response")
        mech = _astring(cmd.args[0], "mechanism").upper()
        if mech != "PLAIN":
            self._tagged_raw(cmd.tag, b"NO unsupported authentication mechanism")
            return
        if not self._login_allowed():
            self._tagged_raw(cmd.tag, R_LOGIN_DISABLED)
            return
        if len(cmd.args) == 2:  # SASL-IR, RFC 4959
            initial = _astring(cmd.args[1], "initial response").encode()
            self._sasl_response(cmd, b"" if initial == b"=" else initial)
            return
        self.state = ImapState.AUTHENTICATING
        self._pending = cmd
        self._untagged_raw(R_CONTINUE_SASL)

    def _sasl_response(self, cmd: _Command, line: bytes) -> None:
        self.state = ImapState.NOT_AUTHENTICATED
        if line.strip() == b"*":  # RFC 3501 6.2.2: the client cancels
            self._tagged_raw(cmd.tag, b"BAD authentication cancelled")
            return
        fields = decode_sasl_plain(line)
        if fields is None:
            self._tagged_raw(cmd.tag, b"BAD malformed sasl response")
            return
        authzid, authcid, passwd = fields
        if authzid and authzid != authcid:
            self._out.append(LoginFailed(user=authcid))
            self._tagged_raw(cmd.tag, R_AUTH_FAILED)
            return
        self._complete_login(cmd, authcid, passwd)

    def _complete_login(self, cmd: _Command, user: str, password: str) -> None:
        if not self.backend.authenticate(user, password):
            self._out.append(LoginFailed(user=user))
            self._tagged_raw(cmd.tag, R_AUTH_FAILED)
            return
        self.user = user
        self.state = ImapState.AUTHENTICATED
        self._out.append(LoginSucceeded(user=user))
        self._ok(cmd, "logged in", b"[CAPABILITY " + self._capability_text() + b"]")

    # -- authenticated (RFC 3501 section 6.3) -------------------------------------------------

    def _mailbox_arg(self, token: Token) -> bool:
        return _astring(token, "mailbox").upper() == "INBOX"

    def _select(self, cmd: _Command) -> None:
        if len(cmd.args) != 1:
            raise _Bad(f"{cmd.name} takes one mailbox name")
        self._close_mailbox()
        if not self._mailbox_arg(cmd.args[0]):
            self.state = ImapState.AUTHENTICATED
            self._tagged_raw(cmd.tag, R_NO_MAILBOX)
            return
        assert self.user is not None
        self._inbox = self.backend.inbox(self.user)
        self.read_only = cmd.name == "EXAMINE"
        snap = self._inbox.snapshot(claim_recent=not self.read_only)
        self._uidvalidity, self._uidnext = snap.uidvalidity, snap.uidnext
        self._view = [
            _View(
                uid=m.uid, flags=m.flags, size=m.size, internaldate=m.internaldate, recent=m.recent
            )
            for m in snap.messages
        ]
        self.state = ImapState.SELECTED
        flags = b"(" + " ".join(SYSTEM_FLAGS).encode() + b")"
        self._untagged(b"FLAGS " + flags)
        self._untagged(b"%d EXISTS" % len(self._view))
        self._untagged(b"%d RECENT" % sum(v.recent for v in self._view))
        unseen = next((i + 1 for i, v in enumerate(self._view) if "\\Seen" not in v.flags), 0)
        if unseen:
            self._untagged(b"OK [UNSEEN %d] first unseen message" % unseen)
        permanent = b"()" if self.read_only else flags
        self._untagged(b"OK [PERMANENTFLAGS " + permanent + b"] flags stored permanently")
        self._untagged(b"OK [UIDVALIDITY %d] uids valid" % self._uidvalidity)
        self._untagged(b"OK [UIDNEXT %d] predicted next uid" % self._uidnext)
        code = b"[READ-ONLY]" if self.read_only else b"[READ-WRITE]"
        self._ok(cmd, "", code)

    def _close_mailbox(self) -> None:
        self._inbox = None
        self._view = []

    def _create(self, cmd: _Command) -> None:
        self._tagged_raw(cmd.tag, R_CANNOT)

    def _subscribe(self, cmd: _Command) -> None:
        if len(cmd.args) != 1:
            raise _Bad(f"{cmd.name} takes one mailbox name")
        if self._mailbox_arg(cmd.args[0]):
            self._ok(cmd)
        else:
            self._tagged_raw(cmd.tag, R_NO_MAILBOX)

    def _list(self, cmd: _Command) -> None:
        if len(cmd.args) != 2:
            raise _Bad(f"{cmd.name} takes a reference and a mailbox pattern")
        reference = _astring(cmd.args[0], "reference")
        pattern = _astring(cmd.args[1], "pattern")
        if pattern == "" and cmd.name == "LIST":
            # RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter.
            self._untagged(b'LIST (\\Noselect) "/" ""')
        elif _list_match(reference + pattern, "INBOX"):
            self._untagged(cmd.name.encode() + b' (\\HasNoChildren) "/" INBOX')
        self._ok(cmd)

    def _namespace(self, cmd: _Command) -> None:
        self._untagged(b'NAMESPACE (("" "/")) NIL NIL')  # RFC 2342
        self._ok(cmd)

    def _status(self, cmd: _Command) -> None:
        if len(cmd.args) != 2 or not isinstance(cmd.args[1], list):
            raise _Bad("STATUS takes a mailbox name and a list of items")
        if not self._mailbox_arg(cmd.args[0]):
            self._tagged_raw(cmd.tag, R_NO_MAILBOX)
            return
        assert self.user is not None
        snap = self.backend.inbox(self.user).snapshot(claim_recent=False)
        values = {
            "MESSAGES": len(snap.messages),
            "RECENT": sum(m.recent for m in snap.messages),
            "UIDNEXT": snap.uidnext,
            "UIDVALIDITY": snap.uidvalidity,
            "UNSEEN": sum("\\Seen" not in m.flags for m in snap.messages),
        }
        items = []
        for item in cmd.args[1]:
            name = _astring(item, "status item").upper()
            if name not in values:
                raise _Bad(f"unknown status item {name}")
            items.append(f"{name} {values[name]}")
        self._untagged(b'STATUS "INBOX" (' + " ".join(items).encode() + b")")
        self._ok(cmd)

    def _append(self, cmd: _Command) -> None:
        args = list(cmd.args)
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise _Bad("APPEND takes a mailbox, optional flags and date, and a literal")
        if not self._mailbox_arg(args[0]):
            self._tagged_raw(cmd.tag, b"NO [TRYCREATE] no such mailbox (only INBOX is served)")
            return
        flags: frozenset[str] = frozenset()
        if isinstance(args[1], list):
            flags = _parse_flags(args[1])
        assert self.user is not None
        self.backend.inbox(self.user).append(args[-1], flags)
        if self.state is ImapState.SELECTED:
            self._sync(expunges=True)
        self._ok(cmd)

    def _idle(self, cmd: _Command) -> None:
        if cmd.args:
            raise _Bad("IDLE takes no arguments")
        self._pending = cmd
        self._idle_from = self.state
        self.state = ImapState.IDLE
        self._untagged_raw(R_CONTINUE_IDLE)
        if self._idle_from is ImapState.SELECTED:
            self._sync(expunges=True)

    def _idle_done(self, cmd: _Command, line: bytes) -> None:
        self.state = self._idle_from
        if line.strip().upper() != b"DONE":
            self._tagged_raw(cmd.tag, b"BAD expected DONE to end IDLE")
            return
        self._ok(cmd, "IDLE terminated")

    # -- selected (RFC 3501 section 6.4) --------------------------------------------------

    def _check(self, cmd: _Command) -> None:
        self._sync(expunges=True)
        self._ok(cmd)

    def _close(self, cmd: _Command) -> None:
        # RFC 3501 6.4.2: CLOSE expunges silently (unless read-only), UNSELECT does not.
        if cmd.name == "CLOSE" and not self.read_only:
            self._expunge_deleted(report=False)
        self._close_mailbox()
        self.state = ImapState.AUTHENTICATED
        self._ok(cmd)

    def _expunge(self, cmd: _Command) -> None:
        if self.read_only:
            self._tagged_raw(cmd.tag, R_READ_ONLY)
            return
        self._expunge_deleted(report=True)
        self._sync(expunges=True)
        self._ok(cmd)

    def _expunge_deleted(self, *, report: bool) -> None:
        assert self._inbox is not None
        self._sync(expunges=report)
        doomed = [i for i, v in enumerate(self._view) if "\\Deleted" in v.flags]
        self._inbox.expunge([self._view[i].uid for i in doomed])
        for i in reversed(doomed):  # descending: each EXPUNGE renumbers what follows
            del self._view[i]
            if report:
                self._untagged(b"%d EXPUNGE" % (i + 1))

    def _sync(self, *, expunges: bool) -> None:
        """Tell the client what changed in the mailbox since it last heard (RFC 3501 5.2)."""
        if self._inbox is None:
            return
        snap = self._inbox.snapshot(claim_recent=not self.read_only)
        current = {m.uid: m for m in snap.messages}
        if expunges:
            for i in range(len(self._view) - 1, -1, -1):
                if self._view[i].uid not in current:
                    del self._view[i]
                    self._untagged(b"%d EXPUNGE" % (i + 1))
        for i, view in enumerate(self._view):
            record = current.get(view.uid)
            if record is not None and record.flags != view.flags:
                view.flags = record.flags
                self._untagged(
                    b"%d FETCH (FLAGS %s)" % (i + 1, _flag_list(view.flags, view.recent))
                )
        top = self._view[-1].uid if self._view else 0
        fresh = [m for m in snap.messages if m.uid > top]
        if fresh:
            self._view.extend(
                _View(
                    uid=m.uid,
                    flags=m.flags,
                    size=m.size,
                    internaldate=m.internaldate,
                    recent=m.recent,
                )
                for m in fresh
            )
            self._untagged(b"%d EXISTS" % len(self._view))
            self._untagged(b"%d RECENT" % sum(v.recent for v in self._view))
        self._uidnext = max(self._uidnext, snap.uidnext)

    def _select_messages(self, set_text: Token, *, by_uid: bool) -> list[int]:
        """Indexes into the view for a sequence set or UID set."""
        if not isinstance(set_text, str):
            raise _Bad("sequence set must be an atom")
        if by_uid:
            largest = self._view[-1].uid if self._view else 0
            ranges = parse_sequence_set(set_text, largest)
            # RFC 3501 6.4.8: "n:*" always includes the highest UID in the mailbox.
            if self._view and any(
                part.endswith("*") or part.startswith("*") for part in set_text.split(",")
            ):
                ranges.append((largest, largest))
            return [i for i, v in enumerate(self._view) if _in_ranges(v.uid, ranges)]
        ranges = parse_sequence_set(set_text, len(self._view))
        if any(b > len(self._view) for _, b in ranges):
            raise _Bad("sequence number out of range")
        return [i for i in range(len(self._view)) if _in_ranges(i + 1, ranges)]

    def _fetch(self, cmd: _Command) -> None:
        by_uid = cmd.name.startswith("UID")
        if len(cmd.args) != 2:
            raise _Bad("FETCH takes a sequence set and data items")
        spec = cmd.args[1]
        if isinstance(spec, str) and spec.upper() in _MACROS:
            atts = [_parse_fetch_att(a) for a in _MACROS[spec.upper()]]
        elif isinstance(spec, list):
            if not spec:
                raise _Bad("empty fetch attribute list")
            atts = [_parse_fetch_att(a) for a in spec]
        else:
            atts = [_parse_fetch_att(spec)]
        if by_uid and not any(a.name == "UID" for a in atts):
            atts.insert(0, _FetchAtt(name="UID", label="UID"))
        indexes = self._select_messages(cmd.args[0], by_uid=by_uid)
        self._job = self._fetch_steps(cmd, atts, indexes)
        self._run_job()

    def _fetch_steps(
        self, cmd: _Command, atts: Sequence[_FetchAtt], indexes: Sequence[int]
    ) -> Iterator[None]:
        """Answer FETCH one message at a time, so output goes out in bounded batches."""
        by_uid = cmd.name.startswith("UID")
        gone = False
        for i in indexes:
            try:
                self._fetch_one(i, atts)
            except PortkitError:
                gone = True
            yield
        if by_uid:
            self._sync(expunges=True)
        if gone:
            self._tagged_raw(cmd.tag, R_EXPUNGEISSUED)
        else:
            self._ok(cmd)

    def _fetch_one(self, index: int, atts: Sequence[_FetchAtt]) -> None:
        assert self._inbox is not None
        view = self._view[index]
        raw: bytes | None = None
        parsed: email.message.Message | None = None

        def message() -> bytes:
            nonlocal raw
            if raw is None:
                assert self._inbox is not None
                raw = self._inbox.read(view.uid)
            return raw

        def tree() -> email.message.Message:
            nonlocal parsed
            if parsed is None:
                parsed = parse_message(message())
            return parsed

        items: list[bytes] = []
        set_seen = False
        for att in atts:
            if att.name == "FLAGS":
                continue  # added last, after a possible \Seen
            if att.name == "UID":
                items.append(b"UID %d" % view.uid)
            elif att.name == "RFC822.SIZE":
                items.append(b"RFC822.SIZE %d" % view.size)
            elif att.name == "INTERNALDATE":
                items.append(b"INTERNALDATE " + _internaldate(view.internaldate))
            elif att.name == "ENVELOPE":
                items.append(b"ENVELOPE " + envelope(tree()))
            elif att.name == "BODYSTRUCTURE":
                items.append(b"BODYSTRUCTURE " + bodystructure(tree()))
            elif att.name == "BODY":
                items.append(b"BODY " + bodystructure(tree(), extensible=False))
            else:
                data = _section_bytes(message(), att.section)
                if att.partial is not None:
                    start, length = att.partial
                    data = data[start : start + length]
                items.append(att.label.encode() + b" {%d}\r\n" % len(data) + data)
                if not att.peek and not self.read_only and "\\Seen" not in view.flags:
                    set_seen = True
        if set_seen:
            # RFC 3501 6.4.5: BODY[...] (not PEEK) sets \Seen, and FLAGS is then returned.
            view.flags = view.flags | {"\\Seen"}
            self._inbox.set_flags(view.uid, view.flags)
        if set_seen or any(a.name == "FLAGS" for a in atts):
            items.append(b"FLAGS " + _flag_list(view.flags, view.recent))
        self._out.append(Send(data=b"* %d FETCH (" % (index + 1) + b" ".join(items) + b")\r\n"))

    def _store(self, cmd: _Command) -> None:
        by_uid = cmd.name.startswith("UID")
        if len(cmd.args) != 3:
            raise _Bad("STORE takes a sequence set, an item name and flags")
        item = _astring(cmd.args[1], "store item").upper()
        mode, _, silent = item.partition(".")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS") or silent not in ("", "SILENT"):
            raise _Bad(f"bad store item {item}")
        raw_flags = cmd.args[2]
        flags = _parse_flags(raw_flags if isinstance(raw_flags, list) else [raw_flags])
        if self.read_only:
            self._tagged_raw(cmd.tag, R_READ_ONLY)
            return
        assert self._inbox is not None
        gone = False
        for i in self._select_messages(cmd.args[0], by_uid=by_uid):
            view = self._view[i]
            if mode == "FLAGS":
                new = flags
            elif mode == "+FLAGS":
                new = view.flags | flags
            else:
                new = view.flags - flags
            try:
                if new != view.flags:
                    self._inbox.set_flags(view.uid, new)
            except PortkitError:
                gone = True
                continue
            view.flags = new
            if not silent:
                uid = b"UID %d " % view.uid if by_uid else b""
                self._untagged(
                    b"%d FETCH (%sFLAGS %s)" % (i + 1, uid, _flag_list(new, view.recent))
                )
        if by_uid:
            self._sync(expunges=True)
        if gone:
            self._tagged_raw(cmd.tag, R_EXPUNGEISSUED)
        else:
            self._ok(cmd)

    def _copy(self, cmd: _Command) -> None:
        if len(cmd.args) != 2:
            raise _Bad("COPY takes a sequence set and a mailbox")
        indexes = self._select_messages(cmd.args[0], by_uid=cmd.name.startswith("UID"))
        if not self._mailbox_arg(cmd.args[1]):
            self._tagged_raw(cmd.tag, b"NO [TRYCREATE] no such mailbox (only INBOX is served)")
            return
        assert self._inbox is not None
        try:
            copies = [(self._inbox.read(self._view[i].uid), self._view[i].flags) for i in indexes]
        except PortkitError:
            self._tagged_raw(cmd.tag, R_EXPUNGEISSUED)
            return
        for data, flags in copies:
            self._inbox.append(data, flags)
        self._ok(cmd)

    def _search(self, cmd: _Command) -> None:
        by_uid = cmd.name.startswith("UID")
        args = list(cmd.args)
        if len(args) >= 2 and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            charset = _astring(args[1], "charset").upper()
            if charset not in ("US-ASCII", "UTF-8"):
                self._tagged_raw(cmd.tag, b"NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset")
                return
            args = args[2:]
        if not args:
            raise _Bad("SEARCH needs at least one key")
        tokens = iter(args)
        keys = [self._search_key(token, tokens) for token in tokens]
        assert self._inbox is not None
        found: list[int] = []
        for i, view in enumerate(self._view):
            ctx = _SearchContext(self, i, view)
            try:
                if all(k(ctx) for k in keys):
                    found.append(view.uid if by_uid else i + 1)
            except PortkitError:
                continue  # expunged meanwhile: cannot match
        self._untagged(b"SEARCH" + b"".join(b" %d" % n for n in found))
        if by_uid:
            self._sync(expunges=True)
        self._ok(cmd)

    def _search_key(self, token: Token, rest: Iterator[Token], depth: int = 0) -> _Predicate:
        """One search key (RFC 3501 section 6.4.4) as a predicate."""
        if depth > MAX_NESTING:  # NOT NOT NOT ... would otherwise recurse without bound
            raise _Bad(f"search keys nested more than {MAX_NESTING} deep")

        def arg() -> Token:
            try:
                return next(rest)
            except StopIteration:
                raise _Bad("search key is missing its argument") from None

        if isinstance(token, list):
            inner = iter(token)
            parts = [self._search_key(t, inner, depth + 1) for t in inner]
            return lambda c: all(p(c) for p in parts)
        if isinstance(token, bytes):
            raise _Bad("a search key must be an atom")
        key = token.upper()
        flag_keys = {
            "ANSWERED": ("\\Answered", True),
            "DELETED": ("\\Deleted", True),
            "DRAFT": ("\\Draft", True),
            "FLAGGED": ("\\Flagged", True),
            "SEEN": ("\\Seen", True),
            "UNANSWERED": ("\\Answered", False),
            "UNDELETED": ("\\Deleted", False),
            "UNDRAFT": ("\\Draft", False),
            "UNFLAGGED": ("\\Flagged", False),
            "UNSEEN": ("\\Seen", False),
        }
        if key in flag_keys:
            flag, present = flag_keys[key]
            return lambda c: (flag in c.view.flags) == present
        if key == "ALL":
            return lambda c: True
        if key == "NEW":
            return lambda c: c.view.recent and "\\Seen" not in c.view.flags
        if key == "OLD":
            return lambda c: not c.view.recent
        if key == "RECENT":
            return lambda c: c.view.recent
        if key in ("KEYWORD", "UNKEYWORD"):
            arg()  # keywords are not stored: no message has one
            return (lambda c: False) if key == "KEYWORD" else (lambda c: True)
        if key == "NOT":
            inner_key = self._search_key(arg(), rest, depth + 1)
            return lambda c: not inner_key(c)
        if key == "OR":
            left = self._search_key(arg(), rest, depth + 1)
            right = self._search_key(arg(), rest, depth + 1)
            return lambda c: left(c) or right(c)
        if key in ("LARGER", "SMALLER"):
            size_text = _astring(arg(), "size")
            if not size_text.isdigit():
                raise _Bad(f"bad size {size_text!r}")
            size = int(size_text)
            if key == "LARGER":
                return lambda c: c.view.size > size
            return lambda c: c.view.size < size
        if key == "UID":
            uid_set = _astring(arg(), "uid set")
            largest = self._view[-1].uid if self._view else 0
            uid_ranges = parse_sequence_set(uid_set, largest)
            return lambda c: _in_ranges(c.view.uid, uid_ranges)
        if key in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
            day = _parse_date(arg())
            sent = key.startswith("SENT")
            compare: Callable[[int], bool] = {
                "BEFORE": day.__gt__,
                "ON": day.__eq__,
                "SINCE": day.__le__,
            }[key.removeprefix("SENT")]
            return lambda c: compare(c.sent_day() if sent else c.internal_day())
        if key in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
            needle = _astring(arg(), key).lower()
            return lambda c: needle in c.header(key).lower()
        if key == "HEADER":
            name = _astring(arg(), "header name")
            needle = _astring(arg(), "header value").lower()
            return lambda c: c.has_header(name) and needle in c.header(name).lower()
        if key in ("BODY", "TEXT"):
            needle_bytes = _astring(arg(), key).lower().encode("utf-8")
            return lambda c: needle_bytes in c.text(whole=key == "TEXT").lower()
        if key[:1].isdigit() or key[:1] == "*":
            seq_ranges = parse_sequence_set(token, len(self._view))
            return lambda c: _in_ranges(c.index + 1, seq_ranges)
        raise _Bad(f"unknown search key {token}")


_Predicate = Callable[["_SearchContext"], bool]


class _SearchContext:
    """One message during SEARCH; reads and parses it only if a key needs its contents."""

    def __init__(self, session: ImapSession, index: int, view: _View) -> None:
        self.session = session
        self.index = index
        self.view = view
        self._raw: bytes | None = None
        self._msg: email.message.Message | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            assert self.session._inbox is not None
            self._raw = self.session._inbox.read(self.view.uid)
        return self._raw

    def msg(self) -> email.message.Message:
        if self._msg is None:
            self._msg = email.message_from_bytes(_split_header(self.raw())[0], policy=_POLICY)
        return self._msg

    def has_header(self, name: str) -> bool:
        return name in self.msg()

    def header(self, name: str) -> str:
        return " ".join(_unfold(str(v)) for v in self.msg().get_all(name, []))

    def text(self, *, whole: bool) -> bytes:
        return self.raw() if whole else _split_header(self.raw())[1]

    def internal_day(self) -> int:
        return int(self.view.internaldate // 86400)

    def sent_day(self) -> int:
        value = self.msg().get("Date")
        parsed = email.utils.parsedate_tz(str(value)) if value else None
        if parsed is None:
            return self.internal_day()
        return int(calendar.timegm(parsed[:6]) // 86400)  # the date as written, its own zone


def _parse_flags(tokens: Sequence[Token]) -> frozenset[str]:
    flags: set[str] = set()
    for token in tokens:
        if not isinstance(token, str):
            raise _Bad("flags must be atoms")
        known = _FLAG_LOOKUP.get(token.lower())
        if known is not None:
            flags.add(known)
        elif token.startswith("\\") and token.lower() != "\\recent":
            # \Recent cannot be stored (RFC 3501 2.3.2); other \ names are not flags at all.
            raise _Bad(f"unknown system flag {token}")
        # keywords are accepted but not stored (PERMANENTFLAGS lists no \*)
    return frozenset(flags)


def _valid_tag(tag: bytes) -> bool:
    # RFC 3501 section 9: tag = 1*<any ASTRING-CHAR except "+">
    return all(0x20 < c < 0x7F and c not in b'(){%*"\\+' for c in tag)


def _list_match(pattern: str, name: str) -> bool:
    """LIST wildcard match (RFC 3501 6.3.8): ``*`` anything, ``%`` anything but ``/``."""
    regex = "".join(
        ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern
    )
    if re.fullmatch(regex, name):
        return True
    return pattern.upper() == "INBOX" and name == "INBOX"


_NA = ImapState.NOT_AUTHENTICATED
_AU = ImapState.AUTHENTICATED
_SE = ImapState.SELECTED

_ANY = {
    "CAPABILITY": ImapSession._capability,
    "NOOP": ImapSession._noop,
    "LOGOUT": ImapSession._logout,
}
_NOT_AUTH = {
    "STARTTLS": ImapSession._starttls,
    "LOGIN": ImapSession._login,
    "AUTHENTICATE": ImapSession._authenticate,
}
_AUTH = {
    "SELECT": ImapSession._select,
    "EXAMINE": ImapSession._select,
    "CREATE": ImapSession._create,
    "DELETE": ImapSession._create,
    "RENAME": ImapSession._create,
    "SUBSCRIBE": ImapSession._subscribe,
    "UNSUBSCRIBE": ImapSession._subscribe,
    "LIST": ImapSession._list,
    "LSUB": ImapSession._list,
    "NAMESPACE": ImapSession._namespace,
    "STATUS": ImapSession._status,
    "APPEND": ImapSession._append,
    "IDLE": ImapSession._idle,
}
_SELECTED = {
    "CHECK": ImapSession._check,
    "CLOSE": ImapSession._close,
    "UNSELECT": ImapSession._close,  # RFC 3691
    "EXPUNGE": ImapSession._expunge,
    "SEARCH": ImapSession._search,
    "FETCH": ImapSession._fetch,
    "STORE": ImapSession._store,
    "COPY": ImapSession._copy,
    "UID SEARCH": ImapSession._search,
    "UID FETCH": ImapSession._fetch,
    "UID STORE": ImapSession._store,
    "UID COPY": ImapSession._copy,
}

#: Every legal (state, command) pair and its handler; anything else is answered BAD.
#: (AUTHENTICATING and IDLE take a continuation line, not a command; see ``_line``.)
TRANSITIONS: dict[tuple[ImapState, str], Handler] = {
    **{(s, c): h for s in (_NA, _AU, _SE) for c, h in _ANY.items()},
    **{(_NA, c): h for c, h in _NOT_AUTH.items()},
    **{(s, c): h for s in (_AU, _SE) for c, h in _AUTH.items()},
    **{(_SE, c): h for c, h in _SELECTED.items()},
}

#: Every command name the server knows (for exhaustive state/command tests).
COMMANDS = frozenset(name for _, name in TRANSITIONS)
