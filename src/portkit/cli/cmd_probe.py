"""``portkit probe``: is one endpoint reachable, what answers there, and is it what the
registry expects?"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from portkit._errors import ConnectionRefused, ConnectTimeout, UsageError
from portkit.cli._args import add_target_arguments, target_endpoint
from portkit.endpoint import bracket_host

if TYPE_CHECKING:
    from portkit.endpoint import Endpoint
    from portkit.scan import PortResult

SUMMARY = "connect to one endpoint and identify what answers there (protocol, product, TLS)"

EPILOG = """\
examples:
  portkit probe 127.0.0.1:22
  portkit probe https://localhost:8443/ --json
  portkit probe localhost imaps
  portkit probe localhost:3000
  portkit probe 127.0.0.1:53 --udp

TARGET is a URL, host:port, [v6]:port, host:service, or a host followed by a SERVICE.
The service the registry expects there (or the URL's scheme) is probed first; the answer is
compared with it. Exit status: 0 something answered, 2 bad input, 3 connection refused (or
UDP port unreachable), 4 no answer in time. The JSON keys are documented in docs/identify.md.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_target_arguments(
        parser,
        service_help="a port or service name for TARGET given as a bare host (localhost imaps)",
    )
    parser.add_argument("--udp", action="store_true", help="probe over UDP (dns, ntp, snmp, sip)")
    parser.add_argument(
        "--budget",
        metavar="SECONDS",
        type=float,
        default=None,
        help="seconds the whole identification may take (default: 6)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from portkit.scan import DEFAULT_BUDGET, PortState, probe_port

    endpoint = target_endpoint(args)
    budget = DEFAULT_BUDGET if args.budget is None else args.budget
    if not 0 < budget <= 600:
        raise UsageError(f"--budget must be more than 0 and at most 600 seconds, not {budget:g}")
    if endpoint.port == 0:
        raise UsageError(f"port must be 1-65535, not 0 (in {endpoint.text!r})")
    transport = "udp" if args.udp or endpoint.transport == "udp" else "tcp"
    if endpoint.service in _UDP_IN_PRACTICE and endpoint.form != "host-port":
        transport = "udp"  # "host ntp": NTP and SNMP servers listen on UDP
    # The registry's name for what the URL's scheme (or the port) promises.
    expected = endpoint.service or endpoint.scheme
    result = asyncio.run(
        probe_port(endpoint.host, endpoint.port, transport=transport, expected=expected,
                   budget=budget)
    )  # fmt: skip
    where = _where(endpoint.host, endpoint.port, transport)
    if result.state == PortState.CLOSED:
        what = "port unreachable" if transport == "udp" else "connection refused"
        hint = ""
        if transport == "tcp" and endpoint.service in _UDP_PROBED:
            hint = f" ({endpoint.service} is often UDP: add --udp)"
        raise ConnectionRefused(f"{what}: nothing listens on {where}{hint}")
    if result.state == PortState.FILTERED:
        raise ConnectTimeout(f"no answer from {where}: the connection timed out")
    if args.json:
        from portkit.cli._output import print_json

        print_json(as_json(endpoint, result))
    else:
        _print_human(endpoint, result)
    return 0


# Services named by a bare host + service that are UDP however the registry lists them.
_UDP_IN_PRACTICE = frozenset({"ntp", "snmp", "snmptrap", "tftp", "syslog"})


# Services portkit can identify over UDP.
_UDP_PROBED = frozenset({"domain", "ntp", "snmp", "sip"})


def _where(host: str, port: int, transport: str) -> str:
    shown = bracket_host(host)
    return f"{shown}:{port}/{transport}"


def as_json(endpoint: Endpoint, result: PortResult) -> dict[str, Any]:
    """The ``--json`` document (keys documented in docs/identify.md)."""
    from portkit._display import printable
    from portkit.results import identification_json
    from portkit.scan import same_protocol

    found = result.identified
    return {
        "target": endpoint.text,
        "host": endpoint.host,
        "port": endpoint.port,
        "transport": result.transport,
        "port_source": endpoint.port_source,
        "state": str(result.state),
        "reachable": True,
        "connect_ms": None if result.rtt is None else round(result.rtt * 1000, 3),
        "expected": result.expected,
        "identified": identification_json(found, evidence=printable),
        "matches_expected": same_protocol(result.expected, found.service if found else None),
    }


def _print_human(endpoint: Endpoint, result: PortResult) -> None:
    from portkit._display import escape_controls, printable
    from portkit.scan import same_protocol

    found = result.identified
    lines: list[tuple[str, str]] = []
    if result.transport == "tcp":
        latency = "" if result.rtt is None else f", connected in {result.rtt * 1000:.1f} ms"
        lines.append(("reachable", f"yes{latency}"))
    else:
        reply = "it answered" if result.reason == "udp-response" else "no answer (open|filtered)"
        lines.append(("reachable", f"udp: {reply}"))
    if found is not None and found.service is not None:
        answer = found.service
        product = " ".join(p for p in (found.product, found.version) if p)
        if product:
            answer += f": {product}"
        if found.extra:
            answer += f" ({found.extra})"
        lines.append(("answers", answer))
        lines.append(("found by", f"{found.probe} (confidence {found.confidence}/10)"))
    else:
        detail = found.extra if found is not None and found.extra else "nothing recognisable"
        lines.append(("answers", f"unknown: {detail}"))
    expected = result.expected
    verdict = same_protocol(expected, found.service if found else None)
    if expected is None:
        lines.append(("expected", "the registry has no service for this port"))
    elif verdict is True:
        lines.append(("expected", f"{expected}: as the registry expects"))
    elif verdict is False:
        note = f" ({endpoint.note})" if endpoint.note else ""
        answered = found.service if found else "?"
        lines.append(("expected", f"{expected}{note}, but {answered} answers"))
    else:
        lines.append(("expected", f"{expected}: could not confirm"))
    tls = found.tls if found is not None else None
    if tls is not None:
        from portkit.proto import plain_name

        how = " ".join(x for x in (tls.version, tls.cipher) if x)
        service = found.service if found is not None else None
        if service not in (None, "tls") and plain_name(service or "") is None:
            how += " (after STARTTLS)"  # a plain protocol that upgraded
        lines.append(("tls", how))
        if tls.alpn:
            lines.append(("alpn", tls.alpn))
        if tls.subject:
            issuer = "self-signed" if tls.self_signed else f"issued by {tls.issuer}"
            lines.append(("certificate", f"{tls.subject} ({issuer})"))
            lines.append(("valid", f"{tls.not_before} to {tls.not_after}"))
        if tls.subject_alt_names:
            lines.append(("names", ", ".join(tls.subject_alt_names)))
    if found is not None and found.evidence:
        lines.append(("evidence", printable(found.evidence[:96])))
    print(f"probe {escape_controls(_where(endpoint.host, endpoint.port, result.transport))}")
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        # Products, titles and certificate fields are the server's words: escaped.
        print(f"  {name.ljust(width)}  {escape_controls(value)}")
