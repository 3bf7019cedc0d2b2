"""Raw network printing (port 9100, "JetDirect"), via a PJL identity query.

Raw printing has no protocol of its own: what is sent is printed. HP's Printer Job
Language (PJL Technical Reference Manual, "Universal Exit Language" and "INFO") lets a
job ask the printer instead: the Universal Exit Language ``ESC %-12345X`` starts a PJL
job, ``@PJL INFO ID`` asks for the printer's model, and a second UEL ends the job, so
nothing is printed. The printer answers on the same connection with the command echoed
as the first line, the model (usually in double quotes) on the next, and a form feed.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["JETDIRECT", "PJL_INFO_ID"]

_UEL = b"\x1b%-12345X"
_ECHO = b"@PJL INFO ID"
_ANSWER = re.compile(rb'^@PJL INFO ID\r?\n"?([^"\r\n\x0c]{1,120})"?\r?\n')


def _judge(data: bytes, final: bool) -> Verdict:
    head = data[: len(_ECHO)]
    if not _ECHO.startswith(head):
        return NoMatch(reason="not a PJL answer")
    found = _ANSWER.match(data)
    if found is None:
        if data.count(b"\n") >= 2 or len(data) > 256:
            return NoMatch(reason="not a PJL INFO ID answer")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    model = found.group(1).decode("latin-1").strip()
    return Match(service="jetdirect", product=model or None, extra="PJL INFO ID")


JETDIRECT = Matcher(name="jetdirect", judge=_judge, max_bytes=1024)

PJL_INFO_ID = Probe(
    name="pjl-info-id",
    build=lambda host: _UEL + b"@PJL INFO ID\r\n" + _UEL,
    matchers=("jetdirect",),
    services=("pdl-datastream", "jetdirect", "hp-pdl-datastr"),
)
