"""The ways into TLS on a plain connection: SMTP, IMAP, POP3 and FTP.

A mail or file server on its plain port may offer to continue inside TLS; its
certificate is then only seen by a client that asks. Each :class:`Upgrade` is the
client's side of that dialogue as steps: what to send (nothing for the greeting) and a
judge of the reply, which says *go on* (True), *refused* (False) or *need more* (None).
After the last step the next bytes on the connection are a TLS handshake.

- SMTP, RFC 3207 §4: ``EHLO`` first (RFC 5321 §4.1.1.1); only if its reply lists the
  ``STARTTLS`` keyword, ``STARTTLS``, answered 220.
- IMAP, RFC 9051 §6.2.1 (and RFC 3501 §6.2.1): tagged ``STARTTLS``, answered tagged OK.
- POP3, RFC 2595 §4: ``STLS``, answered ``+OK``.
- FTP, RFC 4217 §4 (RFC 2228 ``AUTH``): ``AUTH TLS``, answered 234.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_REPLY_BYTES", "UPGRADES", "Step", "Upgrade"]

MAX_REPLY_BYTES = 4096
"""A reply longer than this is not one we are waiting for: the upgrade is refused."""

Judge = Callable[[bytes], bool | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """Send ``send`` (nothing: wait for the greeting), then judge the reply."""

    send: bytes
    judge: Judge


@dataclass(frozen=True, slots=True, kw_only=True)
class Upgrade:
    """One protocol's way into TLS, step by step."""

    service: str
    steps: tuple[Step, ...]


# RFC 5321 §4.2.1 and RFC 959 §4.2: a reply's last line is the code and a space (or the
# code alone); earlier lines of a multi-line reply have a hyphen after the code.
_LAST_LINE = re.compile(rb"(?:^|\n)(\d{3})(?: [^\n]*)?\r?\n\Z")


def _code(want: int, *, keyword: bytes = b"") -> Judge:
    """A judge of a complete reply with code ``want`` (listing ``keyword``, if given)."""
    listed = re.compile(rb"(?im)^\d{3}[- ]" + re.escape(keyword) + rb"\s*$") if keyword else None

    def judge(data: bytes) -> bool | None:
        if len(data) > MAX_REPLY_BYTES:
            return False
        found = _LAST_LINE.search(data)
        if found is None:
            return None
        return int(found.group(1)) == want and (listed is None or bool(listed.search(data)))

    return judge


def _line(*ok: bytes, skip: bytes = b"") -> Judge:
    """A judge of line replies: the first complete line (not starting ``skip``) decides.

    It goes on when that line starts with one of ``ok`` (case-insensitive); any other
    line (``-ERR``, ``NO``, ``BAD``, ``* BYE``) is a refusal.
    """
    wanted = tuple(word.upper() for word in ok)

    def judge(data: bytes) -> bool | None:
        if len(data) > MAX_REPLY_BYTES:
            return False
        for line in data.split(b"\n")[:-1]:  # complete lines only
            if skip and line.startswith(skip):
                continue  # IMAP: untagged lines before the tagged answer
            return line.upper().startswith(wanted)
        return None

    return judge


_IMAP_TAG = b"pk1"

UPGRADES: dict[str, Upgrade] = {
    "smtp": Upgrade(
        service="smtp",
        steps=(
            Step(send=b"", judge=_code(220)),
            Step(send=b"EHLO portkit.invalid\r\n", judge=_code(250, keyword=b"STARTTLS")),
            Step(send=b"STARTTLS\r\n", judge=_code(220)),
        ),
    ),
    "imap": Upgrade(
        service="imap",
        steps=(
            Step(send=b"", judge=_line(b"* OK", b"* PREAUTH")),
            Step(send=_IMAP_TAG + b" STARTTLS\r\n", judge=_line(_IMAP_TAG + b" OK", skip=b"* ")),
        ),
    ),
    "pop3": Upgrade(
        service="pop3",
        steps=(
            Step(send=b"", judge=_line(b"+OK")),
            Step(send=b"STLS\r\n", judge=_line(b"+OK")),
        ),
    ),
    "ftp": Upgrade(
        service="ftp",
        steps=(
            Step(send=b"", judge=_code(220)),
            Step(send=b"AUTH TLS\r\n", judge=_code(234)),
        ),
    ),
}
