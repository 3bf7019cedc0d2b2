"""listening_sockets(): real listeners, found with their owning process."""

from __future__ import annotations

import os
import socket

import pytest

from portkit import PortSpecError
from portkit.client import listening_sockets
from tests.client.helpers import held_port


def test_finds_a_tcp_listener_of_this_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        listing = listening_sockets(port=port)
    assert len(listing.sockets) == 1
    found = listing.sockets[0]
    assert (found.transport, found.family, found.address, found.port) == (
        "tcp",
        "ipv4",
        "127.0.0.1",
        port,
    )
    assert found.pid == os.getpid()
    assert found.local
    assert not found.wildcard


def test_finds_tcp_and_udp_ipv4_and_ipv6_of_another_process() -> None:
    with held_port("tcp,udp,tcp6,udp6") as (port, pid):
        listing = listening_sockets(port=port)
    seen = {(s.transport, s.family, s.address) for s in listing.sockets}
    assert seen == {
        ("tcp", "ipv4", "127.0.0.1"),
        ("udp", "ipv4", "127.0.0.1"),
        ("tcp", "ipv6", "::1"),
        ("udp", "ipv6", "::1"),
    }
    assert {s.pid for s in listing.sockets} == {pid}
    assert all(s.process is not None and s.process.startswith("python") for s in listing.sockets)


def test_transport_filter() -> None:
    with held_port("tcp,udp") as (port, _):
        tcp_only = listening_sockets(port=port, transports=("tcp",))
        udp_only = listening_sockets(port=port, transports=("udp",))
    assert [s.transport for s in tcp_only.sockets] == ["tcp"]
    assert [s.transport for s in udp_only.sockets] == ["udp"]


def test_connected_sockets_are_not_listening() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                client_port = client.getsockname()[1]
                listing = listening_sockets(port=client_port)
    assert listing.sockets == ()


def test_a_closed_port_lists_nothing() -> None:
    with held_port() as (port, _):
        pass
    assert listening_sockets(port=port).sockets == ()


def test_registry_name_is_attached() -> None:
    # The registry names the port; binding the port itself needs it free, so use a
    # listener on whatever port the registry knows that is free here.
    from portkit.registry import default_registry

    registry = default_registry()
    for candidate in (8080, 8000, 5432, 6379, 3306, 9090):
        try:
            with held_port(port=candidate) as (port, _):
                listing = listening_sockets(port=port)
        except AssertionError:
            continue  # taken on this machine; try the next
        assert listing.sockets[0].service == registry.service_name(port, "tcp")
        assert listing.sockets[0].service is not None
        return
    pytest.skip("every candidate registered port is taken on this machine")


@pytest.mark.parametrize("port", [-1, 65536])
def test_bad_port(port: int) -> None:
    with pytest.raises(PortSpecError, match=str(port)):
        listening_sockets(port=port)


def test_bad_transport() -> None:
    with pytest.raises(PortSpecError, match="sctp"):
        listening_sockets(transports=("sctp",))


def test_every_exported_name_resolves() -> None:
    import portkit.client

    for name in portkit.client.__all__:
        assert getattr(portkit.client, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = portkit.client.no_such_name


def test_a_socket_shared_by_two_processes_names_both() -> None:
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=[sock.fileno()]
        )
        try:
            listing = listening_sockets(port=port)
        finally:
            child.kill()
            child.wait()
    assert sorted(s.pid or 0 for s in listing.sockets) == sorted([os.getpid(), child.pid])
    assert {(s.transport, s.address, s.port) for s in listing.sockets} == {
        ("tcp", "127.0.0.1", port)
    }


def test_without_sock_diag_psutil_gives_the_same_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portkit.client import _sockdiag

    with held_port("tcp,udp,tcp6,udp6") as (port, _):
        from_kernel = listening_sockets(port=port)
        raw = [s for s in _sockdiag.listening_from_kernel(("tcp", "udp")) if s[3] == port]
        assert len(raw) == 4  # the kernel answered itself (netlink sock_diag)

        def unavailable(transports: tuple[str, ...]) -> list[_sockdiag.RawSocket]:
            raise OSError(93, "Protocol not supported")  # as on a kernel without inet_diag

        monkeypatch.setattr(_sockdiag, "listening_from_kernel", unavailable)
        from_psutil = listening_sockets(port=port)
    assert len(from_kernel.sockets) == 4
    assert from_psutil == from_kernel


def _plain_owners(inodes: set[int]) -> dict[int, set[int]]:
    """The oracle for owners(): every process, every descriptor, each link by full path."""
    found: dict[int, set[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            descriptors = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                found.setdefault(int(link[8:-1]), set()).add(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc")
def test_owner_walk_agrees_with_a_plain_walk_of_every_descriptor() -> None:
    from portkit.client._sockdiag import listening_from_kernel, owners

    # A holder with few descriptors (stdio and its sockets), and this process with many.
    with held_port("tcp,udp") as (port, pid), socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        ours = {port, mine.getsockname()[1]}
        inodes = {s[4] for s in listening_from_kernel(("tcp", "udp")) if s[3] in ours}
        found = {inode: set(pids) for inode, pids in owners(inodes).items()}
        expected = _plain_owners(inodes)
    assert len(inodes) == 3
    assert found == expected
    assert {next(iter(pids)) for pids in found.values()} == {pid, os.getpid()}
