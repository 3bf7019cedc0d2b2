"""The HTML report: one self-contained page for people, opened from a file.

Everything the page needs is inside it: the style sheet and the script that sorts and
filters the port tables are inlined, and the page's own Content-Security-Policy
(``default-src 'none'``) forbids every fetch, so it works offline and tells no one it
was opened. The policy allows exactly the inlined style and script, by their SHA-256
hashes; anything else that might end up in the page would not run.

The page is rendered by Jinja2 with autoescaping: every value is HTML-escaped where it
is written, so a forgotten escape is impossible rather than unlikely. Text a server
chose (product, version, certificate fields, the first bytes it sent) also goes
through :func:`portkit._display.escape_controls` first, as in the table report:
control and bidirectional characters are shown as ``\\xNN``, not obeyed.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TextIO

from portkit._display import escape_controls, printable
from portkit.report._base import CollectingReport, HostTable, ScanSummary, port_ranges
from portkit.results import PortResult, PortState, TlsInfo

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

__all__ = ["HtmlReport", "Verdict", "verdict_of"]

_TEMPLATES = "templates"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the registry's name for a port and the service that answered there say.

    ``kind`` is one of ``match`` (the registered service answers), ``alternate`` (a usual
    alternate port for what answers, as the registry's notes say: HTTP on 8080),
    ``unexpected`` (registered to one service, another answers: SSH on 80),
    ``unregistered`` (nothing is registered there), ``unidentified`` (something answers,
    no protocol matched) or ``""`` (no identification was made).
    """

    kind: str
    text: str


def verdict_of(result: PortResult) -> Verdict:
    """Compare the registry's name for ``result``'s port with what answered there."""
    found = result.identified
    if found is None or result.state is PortState.CLOSED:
        return Verdict("", "")
    expected = result.expected
    actual = found.service
    from portkit.registry import default_registry
    from portkit.registry._verdict import port_verdict

    kind = port_verdict(default_registry(), result.port, result.transport, expected, actual)
    text = {
        "unidentified": "something answers, but no protocol matched",
        "unregistered": f"{actual} on an unregistered port",
        "match": f"{actual}, as registered",
        "alternate": f"{actual} on a usual alternate port (registered: {expected})",
        "unexpected": f"registered to {expected}, but {actual} answers",
    }[kind]
    return Verdict(kind, text)


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _evidence(raw: bytes) -> str:
    """A server's first bytes for display, a line per line it sent (endings shown)."""
    return "\n".join(printable(line) for line in raw.splitlines(keepends=True))


def _shown(text: str | None) -> str:
    """A server's text for display: controls escaped (HTML escaping is the template's)."""
    return escape_controls(text) if text else ""


def _epoch(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:  # the JSON says UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _moment(iso: str | None) -> str:
    """An ISO 8601 time as people read it (``2026-12-05 00:49 UTC``); odd ones as given."""
    if not iso:
        return ""
    try:
        return _utc(_epoch(iso))[:-7] + " UTC"
    except ValueError:
        return _shown(iso)


def _validity(tls: TlsInfo, now: float) -> tuple[str, str]:
    """(kind, text) of a certificate's validity at ``now``: ok, soon, expired, not-yet."""
    if not tls.not_after:
        return "", ""
    try:
        after = _epoch(tls.not_after)
        before = _epoch(tls.not_before) if tls.not_before else None
    except ValueError:
        return "", f"valid until {_shown(tls.not_after)}"
    if before is not None and now < before:
        return "not-yet", f"not valid before {_shown(tls.not_before)}"
    days = (after - now) / 86400
    if days < 0:
        return "expired", f"expired {-days:.0f} days before the scan"
    if days < 14:
        return "soon", f"expires {days:.0f} days after the scan"
    return "ok", f"valid for {days:.0f} more days"


def _tls_view(tls: TlsInfo | None, now: float) -> dict[str, Any] | None:
    if tls is None:
        return None
    validity_kind, validity = _validity(tls, now)
    return {
        "version": _shown(tls.version) or "TLS",
        "cipher": _shown(tls.cipher),
        "alpn": _shown(tls.alpn),
        "subject": _shown(tls.subject),
        "issuer": _shown(tls.issuer),
        "not_before": _moment(tls.not_before),
        "not_after": _moment(tls.not_after),
        "self_signed": tls.self_signed,
        "names": [_shown(name) for name in tls.subject_alt_names],
        "validity_kind": validity_kind,
        "validity": validity,
    }


_VERDICT_ORDER = {"unexpected": 0, "unidentified": 1, "unregistered": 2, "alternate": 3}
_STATE_ORDER = {state: n for n, state in enumerate(PortState)}


def _port_view(r: PortResult, anchor: str, now: float) -> dict[str, Any]:
    found = r.identified
    verdict = verdict_of(r)
    service = ""
    if found is not None:
        service = _shown(found.service) or "unknown"
    return {
        "anchor": anchor,
        "port": r.port,
        "transport": _shown(r.transport),
        "state": r.state.value,
        "state_order": _STATE_ORDER[r.state],
        # Written by the scanner, or read from a saved file that anyone may have edited.
        "reason": _shown(r.reason),
        "expected": _shown(r.expected),
        "service": service,
        "product": _shown(found.product) if found else "",
        "version": _shown(found.version) if found else "",
        "extra": _shown(found.extra) if found else "",
        "confidence": found.confidence if found else None,
        "probe": _shown(found.probe) if found else "",
        "evidence": _evidence(found.evidence) if found else "",
        "rtt_ms": None if r.rtt is None else f"{r.rtt * 1000:.3f}",
        "tls": _tls_view(found.tls if found else None, now),
        "verdict": verdict.kind,
        "verdict_text": verdict.text,
        "verdict_order": _VERDICT_ORDER.get(verdict.kind, 9),
    }


def _host_view(index: int, table: HostTable, now: float) -> dict[str, Any]:
    host_id = f"host-{index}"
    ports = [_port_view(r, f"{host_id}-{r.transport}-{r.port}", now) for r in table.ports()]
    return {
        "id": host_id,
        "address": table.address,
        "hostname": _shown(table.hostname),
        "ports": ports,
        "counts": [
            {"transport": t, "state": s.value, "count": n}
            for (t, s), n in sorted(
                table.counts.items(), key=lambda item: (item[0][0], _STATE_ORDER[item[0][1]])
            )
        ],
        "not_shown": [{"transport": t, "state": s.value, "count": n} for t, s, n in table.extra()],
        "open": table.open_count,
        "total": table.total,
    }


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("portkit.report", _TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _asset(name: str) -> str:
    return (resources.files("portkit.report") / _TEMPLATES / name).read_text("utf-8")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def render_page(context: dict[str, Any]) -> Iterator[str]:
    """The page for ``context`` (see :meth:`HtmlReport.finish`) in pieces, style and
    script inlined; ``index`` and ``sections`` are the hosts' parts, already rendered."""
    from markupsafe import Markup

    style, script = _asset("report.css"), _asset("report.js")
    policy = (
        "default-src 'none'; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "base-uri 'none'; form-action 'none'"
    )
    template = _environment().get_template("scan.html.j2")
    return template.generate(
        **context,
        # Our own files, written verbatim so that their hashes match the policy.
        style=Markup(style),
        script=Markup(script),
        policy=policy,
    )


def _spooled(spool: TextIO) -> Iterator[Markup]:
    """What was written to ``spool`` (our own rendered HTML), back in pieces."""
    from markupsafe import Markup

    spool.seek(0)
    while chunk := spool.read(1 << 16):
        yield Markup(chunk)


class HtmlReport(CollectingReport):
    """One HTML page, written at the end (or at Ctrl-C).

    The page opens with the summary and the host index, which need every host, so the
    hosts are rendered as they are done into spool files (on disk, not in memory) and
    the page is written from them at the end.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._sections = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._index = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._surprises: list[dict[str, Any]] = []
        self._tls = 0

    def write_host(self, table: HostTable, done: float) -> None:
        host = _host_view(self.totals.hosts, table, done)  # certificates judged at that time
        for port in host["ports"]:
            self._tls += port["tls"] is not None
            if port["verdict"] == "unexpected":
                self._surprises.append({"host": {"address": host["address"]}, "port": port})
        environment = _environment()
        detect = self.info is not None and self.info.detect
        self._sections.write(
            environment.get_template("host.html.j2").render(host=host, detect=detect)
        )
        self._index.write(environment.get_template("index.html.j2").render(host=host))

    def finish(self, summary: ScanSummary) -> None:
        info = self.info
        assert info is not None
        totals = self.totals
        context = {
            "version": info.version,
            "args": _shown(info.args),
            "started": _utc(info.start),
            "ended": _utc(summary.end),
            "elapsed": f"{summary.elapsed:.2f}",
            "interrupted": summary.interrupted,
            "scan_type": info.scan_type,
            "tcp_ports": port_ranges(info.tcp_ports),
            "udp_ports": port_ranges(info.udp_ports),
            "detect": info.detect,
            "host_count": totals.hosts,
            "index": _spooled(self._index),
            "sections": _spooled(self._sections),
            "scanned": totals.ports,
            "by_state": [(s.value, totals.by_state[s]) for s in PortState if s in totals.by_state],
            "open": totals.open,
            "tls": self._tls,
            "surprises": self._surprises,
        }
        try:
            for piece in render_page(context):
                self.out.write(piece)
        finally:
            self._sections.close()
            self._index.close()
