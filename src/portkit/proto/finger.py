"""Finger servers (RFC 1288), via the query for the list of users.

§2.3: a query is a line; one without a user name asks for everyone logged in, ``/W``
(the verbose switch) asks for the long form: we send ``/W`` CRLF, four bytes, which an
echo of them can be told apart from.
§2.5: the answer is text for a human, then the server closes. There is no fixed format,
so only the forms the common servers print are taken as finger: BSD/netkit fingerd's
"No one logged on." and the ``Login  Name  Tty`` table headings of its long and short
forms.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["FINGER", "FINGER_LIST"]

MAX_REPLY = 8192

_FIRST_LINES = re.compile(
    rb"^(?:No one logged on\.?"
    rb"|Login\s+Name\s+Tty\b.*"
    rb"|Login: \S+\s+Name: .*"
    rb"|Login name: \S+\s+In real life: .*)\r?$"
)


def _judge(data: bytes, final: bool) -> Verdict:
    end = data.find(b"\n")
    if end < 0:
        if len(data) > 200:
            return NoMatch(reason="first line too long")
        if data and not data[:1].isalpha():
            return NoMatch(reason="not a finger answer")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    if not _FIRST_LINES.match(data[:end]):
        return NoMatch(reason="not a finger answer")
    if not final:
        return NEED_MORE  # the answer ends when the server closes (§2.5)
    return Match(service="finger", extra=data[:end].decode("ascii", "replace").strip()[:60])


FINGER = Matcher(name="finger", judge=_judge, max_bytes=MAX_REPLY)

FINGER_LIST = Probe(
    name="finger-list",
    build=lambda host: b"/W\r\n",
    matchers=("finger",),
    services=("finger",),
)
