"""Line printer daemons (RFC 1179), via the short queue state of queue ``lp``.

§5.3: the command is octet 03, the queue name, optional job lists, LF; the answer is
text for a human and ends when the server closes. The text has no fixed format, so only
what the common daemons print is taken as LPD:

- BSD lpd (Debian's ``lpr``) refuses a host not in ``hosts.lpd`` with
  "<host>: lpd: Your host does not have line printer access";
- a queue it does not know: "<host>: lpd: lp: unknown printer" (or without the host);
- an empty queue: "no entries", a busy one: "lp is ready and printing" or the
  ``Rank   Owner   Job`` table heading;
- LPRng: "Printer: lp@host" (its status header).

BSD lpd names itself in its messages ("lpd: ..."), LPRng by its status header: those
name the product. The other answers are common to every daemon and name none.

The request is four bytes (03 "lp" LF), told apart from an echo by its first octet.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["LPD", "LPD_QUEUE_STATE"]

_FIRST_LINES = re.compile(
    rb"^(?:(?:[\w.-]+: )?(?P<bsd>lpd: )(?P<refusal>Your host does not have line printer access)"
    rb"|(?:[\w.-]+: (?=lpd: ))?(?P<bsd_unknown>lpd: )?\S+: unknown printer"
    rb"|no entries"
    rb"|\S+ is (?:ready|down|ready and printing)\b.*"
    rb"|Rank\s+Owner\s+Job\b.*"
    rb"|(?P<lprng>Printer: \S+@\S+.*))\r?$"
)


def _judge(data: bytes, final: bool) -> Verdict:
    end = data.find(b"\n")
    if end < 0:
        if len(data) > 200:
            return NoMatch(reason="first line too long")
        if data and not data[:1].isalnum():
            return NoMatch(reason="not an LPD answer")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    line = _FIRST_LINES.match(data[:end])
    if line is None:
        return NoMatch(reason="not an LPD answer")
    extra = data[:end].decode("ascii", "replace").strip()[:80]
    product = None
    if line["bsd"] or line["bsd_unknown"]:
        product = "BSD lpd"
    elif line["lprng"]:
        product = "LPRng"
    # One line decides; the rest of a queue listing changes nothing.
    return Match(
        service="printer", product=product, extra=extra, confidence=9 if line["refusal"] else 8
    )


LPD = Matcher(name="lpd", judge=_judge, max_bytes=4096)

LPD_QUEUE_STATE = Probe(
    name="lpd-queue-state",
    build=lambda host: b"\x03lp\n",
    matchers=("lpd",),
    services=("printer",),
)
