"""One judgement of registered name against what answers, for the demo and the HTML report."""

from __future__ import annotations

import pytest

from portkit.registry import default_registry
from portkit.registry._verdict import port_verdict


@pytest.mark.parametrize(
    ("port", "expected", "actual", "kind"),
    [
        (443, "https", "https", "match"),
        (143, "imap", "imap4", "match"),  # an alias of the registered service
        (8443, "pcsync-https", "https", "alternate"),  # the registered name says it
        (8081, "sunproxyadmin", "http", "alternate"),  # the registry's notes say it
        (80, "http", "ssh", "unexpected"),
        (9443, "tungsten-https", "ssh", "unexpected"),
        (47123, None, "http", "unregistered"),
        (80, "http", None, "unidentified"),
    ],
)
def test_port_verdict(port: int, expected: str | None, actual: str | None, kind: str) -> None:
    assert port_verdict(default_registry(), port, "tcp", expected, actual) == kind
