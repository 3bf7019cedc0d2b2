"""What the server says about messages (RFC 3501 section 7.4.2): FETCH items rendered.

BODYSTRUCTURE, ENVELOPE, section bodies (``BODY[1.2.HEADER]``) and the FETCH attribute
names that ask for them. Messages are parsed with the standard library's :mod:`email`
package; only the RFC 5322 header/body split is done here.
"""

from __future__ import annotations

import email
import email.generator
import email.message
import email.policy
import email.utils
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from portkit.proto.sessions.imap._grammar import MONTHS, SYSTEM_FLAGS, BadCommand, Token

__all__ = [
    "MACROS",
    "MAX_MIME_DEPTH",
    "POLICY",
    "FetchAtt",
    "bodystructure",
    "envelope",
    "flag_list",
    "internaldate",
    "parse_fetch_att",
    "parse_fetch_items",
    "parse_message",
    "quote",
    "section_bytes",
    "split_header",
    "unfold",
]

#: MIME parts nested deeper than this are described as one flat text part (dovecot has the
#: same kind of bound): a hostile message cannot make BODYSTRUCTURE recurse without end.
MAX_MIME_DEPTH = 100


def quote(value: str | bytes | None) -> bytes:
    """An IMAP string: NIL, a quoted string, or a literal when quoting cannot carry it."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) < 1024 and all(0x20 <= b < 0x7F for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def flag_list(flags: frozenset[str], recent: bool = False) -> bytes:
    items = [f for f in SYSTEM_FLAGS if f in flags]
    if recent:
        items.append("\\Recent")
    return b"(" + " ".join(items).encode("ascii") + b")"


def internaldate(ts: float) -> bytes:
    t = time.gmtime(ts)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


POLICY = email.policy.compat32


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
    return email.message_from_bytes(raw, _class=_BoundedMessage, policy=POLICY)


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (RFC 5322 section 2.1); the header keeps its CRLFCRLF."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos >= 0:
            return raw[: pos + len(sep)], raw[pos + len(sep) :]
    return raw, b""


def unfold(value: str) -> str:
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
        buf, mangle_from_=False, policy=POLICY.clone(linesep="\r\n")
    )
    gen.flatten(part)
    data = buf.getvalue()
    return split_header(data)[1] if body_only else data


def _nstring_header(msg: email.message.Message, name: str) -> bytes:
    value = msg.get(name)
    return quote(unfold(str(value)) if value is not None else None)


def _addresses(msg: email.message.Message, name: str) -> bytes:
    values = msg.get_all(name)
    if not values:
        return b"NIL"
    out = []
    for display, addr in email.utils.getaddresses([unfold(str(v)) for v in values]):
        if not addr and not display:
            continue
        mailbox, at, host = addr.rpartition("@")
        if not at:
            mailbox, host = addr, ""
        out.append(
            b"("
            + quote(display or None)
            + b" NIL "
            + quote(mailbox)
            + b" "
            + quote(host or None)
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
    return b"(" + b" ".join(quote(k.upper()) + b" " + quote(v) for k, v in pairs) + b")"


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
        out = children + b" " + quote(subtype.upper())
        if extensible:
            out += b" " + _params(part, "content-type") + b" " + _disposition(part) + b" NIL NIL"
        return b"(" + out + b")"
    body = _payload_bytes(part)
    fields = [
        quote(maintype.upper()),
        quote(subtype.upper()),
        _params(part, "content-type"),
        _nstring_header(part, "Content-ID"),
        _nstring_header(part, "Content-Description"),
        quote(str(part.get("Content-Transfer-Encoding", "7BIT")).strip().upper()),
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
    return b"(" + quote(value.upper()) + b" " + _params(part, "content-disposition") + b")"


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
class FetchAtt:
    name: str  # FLAGS, UID, RFC822.SIZE, INTERNALDATE, ENVELOPE, BODYSTRUCTURE, BODY, SECTION
    section: str = ""  # e.g. "", "HEADER", "1.2.TEXT", "HEADER.FIELDS (FROM TO)"
    peek: bool = False
    partial: tuple[int, int] | None = None
    label: str = ""  # how the response names it, e.g. "BODY[HEADER]<0>" or "RFC822"


_SECTION_RE = re.compile(
    r"^(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<(\d{1,10})\.(\d{1,10})>)?$", re.IGNORECASE
)
_SIMPLE_ATTS = {"FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE", "BODY"}
MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


def parse_fetch_att(token: Token) -> FetchAtt:
    if not isinstance(token, str):
        raise BadCommand("fetch attribute must be an atom")
    upper = token.upper()
    if upper in _SIMPLE_ATTS:
        return FetchAtt(name=upper, label=upper)
    if upper == "RFC822":
        return FetchAtt(name="SECTION", section="", label="RFC822")
    if upper == "RFC822.HEADER":
        return FetchAtt(name="SECTION", section="HEADER", peek=True, label="RFC822.HEADER")
    if upper == "RFC822.TEXT":
        return FetchAtt(name="SECTION", section="TEXT", label="RFC822.TEXT")
    m = _SECTION_RE.match(token)
    if not m:
        raise BadCommand(f"unknown fetch attribute {token!r}")
    section = " ".join(m.group(2).split()).upper()
    _check_section(section)
    partial = (int(m.group(3)), int(m.group(4))) if m.group(3) is not None else None
    label = f"BODY[{section}]" + (f"<{partial[0]}>" if partial else "")
    return FetchAtt(
        name="SECTION",
        section=section,
        peek=m.group(1).upper() == "BODY.PEEK",
        partial=partial,
        label=label,
    )


def parse_fetch_items(spec: Token, *, by_uid: bool) -> list[FetchAtt]:
    """FETCH's data items (RFC 3501 6.4.5): a macro, one attribute or a list of them.

    UID FETCH always reports the UID (RFC 3501 6.4.8), asked for or not.
    """
    if isinstance(spec, str) and spec.upper() in MACROS:
        atts = [parse_fetch_att(a) for a in MACROS[spec.upper()]]
    elif isinstance(spec, list):
        if not spec:
            raise BadCommand("empty fetch attribute list")
        atts = [parse_fetch_att(a) for a in spec]
    else:
        atts = [parse_fetch_att(spec)]
    if by_uid and not any(a.name == "UID" for a in atts):
        atts.insert(0, FetchAtt(name="UID", label="UID"))
    return atts


_SECTION_TEXT_RE = re.compile(
    r"^(?:(\d{1,5}(?:\.\d{1,5})*)(?:\.(?=[A-Z])|$))?"
    r"(HEADER|TEXT|MIME|HEADER\.FIELDS \([^()]*\)|HEADER\.FIELDS\.NOT \([^()]*\))?$"
)


def _check_section(section: str) -> None:
    m = _SECTION_TEXT_RE.match(section)
    if not m or (m.group(2) == "MIME" and not m.group(1)):
        raise BadCommand(f"bad section {section!r}")


def section_bytes(raw: bytes, section: str) -> bytes:
    """The octets a BODY[section] names (RFC 3501 section 6.4.5)."""
    if not section:
        return raw  # BODY[]: the whole message, the commonest FETCH, with nothing to split
    m = _SECTION_TEXT_RE.match(section)
    assert m is not None
    numbers = [int(n) for n in m.group(1).split(".")] if m.group(1) else []
    spec = m.group(2) or ""
    if not numbers:
        header, body = split_header(raw)
        target_header, target_body, target_all = header, body, raw
    else:
        msg = parse_message(raw)
        try:
            part = _subpart(msg, numbers)
        except LookupError:
            return b""
        if spec == "MIME":
            return split_header(_serialize(part))[0]
        if spec in ("", "MIME"):
            return _payload_bytes(part)
        # HEADER/TEXT of a part apply to an encapsulated message/rfc822.
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            assert isinstance(inner, email.message.Message)
            part = inner
        target_all = _serialize(part)
        target_header, target_body = split_header(target_all)
    if spec == "":
        return target_all
    if spec == "HEADER":
        return target_header
    if spec == "TEXT":
        return target_body
    names = {n.lower() for n in spec[spec.index("(") + 1 : -1].split()}
    return _header_fields(target_header, names, keep=not spec.startswith("HEADER.FIELDS.NOT"))
