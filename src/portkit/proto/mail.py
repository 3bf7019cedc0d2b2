"""Mail servers by their greetings: SMTP, POP3 and IMAP.

All three speak first. Over implicit TLS the same greetings name smtps (RFC 8314), pop3s
and imaps; the ladder adds the "s" when it found the greeting inside TLS.

- SMTP, RFC 5321 §4.2 and §3.1: ``220 domain text`` (``220-`` continues), 554 refuses.
- POP3, RFC 1939 §4: ``+OK text`` (or ``-ERR``).
- IMAP, RFC 9051 §7.1 (RFC 3501 §7.1): ``* OK``, ``* PREAUTH`` or ``* BYE``.
"""

from __future__ import annotations

import re

from portkit.proto._match import (
    NEED_MORE,
    Match,
    Matcher,
    NeedMore,
    NoMatch,
    Probe,
    Verdict,
    expect_prefix,
    first_line,
)

__all__ = ["IMAP", "POP3", "SMTP", "SMTP_EHLO"]

MAX_LINE = 1024
MAX_GREETING_LINES = 20

_REPLY = re.compile(rb"^(\d{3})([ -])(.*)$")


def smtp_replies(data: bytes, final: bool) -> list[tuple[int, list[str]]] | None:
    """Split ``data`` into complete SMTP-style replies ``(code, lines)``.

    ``None`` if the very first line is not a reply; after that, parsing stops at the first
    line that is not part of a reply, so what follows a complete greeting can never
    change how the greeting itself is judged.
    """
    replies: list[tuple[int, list[str]]] = []
    lines: list[str] = []
    code: int | None = None
    for raw in data.split(b"\n")[:-1]:
        m = _REPLY.match(raw.rstrip(b"\r"))
        if m is None or len(raw) > MAX_LINE:
            return replies if replies else None
        this = int(m.group(1))
        if code is not None and this != code:
            return replies if replies else None
        code = this
        lines.append(m.group(3).decode("latin-1"))
        if m.group(2) == b" ":
            replies.append((this, lines))
            lines, code = [], None
    return replies


def greeting_replies(
    data: bytes, final: bool, *, codes: list[bytes], not_reply: str
) -> list[tuple[int, list[str]]] | NoMatch | NeedMore:
    """The replies of a server that greets with one of ``codes`` (SMTP, FTP), at least one.

    Until the greeting is complete, the verdict so far: :data:`NEED_MORE`, or
    :class:`NoMatch` for another first line (``not_reply`` is then the reason) or a
    greeting longer than four lines' worth.
    """
    early = expect_prefix(data, codes)
    if early is not None:
        assert not isinstance(early, Match)  # a reply code alone never matches
        return early
    replies = smtp_replies(data, final)
    if replies is None:
        return NoMatch(reason=not_reply)
    if not replies:
        return NoMatch(reason="incomplete greeting") if len(data) > MAX_LINE * 4 else NEED_MORE
    return replies


_SMTP_PRODUCTS = [
    (re.compile(r"\bESMTP Postfix\b|\bPostfix\b"), "Postfix smtpd", None),
    (re.compile(r"\bExim ([\d.]+)"), "Exim smtpd", 1),
    (re.compile(r"\bSendmail ([\w.+/-]+)"), "Sendmail", 1),
    (re.compile(r"\bOpenSMTPD\b"), "OpenSMTPD", None),
    (re.compile(r"Microsoft ESMTP MAIL Service"), "Microsoft ESMTP", None),
    (re.compile(r"\bPython SMTP ([\d.]+)"), "aiosmtpd", 1),
    (re.compile(r"\bportkit ESMTP\b"), "portkit smtpd", None),
    (re.compile(r"\bMailEnable\b"), "MailEnable smtpd", None),
    (re.compile(r"\bhMailServer\b"), "hMailServer smtpd", None),
    (re.compile(r"\bHaraka\b"), "Haraka", None),
]

# Words in a 220 line that say SMTP rather than FTP (both greet with 220).
_SMTP_WORDS = re.compile(r"\b(E?SMTP|mail|MTA|Postfix|Exim|Sendmail)\b", re.IGNORECASE)
_EHLO_KEYWORDS = {
    "PIPELINING",
    "SIZE",
    "8BITMIME",
    "STARTTLS",
    "AUTH",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
    "VRFY",
    "ETRN",
    "HELP",
    "BINARYMIME",
}


def _judge_smtp(data: bytes, final: bool) -> Verdict:
    replies = greeting_replies(
        data, final, codes=[b"220", b"421", b"554"], not_reply="not an SMTP reply"
    )
    if not isinstance(replies, list):
        return replies
    code, lines = replies[0]
    text = " ".join(lines)
    # Only the reply right after the greeting (the answer to our EHLO) is looked at, so
    # what comes later cannot change the verdict.
    ehlo = replies[1] if len(replies) > 1 and replies[1][0] == 250 else None
    ehlo_ok = ehlo is not None and any(
        line.split(" ")[0].upper() in _EHLO_KEYWORDS for line in ehlo[1][1:]
    )
    if not (_SMTP_WORDS.search(text) or ehlo_ok):
        if len(replies) > 1 or final:
            return NoMatch(reason="a 220 greeting that does not say SMTP")
        return NEED_MORE  # an answer to EHLO may still settle it
    product = version = None
    for pattern, name, group in _SMTP_PRODUCTS:
        m = pattern.search(text)
        if m:
            product, version = name, (m.group(group) if group else None)
            break
    extra = None
    if ehlo is not None and any(line.upper().startswith("STARTTLS") for line in ehlo[1]):
        extra = "STARTTLS offered"
    if code != 220:
        extra = f"refuses with {code}"
    return Match(service="smtp", product=product, version=version, extra=extra)


SMTP = Matcher(name="smtp", judge=_judge_smtp, max_bytes=MAX_LINE * MAX_GREETING_LINES)

SMTP_EHLO = Probe(
    name="smtp-ehlo",
    build=lambda host: b"EHLO portkit.invalid\r\n",
    matchers=("smtp", "ftp"),
    services=("smtp", "submission", "smtps", "submissions", "lmtp"),
)

_POP3_PRODUCTS = [
    (re.compile(r"Dovecot"), "Dovecot pop3d"),
    (re.compile(r"Courier"), "Courier pop3d"),
    (re.compile(r"Cyrus"), "Cyrus pop3d"),
    (re.compile(r"Qpopper|QPOP", re.IGNORECASE), "Qpopper"),
    (re.compile(r"Microsoft Exchange"), "Microsoft Exchange pop3d"),
    (re.compile(r"^\+OK portkit POP3 server"), "portkit pop3d"),
]


def _judge_pop3(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"+OK", b"-ERR"])
    if early is not None:
        return early
    line = first_line(data, limit=MAX_LINE)
    if line is None:
        return NEED_MORE
    if len(line) > 3 and line[3:4] not in (b" ", b"") and not line.startswith(b"-ERR"):
        return NoMatch(reason="not a POP3 status")
    text = line.decode("latin-1")
    product = next((name for pattern, name in _POP3_PRODUCTS if pattern.search(text)), None)
    if line.startswith(b"-ERR"):
        return Match(service="pop3", product=product, extra="refuses", confidence=8)
    return Match(service="pop3", product=product)


POP3 = Matcher(name="pop3", judge=_judge_pop3, max_bytes=MAX_LINE)

_IMAP_PRODUCTS = [
    (re.compile(r"Dovecot"), "Dovecot imapd", None),
    (re.compile(r"Cyrus IMAP v?([\w.-]+)"), "Cyrus imapd", 1),
    (re.compile(r"Courier-IMAP"), "Courier imapd", None),
    (re.compile(r"Microsoft Exchange"), "Microsoft Exchange imapd", None),
    (re.compile(r"UW IMAP|IMAP4rev1 (\d{4}\S*)"), "UW imapd", None),
    (re.compile(r"\] portkit IMAP4rev1 server"), "portkit imapd", None),
]


def _judge_imap(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"* OK", b"* PREAUTH", b"* BYE"])
    if early is not None:
        return early
    line = first_line(data, limit=MAX_LINE * 4)
    if line is None:
        return NEED_MORE
    text = line.decode("latin-1")
    product = version = None
    for pattern, name, group in _IMAP_PRODUCTS:
        m = pattern.search(text)
        if m:
            product, version = name, (m.group(group) if group else None)
            break
    extra = "preauthenticated" if text.startswith("* PREAUTH") else None
    if text.startswith("* BYE"):
        extra = "refuses"
    return Match(service="imap", product=product, version=version, extra=extra)


IMAP = Matcher(name="imap", judge=_judge_imap, max_bytes=MAX_LINE * 4)
