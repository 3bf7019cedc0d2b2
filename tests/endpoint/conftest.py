"""Fixtures for the endpoint tests."""

import os
from collections.abc import Iterator

import pytest

from tests.endpoint.dnsmasq import DNSMASQ, DnsServer, free_port, start, stop


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    """A dnsmasq answering for example.test on 127.0.0.1 (it never forwards queries)."""
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    for _attempt in range(3):
        port = free_port()
        proc = start(port)
        if proc is not None:
            break
    else:
        raise RuntimeError("no free port for dnsmasq after 3 attempts")
    try:
        yield DnsServer(host="127.0.0.1", port=port)
    finally:
        stop(proc)
