"""Syslog over RELP, the Reliable Event Logging Protocol (rsyslog's imrelp/librelp).

Plain syslog never answers: RFC 5426 (UDP) and RFC 6587 (TCP) carry messages one way,
so a syslog port can only be seen open, never named. RELP, which rsyslog offers for
syslog that must not be lost, answers. Its frame (rsyslog's RELP specification) is
``TXNR SP COMMAND SP DATALEN [SP DATA] LF``; a session starts with the client's
``open`` offering ``relp_version``, ``relp_software`` and ``commands``, and the server
answers ``rsp`` to the same transaction number with a status code and its own offers:
``1 rsp 93 200 OK LF relp_version=0 LF relp_software=librelp,1.11.0,... LF commands=syslog``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["RELP", "RELP_OPEN"]

_OFFERS = b"relp_version=0\nrelp_software=portkit\ncommands=syslog"
_HEADER = re.compile(rb"^1 rsp (\d{1,6})( |\n)")
_SOFTWARE = re.compile(rb"(?:^|\n)relp_software=([^,\n]{1,60})(?:,([^,\n]{1,30}))?")
_MAX_HEADER = len(b"1 rsp 999999 ")


def _judge(data: bytes, final: bool) -> Verdict:
    prefix = b"1 rsp "
    if data[: len(prefix)] != prefix[: len(data)]:
        return NoMatch(reason="not a RELP response to transaction 1")
    header = _HEADER.match(data)
    if header is None:
        digits = data[len(prefix) :]
        if len(data) >= _MAX_HEADER or (digits and not digits.isdigit()):
            return NoMatch(reason="not a RELP frame header")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    length = int(header.group(1))
    start = header.end()
    if header.group(2) == b"\n":
        start -= 1  # no data: the trailer follows the length
        if length:
            return NoMatch(reason="RELP data length without data")
    if len(data) < start + length + 1:
        return NoMatch(reason="incomplete") if final else NEED_MORE
    body, trailer = data[start : start + length], data[start + length : start + length + 1]
    if trailer != b"\n" or not re.match(rb"^\d{3}(?: |\n|$)", body):
        return NoMatch(reason="not a RELP response")
    software = _SOFTWARE.search(body)
    product = version = None
    if software is not None:
        product = software.group(1).decode("ascii", "replace")
        version = software.group(2).decode("ascii", "replace") if software.group(2) else None
    status = body.split(b"\n", 1)[0].decode("ascii", "replace")
    return Match(service="relp", product=product, version=version, extra=f"syslog; {status}")


RELP = Matcher(name="relp", judge=_judge, max_bytes=4096)

RELP_OPEN = Probe(
    name="relp-open",
    build=lambda host: b"1 open %d %b\n" % (len(_OFFERS), _OFFERS),
    matchers=("relp",),
    services=("relp", "syslog-relp"),
)
