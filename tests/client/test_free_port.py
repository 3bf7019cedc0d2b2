"""free_ports(): what it offers binds, and it stays away from ports others will want."""

from __future__ import annotations

import random
import socket

import pytest

from portkit import PortSpecError, UsageError
from portkit.client import ephemeral_range, free_ports, is_free
from portkit.registry import default_registry


def _bind_and_listen(port: int, transport: str) -> None:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", port))
        if transport == "tcp":
            sock.listen()
    with socket.socket(socket.AF_INET6, kind) as sock:
        sock.bind(("::1", port))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_results_bind(transport: str) -> None:
    ports = free_ports(count=5, transport=transport, rng=random.Random(7))
    assert len(set(ports)) == 5
    for port in ports:
        _bind_and_listen(port, transport)


def test_nearest_first_and_never_privileged() -> None:
    ports = free_ports(near=80, count=3)
    assert all(port >= 1024 for port in ports)
    assert ports[0] == min(ports)  # walking up from 80, the first free is the nearest


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_a_port_held_on_one_address_is_not_offered(family: socket.AddressFamily) -> None:
    [port] = free_ports(near=20000)
    with socket.socket(family) as holder:
        holder.bind(("127.0.0.1" if family == socket.AF_INET else "::1", port))
        holder.listen()
        assert not is_free(port)
        assert port not in free_ports(near=port, count=3)
    assert is_free(port)


def test_udp_and_tcp_are_separate() -> None:
    [port] = free_ports(near=21000, transport="udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", port))
        assert not is_free(port, "udp")
        assert port not in free_ports(near=port, transport="udp")


@pytest.mark.parametrize("dev_port", [3000, 8000, 8080])
def test_development_ports_are_never_offered(dev_port: int) -> None:
    registry = default_registry()
    assert any(s.note for s in registry.by_port(dev_port, "tcp")), "registry marks dev ports"
    ports = free_ports(near=dev_port, count=10)
    assert dev_port not in ports
    for port in ports:
        assert not any(s.note for s in registry.by_port(port, "tcp")), port


def test_registered_ports_are_avoided_when_others_are_free() -> None:
    registry = default_registry()
    for port in free_ports(near=5432, count=10):
        assert registry.by_port(port, "tcp") == [], port


def test_the_ephemeral_range_is_avoided_when_others_are_free() -> None:
    low, high = ephemeral_range()
    for port in free_ports(near=low + 100, count=5):
        assert not low <= port <= high, port


def test_default_start_is_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    ports = free_ports(count=3, rng=random.Random(1))
    assert all(1024 <= port < low for port in ports)


@pytest.mark.parametrize("near", [65536, -5])
def test_bad_near(near: int) -> None:
    with pytest.raises(PortSpecError, match=str(near)):
        free_ports(near=near)


@pytest.mark.parametrize("count", [0, 1001])
def test_bad_count(count: int) -> None:
    with pytest.raises(UsageError, match=str(count)):
        free_ports(count=count)


def test_bad_transport() -> None:
    with pytest.raises(PortSpecError, match="sctp"):
        free_ports(transport="sctp")
