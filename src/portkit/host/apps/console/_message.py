"""One message taken apart for display: headers, text, HTML, attachments.

Parsing uses the standard library's :mod:`email` package (RFC 5322 and MIME, RFC 2045-2049)
with its modern policy; a message it cannot make sense of (hostile or broken MIME) is still
shown, as its raw source, never as an error page. Nothing here renders HTML: the HTML part
is handed, as bytes, to a sandboxed frame with a Content-Security-Policy (see ``_web``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.parser
import email.policy
from email.message import EmailMessage, Message
from pathlib import Path

__all__ = ["Attachment", "Parsed", "parse_message"]

#: The raw source shown inline on a message page; the rest is behind "download raw".
RAW_PREVIEW = 256 * 1024
#: Parts of a message walked at most (a hostile message can nest thousands).
MAX_PARTS = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    index: int  # position in the message's walk order: the download URL names it
    filename: str
    content_type: str
    size: int


@dataclasses.dataclass(slots=True)
class Parsed:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]
    raw_preview: str
    raw_truncated: bool
    problem: str | None = None  # why the message could not be taken apart, if so


def _parse(raw: bytes) -> EmailMessage:
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def _content(part: Message) -> str | None:
    """A text part decoded, with line ends as ``\n`` (mail stores them as CRLF)."""
    text = _decoded(part)
    return text.replace("\r\n", "\n") if text is not None else None


def _decoded(part: Message) -> str | None:
    if not isinstance(part, EmailMessage):
        return None
    with contextlib.suppress(LookupError, ValueError, UnicodeError, AttributeError, KeyError):
        value = part.get_content()
        return value if isinstance(value, str) else None
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


def _parts(msg: EmailMessage) -> list[Message]:
    parts: list[Message] = []
    for part in msg.walk():
        parts.append(part)
        if len(parts) >= MAX_PARTS:
            break
    return parts


def parse_message(path: Path) -> Parsed:
    """Take the message in ``path`` apart (never raises for what is inside the file)."""
    raw = path.read_bytes()
    preview = raw[:RAW_PREVIEW].decode("utf-8", "replace")
    parsed = Parsed(
        headers=[],
        text=None,
        html=None,
        attachments=[],
        raw_preview=preview,
        raw_truncated=len(raw) > RAW_PREVIEW,
    )
    try:
        msg = _parse(raw)
        for name, value in msg.raw_items():
            parsed.headers.append((name, _header_value(value)))
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        parsed.text = _content(text_part) if text_part is not None else None
        parsed.html = _content(html_part) if html_part is not None else None
        for index, part in enumerate(_parts(msg)):
            if part.is_multipart() or part is text_part or part is html_part:
                continue
            disposition = part.get_content_disposition()
            if disposition is None and part.get_content_maintype() in ("text", "multipart"):
                continue
            payload = part.get_payload(decode=True)
            parsed.attachments.append(
                Attachment(
                    index=index,
                    filename=_safe_filename(part.get_filename()) or f"part-{index}",
                    content_type=part.get_content_type(),
                    size=len(payload) if isinstance(payload, bytes) else 0,
                )
            )
    except Exception as exc:  # any parser failure: show the raw source instead
        parsed.problem = f"this message could not be taken apart: {type(exc).__name__}: {exc}"
    return parsed


def _header_value(value: object) -> str:
    text = str(value)
    with contextlib.suppress(Exception):
        text = str(email.policy.default.header_factory("x-any", text))
    return " ".join(text.split())


def _safe_filename(name: str | None) -> str:
    """A file name fit for a download header: no path, no control characters."""
    if not name:
        return ""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable() and c not in '"')[:200].strip(". ")


def attachment_bytes(path: Path, index: int) -> tuple[str, bytes] | None:
    """``(filename, bytes)`` of the part at walk position ``index``, or None."""
    msg = _parse(path.read_bytes())
    parts = _parts(msg)
    if not 0 <= index < len(parts) or parts[index].is_multipart():
        return None
    part = parts[index]
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    return _safe_filename(part.get_filename()) or f"part-{index}", payload
