"""``portkit listening``: this machine's listening sockets and who owns them."""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False  # not `typing` at run time: start-up cost

if TYPE_CHECKING:
    import argparse

    from portkit.client import ListeningSocket, Listing

SUMMARY = "list this machine's listening sockets (TCP, UDP, IPv4, IPv6) and their processes"

#: Nothing is left to finish after the output: skip the interpreter's teardown.
QUICK_EXIT = True

# Exit status when --port finds nothing listening (like grep: "no match" is 1, not an error).
EXIT_NOTHING_LISTENS = 1


def bare_arguments() -> SimpleNamespace:
    """The arguments of ``portkit listening`` given alone, as argparse would make them.

    The common call then starts without argparse (and the ``re`` and ``enum`` it
    imports): against ``ss -ltnup``, start-up is most of the time.
    """
    return SimpleNamespace(
        debug=False,
        command="listening",
        port=None,
        tcp=False,
        udp=False,
        json=False,
        verbose=0,
        quiet=False,
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        metavar="PORT",
        help="only this port: answers 'who holds it?'. A number, a service name (http), "
        "53/udp, host:port or a URL, read as 'portkit connect' reads them",
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--tcp", action="store_true", help="TCP sockets only")
    transport.add_argument("--udp", action="store_true", help="UDP sockets only")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.epilog = (
        "examples:\n"
        "  portkit listening              every listening socket, with pid, process and user\n"
        "  portkit listening --port 3000  who holds port 3000?\n"
        "  portkit listening --port http  who holds http's port (80)?\n"
        "  portkit listening --port domain/udp\n"
        "  portkit listening --port http://localhost:8080/\n"
        "  portkit listening --tcp --json\n\n"
        "Without root, owners of other users' sockets are hidden (shown as '-').\n"
        f"With --port, the exit status is {EXIT_NOTHING_LISTENS} when nothing listens there."
    )


def _owner(sock: ListeningSocket, privileged: bool) -> str:
    if sock.pid is None:
        if privileged:
            return "a process not visible from here (another pid namespace or container)"
        return "an owner hidden from this user (run as root to see it)"
    parts = [f"pid {sock.pid}"]
    if sock.user:
        parts.append(f"user {sock.user}")
    return f"{sock.process or 'a process'} ({', '.join(parts)})"


def _endpoint(sock: ListeningSocket) -> str:
    from portkit.endpoint import bracket_host

    return f"{sock.transport} {bracket_host(sock.address)}"


def who_holds(port: int, listing: Listing) -> str:
    """Return the one-line answer to "who holds ``port``?"."""
    if not listing.sockets:
        return f"nothing listens on port {port}"
    service = next((s.service for s in listing.sockets if s.service), None)
    named = f"port {port} ({service})" if service else f"port {port}"
    by_owner: dict[str, list[str]] = {}
    for sock in listing.sockets:
        by_owner.setdefault(_owner(sock, listing.privileged), []).append(_endpoint(sock))
    held = "; ".join(f"{owner} on {', '.join(where)}" for owner, where in by_owner.items())
    return f"{named} is held by {held}"


def _as_json(listing: Listing) -> dict[str, object]:
    return {
        "sockets": [
            {
                "transport": s.transport,
                "family": s.family,
                "address": s.address,
                "port": s.port,
                "service": s.service,
                "pid": s.pid,
                "process": s.process,
                "user": s.user,
            }
            for s in listing.sockets
        ],
        "hidden_owners": listing.hidden_owners,
        "privileged": listing.privileged,
    }


def run(args: argparse.Namespace | SimpleNamespace) -> int:
    from portkit._columns import format_table
    from portkit._errors import UsageError
    from portkit.client import listening_sockets

    port = written = None
    if args.port is not None:
        from portkit.cli._args import port_argument

        port, written = port_argument(args.port)
    flag = "tcp" if args.tcp else "udp" if args.udp else None
    if written and flag and written != flag:
        raise UsageError(f"--port {args.port!r} names {written}, but --{flag} was given")
    transport = flag or written
    transports = (transport,) if transport else ("tcp", "udp")
    listing = listening_sockets(port=port, transports=transports)
    if args.json:
        from portkit.cli._output import print_json

        print_json(_as_json(listing))
    elif port is not None:
        print(who_holds(port, listing))
    else:
        rows = [
            (
                s.transport,
                s.address,
                s.port,
                s.service or "-",
                "-" if s.pid is None else s.pid,
                s.process or "-",
                s.user or "-",
            )
            for s in listing.sockets
        ]
        print(format_table(("PROTO", "ADDRESS", "PORT", "SERVICE", "PID", "PROCESS", "USER"), rows))
        if listing.hidden_owners and not listing.privileged:
            print(
                f"\n{listing.hidden_owners} socket(s) belong to processes this user may not "
                "inspect; run as root to see their owners"
            )
    if port is not None and not listing.sockets:
        return EXIT_NOTHING_LISTENS
    return 0
