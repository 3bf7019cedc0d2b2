"""Arguments several commands share: the TARGET [SERVICE] pair that names an endpoint."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portkit.endpoint import Endpoint

__all__ = ["add_target_arguments", "target_endpoint"]


def add_target_arguments(
    parser: argparse.ArgumentParser,
    *,
    target_help: str = "URL, host:port, host:service or host",
    service_help: str,
    service_metavar: str = "SERVICE",
) -> None:
    """Add the positional ``TARGET`` and optional ``SERVICE`` (read by :func:`target_endpoint`)."""
    parser.add_argument("target", metavar="TARGET", help=target_help)
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
