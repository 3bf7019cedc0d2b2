"""``portkit connect``: a port-aware netcat between stdin/stdout and an application."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portkit._errors import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_USAGE
from portkit.cli._args import add_target_arguments, target_endpoint

if TYPE_CHECKING:
    import ssl

    from portkit.endpoint import Endpoint
    from portkit.scan._model import TlsInfo

SUMMARY = "talk to an application: stdin/stdout to a URL, host:port or 'host service'"


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(
        parser,
        target_help="a URL (https://example.org), host:port, host:service (mail.example:smtp) or host",
        service_help="with a bare host: the port or service name ('portkit connect example.org smtp')",
        service_metavar="PORT|SERVICE",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="implicit TLS from the first byte (default: on where conventional, e.g. "
        "https, imaps, pop3s, smtps)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="with TLS: do not verify the server's certificate",
    )
    parser.add_argument(
        "--cafile", metavar="FILE", help="with TLS: trust the certificate(s) in FILE (PEM)"
    )
    parser.add_argument(
        "--servername",
        metavar="NAME",
        help="with TLS: the name to send (SNI) and verify (default: the target's host)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up connecting (and the TLS handshake) after SECONDS (default 10)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end the conversation when no byte moves either way for SECONDS (default never)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no status lines on stderr, only errors"
    )
    parser.epilog = (
        "examples:\n"
        "  portkit connect localhost:8080                 plain TCP, port explicit\n"
        "  portkit connect 127.0.0.1 smtp                 the registry's port for smtp (25)\n"
        "  portkit connect https://localhost:8443 --cafile cert.pem\n"
        "  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | portkit connect http://localhost:8080\n"
        "  portkit connect imaps://mail.example           TLS on 993, by convention\n\n"
        "stdin goes to the application, its replies to stdout. At stdin's end a plain\n"
        "connection is half-closed (the server reads end of file; its replies still come);\n"
        "a TLS connection stays open until the server closes or --idle-timeout passes.\n"
        "Status lines (which endpoint and why, TLS, who closed) go to stderr.\n\n"
        "exit status:\n"
        f"  {EXIT_OK}  the conversation ended: the server closed the connection\n"
        f"  {EXIT_FAILURE}  a network error: reset by peer, unreachable, TLS handshake failed,\n"
        "     name not resolved\n"
        f"  {EXIT_USAGE}  bad input: unknown service, port 0 or above 65535, bad URL or option\n"
        f"  {EXIT_REFUSED}  connection refused: nothing listens on that port\n"
        f"  {EXIT_TIMEOUT}  no answer within --connect-timeout, or idle past --idle-timeout"
    )


def _endpoint(args: argparse.Namespace) -> Endpoint:
    from portkit._errors import EndpointError

    endpoint = target_endpoint(args)
    if endpoint.port == 0:
        raise EndpointError(
            f"cannot connect to port 0 in {endpoint.text!r}: nothing can listen on port 0"
        )
    if endpoint.transport != "tcp":
        raise EndpointError(
            f"{endpoint.service or endpoint.text} is {endpoint.transport}, "
            "and connect speaks tcp; give a tcp port explicitly"
        )
    return endpoint


def _positive(value: float | None, option: str) -> None:
    from portkit._errors import UsageError

    if value is not None and not value > 0:
        raise UsageError(f"{option} must be more than 0 seconds, not {value:g}")


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    import ssl

    from portkit._errors import UsageError
    from portkit.client import tls_context

    try:
        return tls_context(verify=not args.insecure, cafile=args.cafile)
    except ssl.SSLError as exc:  # an OSError too: test it first
        reason = (exc.reason or str(exc)).lower().replace("_", " ")
        raise UsageError(f"--cafile {args.cafile!r} holds no usable certificate: {reason}") from exc
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UsageError(f"cannot read --cafile {args.cafile!r}: {reason}") from exc


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from portkit.client import DEFAULT_CONNECT_TIMEOUT, Timeouts, converse, read_fd

    endpoint = _endpoint(args)
    _positive(args.connect_timeout, "--connect-timeout")
    _positive(args.idle_timeout, "--idle-timeout")
    use_tls = endpoint.tls if args.tls is None else args.tls
    context = _context(args) if use_tls else None

    def status(line: str) -> None:
        if not args.quiet:
            print(f"portkit: {line}", file=sys.stderr, flush=True)

    if use_tls:
        why = "by convention for " + (endpoint.scheme or endpoint.service or "this port")
        tls_text = f"TLS ({why})" if args.tls is None else "TLS (--tls)"
    else:
        tls_text = "plain TCP" + (" (--no-tls)" if args.tls is False and endpoint.tls else "")
    status(f"connecting to {endpoint.authority} with {tls_text}; {endpoint.explain()}")

    out = sys.stdout.buffer

    def sink(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    timeouts = Timeouts(
        connect=args.connect_timeout or DEFAULT_CONNECT_TIMEOUT, idle=args.idle_timeout
    )
    result = asyncio.run(
        converse(
            endpoint.host,
            endpoint.port,
            read_fd(sys.stdin.fileno()),
            sink,
            tls=context,
            server_hostname=args.servername or endpoint.host,
            timeouts=timeouts,
            on_connect=lambda peer, tls: status(_connected(peer, tls)),
        )
    )
    who = "the server" if result.closed_by_peer else "the server, after our end of input"
    status(f"closed by {who}: sent {result.sent} bytes, received {result.received}")
    return EXIT_OK


def _connected(peer: tuple[str, int], tls: TlsInfo | None) -> str:
    address, port = peer
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if tls is None:
        return f"connected to {where}"
    cert = f", certificate {tls.subject}" if tls.subject else ""
    signed = " (self-signed)" if tls.self_signed else ""
    return f"connected to {where}, {tls.version} {tls.cipher}{cert}{signed}"
