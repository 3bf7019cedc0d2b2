"""``portkit resolve``: where exactly a client connects for a URL, host:port or service."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from portkit._errors import UsageError
from portkit.cli._args import add_target_arguments, seconds, target_endpoint

if TYPE_CHECKING:
    from portkit.endpoint import Endpoint, Resolution

SUMMARY = "show where a client connects for a URL, host:port or host:service, and why"

EPILOG = """\
examples:
  portkit resolve http://testing.example.com:8080/login
  portkit resolve https://example.com --json
  portkit resolve ssh://user@host
  portkit resolve example.com:imaps --srv
  portkit resolve example.org smtp
  portkit resolve localhost:8080 --addresses
  portkit resolve example.com --scheme https

TARGET is a URL (any scheme), host:port, [v6]:port, host:service, or a bare host with
--scheme. Without --addresses or --srv nothing is sent to the network. The JSON keys are
documented in docs/endpoint.md.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_target_arguments(
        parser,
        service_help="a port or service name for TARGET given as a bare host (example.org smtp)",
    )
    parser.add_argument(
        "--scheme", metavar="SCHEME", help="the scheme for a TARGET without one (http, ssh, ...)"
    )
    parser.add_argument(
        "--addresses", action="store_true", help="look up the host's IPv4 and IPv6 addresses"
    )
    parser.add_argument(
        "--srv", action="store_true", help="query DNS SRV records (_service._tcp.host)"
    )
    parser.add_argument(
        "--nameserver",
        metavar="ADDRESS",
        help="DNS server for the SRV query (default: the system's)",
    )
    parser.add_argument(
        "--nameserver-port",
        metavar="PORT",
        type=int,
        default=53,
        help="that DNS server's port (default: 53)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds,
        default=None,
        help="seconds allowed for each DNS lookup (default: 5)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if args.service is not None and args.scheme is not None:
        raise UsageError("give either SERVICE or --scheme, not both")
    endpoint = target_endpoint(args, default_scheme=args.scheme)
    if not 0 < args.nameserver_port <= 65535:
        raise UsageError(f"--nameserver-port must be 1-65535, not {args.nameserver_port}")

    resolution: Resolution | None = None
    if args.addresses or args.srv:
        # Only now: the resolve step imports asyncio and dnspython.
        import asyncio

        from portkit.endpoint import DEFAULT_RESOLVE_TIMEOUT, resolve

        resolution = asyncio.run(
            resolve(
                endpoint,
                addresses=args.addresses,
                srv=args.srv,
                nameserver=args.nameserver,
                nameserver_port=args.nameserver_port,
                lookup_timeout=args.timeout or DEFAULT_RESOLVE_TIMEOUT,
            )
        )
    if args.json:
        from portkit.cli._output import print_json

        print_json(_as_json(endpoint, resolution, addresses=args.addresses, srv=args.srv))
    else:
        _print_human(endpoint, resolution, addresses=args.addresses, srv=args.srv)
    return 0


def _as_json(
    endpoint: Endpoint, resolution: Resolution | None, *, addresses: bool, srv: bool
) -> dict[str, Any]:
    out = endpoint.as_dict()
    out["addresses"] = None
    out["srv"] = None
    if resolution is not None and addresses:
        out["addresses"] = [
            {"family": a.family, "address": a.address, "port": a.port} for a in resolution.addresses
        ]
    if resolution is not None and srv:
        out["srv"] = {
            "name": resolution.srv_name,
            "records": [
                {"priority": r.priority, "weight": r.weight, "port": r.port, "target": r.target}
                for r in resolution.srv
            ],
        }
    return out


def _print_human(
    endpoint: Endpoint, resolution: Resolution | None, *, addresses: bool, srv: bool
) -> None:
    from portkit.cli._output import format_table

    # host:port only guesses the service from the registry; say so in the explanation only.
    speaking = ""
    if (endpoint.service and endpoint.form != "host-port") or endpoint.scheme:
        speaking = f", speaking {endpoint.scheme or endpoint.service}"
    tls = " over TLS" if endpoint.tls else ""
    print(f"connect to {endpoint.host} port {endpoint.port}/{endpoint.transport}{speaking}{tls}")
    print(f"  {endpoint.explain()}")
    print()
    host = endpoint.host
    if endpoint.host_unicode != endpoint.host:
        host = f"{endpoint.host} ({endpoint.host_unicode})"
    fields: list[tuple[str, object]] = [
        ("scheme", endpoint.scheme),
        ("host", host),
        ("host type", endpoint.host_type),
        ("port", endpoint.port),
        ("explicit port", endpoint.explicit_port),
        ("default port", endpoint.default_port),
        ("port source", endpoint.port_source),
        ("transport", endpoint.transport),
        ("service", endpoint.service),
        ("tls", "yes" if endpoint.tls else "no"),
        ("user", endpoint.username),
        ("path", endpoint.path),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is None or value == "":
            continue
        print(f"{name.ljust(width)}  {value}")
    if resolution is not None and addresses:
        print()
        if resolution.addresses:
            print(
                format_table(
                    ["FAMILY", "ADDRESS", "PORT"],
                    [(a.family, a.address, a.port) for a in resolution.addresses],
                )
            )
        else:
            print(f"no addresses for {endpoint.host}")
    if resolution is not None and srv:
        print()
        if resolution.srv:
            print(f"SRV {resolution.srv_name}")
            print(
                format_table(
                    ["PRIORITY", "WEIGHT", "PORT", "TARGET"],
                    [(r.priority, r.weight, r.port, r.target) for r in resolution.srv],
                )
            )
        else:
            print(f"no SRV records for {resolution.srv_name}")
