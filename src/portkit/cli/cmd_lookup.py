"""``portkit lookup``: which port does a service use, which service owns a port?"""

from __future__ import annotations

import argparse
import sys

from portkit._errors import EXIT_FAILURE, EXIT_OK, LookupNotFound

SUMMARY = "look up ports and services in the registry (port, range, name or --search)"

EPILOG = """\
examples:
  portkit lookup 443              the service on port 443 (https)
  portkit lookup imap             imap on 143, and the related imap3 (220) and imaps (993)
  portkit lookup 6010             inside the X11 range 6000-6063
  portkit lookup 20-25            every service from port 20 to 25
  portkit lookup 53/udp           one transport only
  portkit lookup 3000             IANA's name, and what usually runs there
  portkit lookup --search mail    free text over names and descriptions
  portkit lookup 80 ssh --json    machine-readable (keys documented in docs/registry.md)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("query", nargs="*", help="a port (443), range (20-25), 53/udp, or a name")
    parser.add_argument(
        "-t", "--transport", choices=("tcp", "udp", "sctp", "dccp"), help="only this transport"
    )
    parser.add_argument("-s", "--search", metavar="TEXT", help="free-text search")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _description(service: object) -> str:
    from portkit.registry import Service

    assert isinstance(service, Service)
    text = service.plain or service.description
    if service.common_use:
        text = f"{text}; usually: {service.common_use}" if service.name else service.common_use
    return text


def _rows(services: tuple[object, ...] | list[object], marker: str = "") -> list[list[str]]:
    from portkit.registry import Service

    rows = []
    for service in services:
        assert isinstance(service, Service)
        rows.append(
            [
                service.port_text,
                service.transport or "-",
                (service.name or "(unregistered)") + marker,
                ", ".join(service.aliases),
                _description(service),
            ]
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from portkit.cli._output import print_json, print_table
    from portkit.registry import default_registry
    from portkit.registry._query import Answer, answer, service_to_dict

    if not args.query and not args.search:
        raise LookupNotFound("give a port, range or service name to look up, or --search TEXT")
    registry = default_registry()
    answers: list[Answer] = [answer(registry, q, args.transport) for q in args.query]
    if args.search:
        found = registry.search(args.search, args.transport)
        answers.append(Answer(query=args.search, kind="search", matches=tuple(found)))

    if args.json:
        print_json(
            [
                {
                    "query": a.query,
                    "kind": a.kind,
                    "matches": [service_to_dict(s) for s in a.matches],
                    "related": [service_to_dict(s) for s in a.related],
                }
                for a in answers
            ]
        )
        return EXIT_OK if all(a.matches or a.related for a in answers) else EXIT_FAILURE

    status = EXIT_OK
    rows: list[list[str]] = []
    for a in answers:
        if not a.matches and not a.related:
            what = {"port": "port", "range": "ports", "search": "search"}.get(a.kind, "query")
            print(f"portkit: {what} {a.query}: no registered service", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        rows += _rows(list(a.matches))
        rows += _rows(list(a.related), marker=" (related)" if a.matches else "")
    if rows:
        print_table(["PORT", "PROTO", "SERVICE", "ALIASES", "DESCRIPTION"], rows)
    return status
