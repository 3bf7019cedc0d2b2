"""``portkit connect``: a port-aware netcat between stdin/stdout and an application."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portkit._errors import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_USAGE
from portkit.cli._args import add_target_arguments, target_endpoint

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable

    from portkit.client import Conversation
    from portkit.endpoint import Endpoint
    from portkit.results import TlsInfo

SUMMARY = (
    "talk to an application: stdin/stdout to a URL, host:port or 'host service' (TCP, UDP, TLS)"
)

STARTTLS = ("smtp", "imap", "pop3", "ftp")

#: Nothing is left to finish at exit (stdout is written unbuffered, status lines are
#: flushed, asyncio.run has joined its threads): skip the interpreter's teardown.
QUICK_EXIT = True


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(
        parser,
        target_help="a URL (https://example.org, udp://host:53), host:port, host:port/udp, "
        "host:service (mail.example:smtp) or host",
        service_help="with a bare host: the port or service name ('portkit connect example.org smtp')",
        service_metavar="PORT|SERVICE",
        target_optional=True,
    )
    parser.add_argument(
        "-u",
        "--udp",
        action="store_true",
        help="UDP datagrams instead of TCP (also: udp://host:port, host:port/udp)",
    )
    parser.add_argument(
        "-l",
        "--listen",
        metavar="PORT",
        help="listen mode: wait on PORT (0: any free port) for one peer, then talk with it; "
        "TCP, or UDP with --udp or PORT/udp",
    )
    parser.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="with --listen: the local address to listen on (default 127.0.0.1, loopback "
        "only; 0.0.0.0 or :: for every address)",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="implicit TLS from the first byte (default: on where conventional, e.g. "
        "https, imaps, pop3s, smtps)",
    )
    parser.add_argument(
        "--starttls",
        choices=STARTTLS,
        metavar="PROTOCOL",
        help="speak PROTOCOL's STARTTLS dialogue (smtp, imap, pop3, ftp), then TLS; "
        "the rest of the conversation is yours",
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
        "--crlf",
        action="store_true",
        help="send each line end as CRLF (what SMTP, POP3, IMAP, FTP and HTTP expect)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up connecting (and the TLS handshake or STARTTLS) after SECONDS (default 10)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end the conversation when no byte moves either way for SECONDS (default "
        "never); in listen mode it also bounds the wait for a peer",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no status lines on stderr, only errors"
    )
    parser.epilog = (
        "examples:\n"
        "  portkit connect localhost:8080                 plain TCP, port explicit\n"
        "  portkit connect 127.0.0.1 smtp                 the registry's port for smtp (25)\n"
        "  portkit connect https://localhost:8443 --cafile cert.pem\n"
        "  printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | portkit connect http://localhost:8080\n"
        "  portkit connect imaps://mail.example           TLS on 993, by convention\n"
        "  portkit connect --starttls smtp mail.example:587 --crlf\n"
        "  echo hi | portkit connect udp://127.0.0.1:7    UDP (also 127.0.0.1:7/udp, -u)\n"
        "  portkit connect -l 9000                        wait on 127.0.0.1:9000 for one peer\n"
        "  portkit connect -l 5353/udp --bind 0.0.0.0     UDP listen mode, every address\n\n"
        "stdin goes to the application, its replies to stdout. At stdin's end a TCP\n"
        "connection is half-closed (the server reads end of file; its replies still come\n"
        "until it closes); a TLS connection stays open until the server closes or\n"
        "--idle-timeout passes. UDP sends each read of stdin as one datagram; after\n"
        "stdin's end it waits for replies until none has come for 1 s.\n"
        "Status lines (which endpoint and why, TLS, who closed) go to stderr.\n\n"
        "exit status:\n"
        f"  {EXIT_OK}  the conversation ended: the server closed the connection (TCP), or\n"
        "     the replies stopped after stdin's end (UDP)\n"
        f"  {EXIT_FAILURE}  a network error: reset by peer, unreachable, TLS handshake or\n"
        "     STARTTLS failed, name not resolved, address in use\n"
        f"  {EXIT_USAGE}  bad input: unknown service, port 0 or above 65535, bad URL or option\n"
        f"  {EXIT_REFUSED}  connection refused: nothing listens on that port (for UDP: an\n"
        "     ICMP port-unreachable answer)\n"
        f"  {EXIT_TIMEOUT}  no answer within --connect-timeout, or idle past --idle-timeout\n"
        "  5  listen mode on a port below 1024 without root"
    )


def _endpoint(args: argparse.Namespace) -> Endpoint:
    from portkit._errors import EndpointError

    endpoint = target_endpoint(args)
    if endpoint.port == 0:
        raise EndpointError(
            f"cannot connect to port 0 in {endpoint.text!r}: nothing can listen on port 0"
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


def _check_options(args: argparse.Namespace) -> None:
    """Reject combinations that cannot mean anything, before any I/O."""
    from portkit._errors import UsageError

    _positive(args.connect_timeout, "--connect-timeout")
    _positive(args.idle_timeout, "--idle-timeout")
    if args.listen is not None:
        if args.target is not None:
            raise UsageError(f"give either TARGET ({args.target!r}) or --listen PORT, not both")
        for given, option in ((args.tls, "--tls"), (args.starttls, "--starttls")):
            if given:
                raise UsageError(f"{option} is for connecting; listen mode speaks plain TCP or UDP")
        return
    if args.target is None:
        raise UsageError("give a TARGET to connect to, or --listen PORT")
    if args.bind is not None:
        raise UsageError(f"--bind {args.bind!r} is for listen mode (--listen PORT)")
    if args.starttls is not None and args.tls:
        raise UsageError("give --tls (TLS from the first byte) or --starttls, not both")


def run(args: argparse.Namespace) -> int:
    import sys

    from portkit.client import crlf, read_fd, write_fd

    _check_options(args)
    # Bad input is reported before stdin is touched.
    if args.listen is not None:
        listen_on = _listen_port(args)
    else:
        endpoint = _endpoint(args)

    def status(line: str) -> None:
        if not args.quiet:
            print(f"portkit: {line}", file=sys.stderr, flush=True)

    # Written to the descriptor itself, unbuffered; on plain TCP the kernel may move the
    # bytes to it (splice) without them passing through Python.
    sink = write_fd(sys.stdout.fileno())
    source: AsyncIterator[bytes] = read_fd(sys.stdin.fileno())
    if args.crlf:
        source = crlf(source)
    if args.listen is not None:
        return _listen(args, listen_on, source, sink, status)
    return _connect(args, endpoint, source, sink, status)


def _connect(
    args: argparse.Namespace,
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    status: Callable[[str], None],
) -> int:
    import asyncio

    from portkit._errors import UsageError
    from portkit.client import DEFAULT_CONNECT_TIMEOUT, Timeouts, converse, converse_udp
    from portkit.endpoint import host_port

    udp = args.udp or endpoint.transport == "udp"
    if udp:
        if args.tls or args.starttls:
            option = "--tls" if args.tls else "--starttls"
            raise UsageError(f"{option} needs TCP; TLS over UDP (DTLS) is not supported")
        status(f"sending to {endpoint.authority} over UDP; {endpoint.explain()}")
        result: Conversation = asyncio.run(
            converse_udp(
                endpoint.host,
                endpoint.port,
                source,
                sink,
                idle=args.idle_timeout,
                on_connect=lambda peer: status(f"udp socket ready for {host_port(*peer)}"),
            )
        )
        status(
            f"done: no reply for 1 s after our end of input: sent {result.sent} bytes, "
            f"received {result.received}"
        )
        return EXIT_OK

    if args.starttls is not None and endpoint.tls and args.tls is None:
        raise UsageError(
            f"{endpoint.scheme or endpoint.service} on port {endpoint.port} is TLS from the "
            "first byte; --starttls is for a plain port (or add --no-tls)"
        )
    use_tls = args.starttls is not None or (endpoint.tls if args.tls is None else args.tls)
    context = _context(args) if use_tls else None
    if args.starttls is not None:
        tls_text = f"plain TCP, then TLS after {args.starttls} STARTTLS"
    elif use_tls:
        why = "by convention for " + (endpoint.scheme or endpoint.service or "this port")
        tls_text = f"TLS ({why})" if args.tls is None else "TLS (--tls)"
    else:
        tls_text = "plain TCP" + (" (--no-tls)" if args.tls is False and endpoint.tls else "")
    status(f"connecting to {endpoint.authority} with {tls_text}; {endpoint.explain()}")

    timeouts = Timeouts(
        connect=args.connect_timeout or DEFAULT_CONNECT_TIMEOUT, idle=args.idle_timeout
    )
    result = asyncio.run(
        converse(
            endpoint.host,
            endpoint.port,
            source,
            sink,
            tls=context,
            server_hostname=args.servername or endpoint.host,
            starttls=args.starttls,
            timeouts=timeouts,
            on_connect=lambda peer, tls: status(_connected(peer, tls)),
            on_status=status,
        )
    )
    who = "the server" if result.closed_by_peer else "the server, after our end of input"
    status(f"closed by {who}: sent {result.sent} bytes, received {result.received}")
    return EXIT_OK


def _listen_port(args: argparse.Namespace) -> tuple[int, str]:
    """The port and transport ``--listen`` names (``8080``, ``5353/udp``, ``-u``)."""
    from portkit._errors import UsageError
    from portkit.cli._args import port_argument

    port, written = port_argument(args.listen)
    if written == "tcp" and args.udp:
        raise UsageError(f"--listen {args.listen!r} names tcp, but --udp was given")
    return port, "udp" if args.udp else written or "tcp"


def _listen(
    args: argparse.Namespace,
    listen_on: tuple[int, str],
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    status: Callable[[str], None],
) -> int:
    import asyncio

    from portkit.client import DEFAULT_BIND, Timeouts, listen
    from portkit.endpoint import host_port

    port, transport = listen_on
    result = asyncio.run(
        listen(
            port,
            source,
            sink,
            transport=transport,
            bind=args.bind or DEFAULT_BIND,
            timeouts=Timeouts(idle=args.idle_timeout),
            on_listening=lambda local: status(f"listening on {host_port(*local)} ({transport})"),
            on_connect=lambda peer, _tls: status(
                f"{'connection' if transport == 'tcp' else 'first datagram'} from {host_port(*peer)}"
            ),
        )
    )
    if transport == "udp":
        end = "no datagram for 1 s after our end of input"
    elif result.closed_by_peer:
        end = "closed by the peer"
    else:
        end = "closed by the peer, after our end of input"
    status(f"{end}: sent {result.sent} bytes, received {result.received}")
    return EXIT_OK


def _connected(peer: tuple[str, int], tls: TlsInfo | None) -> str:
    from portkit.endpoint import host_port

    where = host_port(*peer)
    if tls is None:
        return f"connected to {where}"
    cert = f", certificate {tls.subject}" if tls.subject else ""
    signed = " (self-signed)" if tls.self_signed else ""
    return f"connected to {where}, {tls.version} {tls.cipher}{cert}{signed}"
