"""A saved JSON scan (``-o json``, schema 1) read back, to be written in another format.

:func:`replay` feeds a report exactly what the scan fed it: the listed ports as results
and the ports the JSON only counts ("not_shown") as counts, so ``portkit report
scan.json -o FORMAT`` writes what ``portkit scan ... -o FORMAT`` wrote. The JSON keeps no
reason for ports it only counts; they are given the reason the engines give that state
(``conn-refused`` for closed ports of a connect scan, ...), else ``unknown``.

Every problem is a :class:`~portkit.UsageError` naming the file and where in it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portkit._errors import UsageError
from portkit.report._base import LIST_LIMIT, Report, ScanInfo, ScanSummary
from portkit.report._json import SCHEMA_VERSION
from portkit.results import CountKey, Identification, PortResult, PortState, TlsInfo

__all__ = ["SavedScan", "read_scan", "replay"]

# The reason the engines give a port of this (scan type, transport, state) that they
# only count (see docs/scan.md, "States and reasons").
_REASONS = {
    ("connect", "tcp", PortState.CLOSED): "conn-refused",
    ("syn", "tcp", PortState.CLOSED): "reset",
    ("connect", "tcp", PortState.FILTERED): "no-response",
    ("syn", "tcp", PortState.FILTERED): "no-response",
    ("udp", "udp", PortState.CLOSED): "port-unreach",
    ("udp", "udp", PortState.OPEN_FILTERED): "no-response",
}


class SavedScanError(UsageError):
    """A file that is not a JSON scan portkit can read."""


class SavedScan:
    """A JSON scan document, checked: its plan, its results, its counts, how it ended."""

    def __init__(self, info: ScanInfo, results: list[PortResult], summary: ScanSummary) -> None:
        self.info = info
        self.results = results
        self.summary = summary
        self.not_shown: list[tuple[str, str, PortState, int]] = []  # host, transport, state, n
        self.hostnames: dict[str, str | None] = {}


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, problem: str) -> SavedScanError:
        return SavedScanError(f"{self.name}: {where}: {problem}")

    def get(
        self, obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str
    ) -> Any:
        if key not in obj:
            raise self.fail(where, f"missing key {key!r}")
        value = obj[key]
        # bool is an int to isinstance; a port or a count must not be true or false.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
            raise self.fail(f"{where}.{key}", f"expected {_kind_name(kind)}, not {value!r:.60}")
        return value

    def opt(
        self, obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str
    ) -> Any:
        value = obj.get(key)
        if value is None:
            return None
        return self.get(obj, key, kind, where)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, not {value!r:.60}")
        return value

    def state(self, value: str, where: str) -> PortState:
        try:
            return PortState(value)
        except ValueError:
            raise self.fail(where, f"unknown port state {value!r}") from None

    def transport(self, value: str, where: str) -> str:
        if value not in ("tcp", "udp"):
            raise self.fail(where, f"transport must be tcp or udp, not {value!r}")
        return value

    def address(self, value: str, where: str) -> str:
        # Reports sort hosts by address: it must be one, as the scan wrote it.
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise self.fail(where, f"not an IP address: {value!r}") from None
        return value

    def ports(self, text: str, where: str) -> tuple[int, ...]:
        ports: list[int] = []
        for part in filter(None, text.split(",")):
            low, _, high = part.partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                raise self.fail(where, f"bad port range {part!r}") from None
            if not 0 <= first <= last <= 65535:
                raise self.fail(where, f"bad port range {part!r}")
            ports.extend(range(first, last + 1))
        return tuple(ports)

    def tls(self, value: Any, where: str) -> TlsInfo | None:
        if value is None:
            return None
        tls = self.obj(value, where)
        names = self.get(tls, "subject_alt_names", list, where)
        return TlsInfo(
            version=self.opt(tls, "version", str, where),
            cipher=self.opt(tls, "cipher", str, where),
            alpn=self.opt(tls, "alpn", str, where),
            subject=self.opt(tls, "subject", str, where),
            issuer=self.opt(tls, "issuer", str, where),
            not_before=self.opt(tls, "not_before", str, where),
            not_after=self.opt(tls, "not_after", str, where),
            self_signed=self.opt(tls, "self_signed", bool, where),
            subject_alt_names=tuple(str(n) for n in names),
        )

    def identified(self, value: Any, where: str) -> Identification | None:
        if value is None:
            return None
        ident = self.obj(value, where)
        evidence = self.get(ident, "evidence", str, where)
        try:
            raw = evidence.encode("latin-1")  # how the JSON report wrote the bytes
        except UnicodeEncodeError:
            raise self.fail(
                f"{where}.evidence", "not Latin-1 text (bytes as -o json writes them)"
            ) from None
        return Identification(
            service=self.opt(ident, "service", str, where),
            product=self.opt(ident, "product", str, where),
            version=self.opt(ident, "version", str, where),
            extra=self.opt(ident, "extra", str, where),
            tls=self.tls(ident.get("tls"), f"{where}.tls"),
            confidence=self.get(ident, "confidence", int, where),
            method=self.get(ident, "method", str, where),
            probe=self.opt(ident, "probe", str, where),
            evidence=raw,
        )

    def port(self, value: Any, where: str) -> PortResult:
        port = self.obj(value, where)
        number = self.get(port, "port", int, where)
        if not 0 <= number <= 65535:
            raise self.fail(f"{where}.port", f"port must be 0-65535, not {number}")
        rtt_ms = self.opt(port, "rtt_ms", (int, float), where)
        return PortResult(
            host=self.get(port, "host", str, where),
            hostname=self.opt(port, "hostname", str, where),
            port=number,
            transport=self.transport(self.get(port, "transport", str, where), f"{where}.transport"),
            state=self.state(self.get(port, "state", str, where), f"{where}.state"),
            reason=self.get(port, "reason", str, where),
            # The registry's name when the file has it (schema 1 files before
            # expected_iana only have the one name).
            expected=self.opt(port, "expected_iana", str, where)
            or self.opt(port, "expected", str, where),
            rtt=None if rtt_ms is None else rtt_ms / 1000,
            identified=self.identified(port.get("identified"), f"{where}.identified"),
        )


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in _types(kind))


def read_scan(path: str) -> SavedScan:
    """Read and check the JSON scan at ``path`` (``-`` for stdin is the caller's)."""
    name = path
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise SavedScanError(f"cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SavedScanError(f"{name}: not a JSON scan: not UTF-8 text") from None
    return parse_scan(text, name)


def parse_scan(text: str, name: str) -> SavedScan:
    """Check the JSON scan document ``text`` (from ``name``) and return what it holds."""
    r = _Reader(name)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = (
            " (a -o jsonl stream? save the scan with -o json)" if text.startswith('{"type"') else ""
        )
        raise SavedScanError(
            f"{name}: not a JSON scan: line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from None
    doc = r.obj(doc, "the document")
    if "schema" not in doc or "hosts" not in doc:
        raise r.fail(
            "the document",
            "not a portkit JSON scan (no 'schema' and 'hosts'; save one with portkit scan -o json)",
        )
    schema = r.get(doc, "schema", int, "the document")
    if schema != SCHEMA_VERSION:
        raise r.fail(
            "schema", f"version {schema} is not supported (this portkit reads {SCHEMA_VERSION})"
        )
    scan = r.obj(r.get(doc, "scan", dict, "the document"), "scan")
    summary = r.obj(r.get(doc, "summary", dict, "the document"), "summary")
    scan_type = r.get(scan, "type", str, "scan")
    info = ScanInfo(
        args=r.get(scan, "args", str, "scan"),
        start=float(r.get(scan, "start", (int, float), "scan")),
        scan_type=scan_type,
        tcp_ports=r.ports(r.get(scan, "tcp_ports", str, "scan"), "scan.tcp_ports"),
        udp_ports=r.ports(r.get(scan, "udp_ports", str, "scan"), "scan.udp_ports"),
        host_count=r.get(scan, "hosts", int, "scan"),
        version=r.get(doc, "portkit", str, "the document"),
        detect=r.get(scan, "detect", bool, "scan"),
    )
    ended = ScanSummary(
        end=float(r.get(summary, "end", (int, float), "summary")),
        elapsed=float(r.get(summary, "elapsed", (int, float), "summary")),
        interrupted=r.get(summary, "interrupted", bool, "summary"),
    )
    results: list[PortResult] = []
    saved = SavedScan(info, results, ended)
    for h, value in enumerate(r.get(doc, "hosts", list, "the document")):
        where = f"hosts[{h}]"
        host = r.obj(value, where)
        address = r.address(r.get(host, "address", str, where), f"{where}.address")
        saved.hostnames[address] = r.opt(host, "hostname", str, where)
        for p, port in enumerate(r.get(host, "ports", list, where)):
            result = r.port(port, f"{where}.ports[{p}]")
            if result.host != address:
                raise r.fail(
                    f"{where}.ports[{p}].host",
                    f"{result.host!r} is not the host's address {address!r}",
                )
            results.append(result)
        for n, extra in enumerate(r.get(host, "not_shown", list, where)):
            at = f"{where}.not_shown[{n}]"
            extra = r.obj(extra, at)
            count = r.get(extra, "count", int, at)
            if count <= LIST_LIMIT:
                raise r.fail(
                    f"{at}.count", f"{count} ports are listed, not counted (at most {LIST_LIMIT})"
                )
            state = r.state(r.get(extra, "state", str, at), f"{at}.state")
            transport = r.transport(r.get(extra, "transport", str, at), f"{at}.transport")
            saved.not_shown.append((address, transport, state, count))
    return saved


def replay(saved: SavedScan, report: Report) -> None:
    """Feed ``report`` what the scan fed it: plan, results, counted ports, end."""
    report.begin(saved.info)
    report.add(saved.results)
    for host, transport, state, count in saved.not_shown:
        transport_type = "udp" if transport == "udp" else saved.info.scan_type
        reason = _REASONS.get((transport_type, transport, state), "unknown")
        # The first LIST_LIMIT + 1 as results (that many put a state past the listing
        # limit, as in the scan), the rest as counts.
        first = [
            PortResult(
                host=host,
                hostname=saved.hostnames.get(host),
                port=0,
                transport=transport,
                state=state,
                reason=reason,
            )
        ] * (LIST_LIMIT + 1)
        report.add(first)
        counts: dict[CountKey, int] = {(host, transport, state, reason): count - len(first)}
        if counts[(host, transport, state, reason)]:
            report.add_counts(counts)
    for address in saved.hostnames:  # in the order the scan wrote them (a cluster: its own)
        report.hosts_done([address], at=saved.summary.end)
    report.end(saved.summary)
