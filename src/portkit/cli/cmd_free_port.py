"""``portkit free-port``: ports free to bind now, away from well-known and dev ports."""

from __future__ import annotations

import argparse

SUMMARY = "print ports free to bind now, avoiding well-known and common development ports"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--near", type=int, metavar="N", help="the port to start from (default: a random one)"
    )
    parser.add_argument(
        "--count", type=int, default=1, metavar="K", help="how many ports (default 1)"
    )
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp", help="default tcp")
    parser.add_argument("--json", action="store_true", help="a JSON list of port numbers")
    parser.epilog = (
        "examples:\n"
        "  portkit free-port                 one free TCP port\n"
        "  portkit free-port --near 8000     the free port nearest to 8000 that no dev\n"
        "                                    server or registered service is likely to want\n"
        "  portkit free-port --count 3 --transport udp\n"
        '  PORT=$(portkit free-port) && python -m http.server "$PORT"\n\n'
        "Ports below 1024 and the registry's common development ports are never offered;\n"
        "IANA-registered ports and the kernel's ephemeral range only when nothing else is free.\n"
        "A port is free when it binds on 0.0.0.0 and :: now; another process may still\n"
        "take it before you do."
    )


def run(args: argparse.Namespace) -> int:
    from portkit.cli._output import print_json
    from portkit.client import free_ports

    ports = free_ports(near=args.near, count=args.count, transport=args.transport)
    if args.json:
        print_json(ports)
    else:
        for port in ports:
            print(port)
    return 0
