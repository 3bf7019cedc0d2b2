"""Arguments several commands share: the TARGET [SERVICE] pair that names an endpoint."""

from __future__ import annotations

import argparse
import math

TYPE_CHECKING = False  # not `typing` at run time: this module is on every command's start-up
if TYPE_CHECKING:
    from portkit.endpoint import Endpoint

__all__ = [
    "add_target_arguments",
    "add_verbosity",
    "port_argument",
    "probe_seconds",
    "seconds",
    "target_endpoint",
    "verbosity",
]


#: The longest wait for one probe's answer ``scan --timeout`` takes. Every duration option
#: is in seconds; a larger number is most likely milliseconds written out of habit (nmap
#: and older portkit read ``--timeout 250`` so), which would stall a scan for minutes.
MAX_PROBE_SECONDS = 60.0


def seconds(text: str) -> float:
    """An ``argparse`` type: a duration in seconds, more than 0 (``5``, ``0.25``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds, such as 5 or 0.25, not {text!r}"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text!r}")
    return value


def probe_seconds(text: str) -> float:
    """An ``argparse`` type: a probe's wait in seconds, at most :data:`MAX_PROBE_SECONDS`."""
    value = seconds(text)
    if value > MAX_PROBE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"is in seconds, at most {MAX_PROBE_SECONDS:g}, not {text!r}; "
            f"for {value:g} milliseconds write {value / 1000:g}"
        )
    return value


def add_target_arguments(
    parser: argparse.ArgumentParser,
    *,
    target_help: str = "URL, host:port, host:service or host",
    service_help: str,
    service_metavar: str = "SERVICE",
    target_optional: bool = False,
) -> None:
    """Add the positional ``TARGET`` and optional ``SERVICE`` (read by :func:`target_endpoint`)."""
    parser.add_argument(
        "target", metavar="TARGET", nargs="?" if target_optional else None, help=target_help
    )
    parser.add_argument("service", metavar=service_metavar, nargs="?", help=service_help)


def target_endpoint(args: argparse.Namespace, *, default_scheme: str | None = None) -> Endpoint:
    """The endpoint ``TARGET [SERVICE]`` names (``host service`` or one endpoint string).

    Raises:
        EndpointError: for a target or service the endpoint parser rejects.
    """
    from portkit.endpoint import parse_endpoint, parse_host_service

    if args.service is not None:
        return parse_host_service(args.target, args.service)
    return parse_endpoint(args.target, default_scheme=default_scheme)


def port_argument(text: str) -> tuple[int, str | None]:
    """Read a port the way every endpoint is read: ``8080``, ``http``, ``53/udp``,
    ``domain/udp``, ``localhost:8080``, ``http://localhost:8080/``, ``udp://host:53``.

    Returns:
        The port, and the transport the text named: ``"tcp"`` or ``"udp"`` when written
        (``53/udp``, ``udp://``), else None.

    Raises:
        EndpointError: text that names no port, quoting it.
    """
    from portkit.endpoint import parse_endpoint
    from portkit.endpoint._parse import port_of

    if ":" not in text:  # a port or service name, perhaps with /udp
        port, transport, written = port_of(text)
        return port, transport if written else None
    endpoint = parse_endpoint(text)  # a URL or host:port: the endpoint parser reads it whole
    written = endpoint.scheme in ("tcp", "udp") or text.strip().lower().endswith(("/tcp", "/udp"))
    return endpoint.port, endpoint.transport if written else None


def add_verbosity(
    parser: argparse.ArgumentParser,
    *,
    verbose_help: str = "say more on stderr (repeat for more)",
    quiet_help: str = "only warnings and errors on stderr",
) -> None:
    """``-v/--verbose`` (repeatable) and ``-q/--quiet``, spelt the same in every command.

    Read with :func:`verbosity`: 0 by default, 1 and up for each ``-v``, -1 for ``-q``.
    A command that already defines one of them (with its own help) keeps it; the other
    is added beside it.
    """
    taken = {o for action in parser._actions for o in action.option_strings}
    if {"-v", "-q"} <= taken:
        return
    group = parser.add_mutually_exclusive_group()
    if "-v" not in taken:
        group.add_argument("-v", "--verbose", action="count", default=0, help=verbose_help)
    if "-q" not in taken:
        group.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def verbosity(args: argparse.Namespace) -> int:
    """-1 quiet, 0 normal, N for N times ``-v``."""
    if getattr(args, "quiet", False):
        return -1
    return int(getattr(args, "verbose", 0) or 0)
