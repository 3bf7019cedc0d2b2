"""FTP servers by their greeting (RFC 959 §4.2, §5.4: ``220`` service ready).

SMTP greets with ``220`` too, so a bare ``220 ready`` is not enough: the greeting must
say FTP or name a known FTP server, or the answer to ``SYST`` (RFC 959 §4.1.3, reply 215)
must settle it.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict
from portkit.proto.mail import greeting_replies

__all__ = ["FTP", "FTP_SYST"]

MAX_LINE = 1024

_PRODUCTS = [
    (re.compile(r"\(vsFTPd ([\w.]+)\)"), "vsftpd", 1),
    (re.compile(r"ProFTPD(?: ([\w.]+))?"), "ProFTPD", 1),
    (re.compile(r"Pure-FTPd"), "Pure-FTPd", None),
    (re.compile(r"FileZilla Server(?: version)? ?([\w.]+)?"), "FileZilla ftpd", 1),
    (re.compile(r"Microsoft FTP Service"), "Microsoft ftpd", None),
    (re.compile(r"pyftpdlib ([\w.]+)"), "pyftpdlib", 1),
]

_FTP_WORDS = re.compile(r"\bftp|FTP\b|ftpd", re.IGNORECASE)


def _judge(data: bytes, final: bool) -> Verdict:
    replies = greeting_replies(
        data, final, codes=[b"220", b"120", b"421"], not_reply="not an FTP reply"
    )
    if not isinstance(replies, list):
        return replies
    text = " ".join(replies[0][1])
    # Only the reply right after the greeting (the answer to SYST) counts.
    syst = replies[1] if len(replies) > 1 and replies[1][0] == 215 else None
    if not _FTP_WORDS.search(text) and not any(p.search(text) for p, _, _ in _PRODUCTS):
        if syst is not None:
            return Match(service="ftp", extra=f"system {' '.join(syst[1])}", confidence=8)
        if len(replies) > 1 or final:
            return NoMatch(reason="a 220 greeting that does not say FTP")
        return NEED_MORE
    for pattern, name, group in _PRODUCTS:
        m = pattern.search(text)
        if m:
            return Match(service="ftp", product=name, version=m.group(group) if group else None)
    return Match(service="ftp")


FTP = Matcher(name="ftp", judge=_judge, max_bytes=MAX_LINE * 20)

FTP_SYST = Probe(
    name="ftp-syst",
    build=lambda host: b"SYST\r\n",
    matchers=("ftp", "smtp"),
    services=("ftp", "ftps"),
)
