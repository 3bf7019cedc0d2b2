"""Batched raw sending and receiving, packet writing in place, names built meanwhile."""

from __future__ import annotations

import os
import secrets
import select
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit.scan._rawsend import (
    PACKET_SIZE,
    BatchReceiver,
    BatchSender,
    ipv4_header,
    sockaddr_in,
)
from portkit.scan._syn import _raw_socket
from portkit.scan._synwire import base_sum, syn_packet, write_syn

from .conftest import needs_root

addresses = st.binary(min_size=4, max_size=4)
ports = st.integers(0, 65535)
words = st.integers(0, 2**32 - 1)


@given(addresses, addresses, ports, ports, words, st.integers(0, 3))
def test_write_syn_matches_the_full_computation(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, slot: int
) -> None:
    # The incremental checksum written in place equals a straightforward full sum.
    buffer = bytearray(b"\xaa" * (4 * PACKET_SIZE))
    write_syn(buffer, slot * PACKET_SIZE + 20, base_sum(src, dst, sport), sport, dport, seq)
    start = slot * PACKET_SIZE + 20
    assert bytes(buffer[start : start + 20]) == syn_packet(src, dst, sport, dport, seq)
    # Nothing outside the 20 bytes was touched.
    assert buffer[:start] == b"\xaa" * start
    assert buffer[start + 20 :] == b"\xaa" * (len(buffer) - start - 20)


@given(addresses, addresses)
def test_ipv4_header_fields(src: bytes, dst: bytes) -> None:
    header = ipv4_header(src, dst)
    assert len(header) == 20
    assert header[0] == 0x45  # version 4, five 32-bit words
    assert int.from_bytes(header[2:4], "big") == PACKET_SIZE
    assert header[9] == socket.IPPROTO_TCP
    assert (header[12:16], header[16:20]) == (src, dst)


def test_sockaddr_in_layout() -> None:
    name = sockaddr_in("127.1.2.3")
    assert len(name) == 16
    assert struct.unpack("=H", name[:2])[0] == socket.AF_INET
    assert name[4:8] == bytes([127, 1, 2, 3])


def _free_ports(count: int) -> list[int]:
    """Ports with nothing listening on 127.0.0.1 a moment ago (bound, then closed)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _send_and_collect(
    count: int,
    batch_size: int,
    *,
    mmsg: bool,
    listener: int | None = None,
    here: bool = False,
) -> dict[int, int]:
    """SYNs to ``count`` closed ports (and ``listener``) of 127.0.0.1: port -> TCP flags.

    With ``here``, every other batch is sent by this process (``send_here``).
    """
    sport = 61000 + secrets.randbelow(4000)
    src = dst = socket.inet_aton("127.0.0.1")
    base = base_sum(src, dst, sport)
    targets = _free_ports(count) + ([listener] if listener is not None else [])
    sock = _raw_socket(sport)
    receiver = BatchReceiver(sock, count=7, use_recvmmsg=mmsg)  # 7: replies span reads
    sender = BatchSender(batch_size=batch_size, depth=2, use_sendmmsg=mmsg)
    answers: dict[int, int] = {}
    try:
        assert sender.batched is mmsg
        assert receiver.batched is mmsg
        pending = list(targets)
        submitted = 0
        batches = 0
        while pending or submitted:
            batch = sender.take()
            if batch is not None and pending:
                chunk, pending = pending[:batch_size], pending[batch_size:]
                for slot, port in enumerate(chunk):
                    offset = batch.packet_offset + slot * PACKET_SIZE
                    if batch.destinations[slot] != "127.0.0.1":
                        batch.set_destination(slot, "127.0.0.1", sockaddr_in("127.0.0.1"))
                        batch.view[offset : offset + 20] = ipv4_header(src, dst)
                    write_syn(batch.view, offset + 20, base, sport, port, port)
                if here and batches % 2 == 1:
                    sender.send_here(batch, len(chunk), chunk)
                else:
                    sender.submit(batch, len(chunk), chunk)
                submitted += 1
                batches += 1
                continue
            if batch is not None:
                sender.give_back(batch)
            reports = sender.finished()
            if not reports:
                ready, _, _ = select.select([sender.reports], [], [], 10)  # the next report
                assert ready, "the sender reported nothing within 10 s"
                reports = sender.finished()
            for report in reports:
                assert report.error is None
                assert report.unsent_from is None
                assert report.unreachable == []
                submitted -= 1
        while len(answers) < len(targets):
            got = receiver.read()
            if got == 0:  # every SYN gets an answer: wait for the next (a lost one fails)
                ready, _, _ = select.select([sock.fileno()], [], [], 10)
                assert ready, f"no reply within 10 s; have {sorted(answers)} of {targets}"
                continue
            for i in range(got):
                offset = i * receiver.stride
                their_port, our_port = struct.unpack_from("!HH", receiver.view, offset + 20)
                if our_port == sport:
                    answers[their_port] = receiver.view[offset + 33]
    finally:
        sender.close()
        receiver.close()
        sock.close()
    assert set(answers) == set(targets)
    return answers


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("here", [False, True], ids=["sender", "half-here"])
@pytest.mark.parametrize("mmsg", [True, False], ids=["mmsg", "one-by-one"])
@pytest.mark.parametrize(
    ("count", "batch_size"),
    [(1, 8), (8, 8), (9, 8), (23, 8), (40, 16)],
    ids=["one", "exactly-one-batch", "one-over", "several", "two-full"],
)
def test_batches_reach_the_kernel_and_replies_come_back(
    count: int, batch_size: int, mmsg: bool, here: bool
) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        listener = server.getsockname()[1]
        answers = _send_and_collect(count, batch_size, mmsg=mmsg, listener=listener, here=here)
    finally:
        server.close()
    assert answers.pop(listener) & 0x12 == 0x12  # SYN-ACK from the listener
    assert len(answers) == count
    assert all(flags & 0x04 for flags in answers.values())  # RST from each closed port


@needs_root
@pytest.mark.root
def test_sender_process_holds_none_of_the_scanners_descriptors() -> None:
    marker, peer = socket.socketpair()  # stands for the scanner's loop and sockets
    with marker, peer:
        info = os.fstat(marker.fileno())
        mark = (info.st_dev, info.st_ino)
        sender = BatchSender(batch_size=4, depth=2)
        try:
            # Ready signal: one batch sent and reported means the sender is past its start.
            batch = sender.take()
            assert batch is not None
            sender.submit(batch, 0, None)
            assert select.select([sender.reports], [], [], 10)[0]
            assert [report.tag for report in sender.finished()] == [None]
            held = set()
            for name in os.listdir(f"/proc/{sender._pid}/fd"):
                try:
                    found = os.stat(f"/proc/{sender._pid}/fd/{name}")
                except OSError:
                    continue
                held.add((found.st_dev, found.st_ino))
            assert held  # it holds its pipes and raw socket: the check sees something
            assert mark not in held
        finally:
            sender.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to split")
def test_cores_are_split_only_with_one_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    from portkit.scan import _rawsend

    allowed = os.sched_getaffinity(0)
    here = min(allowed)
    monkeypatch.setattr(_rawsend, "_current_cpu", lambda: here)
    monkeypatch.setattr(_rawsend, "_runnable_elsewhere", lambda: 0)
    assert _rawsend._split_cores() == (allowed, {here}, allowed - {here})
    # Other tasks want every other core: keeping to one core would only wait for it.
    monkeypatch.setattr(_rawsend, "_runnable_elsewhere", lambda: len(allowed) - 1)
    assert _rawsend._split_cores() is None
