"""The TCP SYN engine (``--syn``): raw IPv4 packets, stateless sending, keyed cookies.

Each probe is one SYN (RFC 9293 section 3.5) from a fixed source port outside the
kernel's ephemeral range. Its sequence number is a keyed MAC of the four-tuple
(BLAKE2b in keyed mode, RFC 7693, truncated to 32 bits), so a reply proves itself: a
SYN-ACK or RST whose acknowledgment number is that cookie plus one answers our probe
and nothing else (the scheme masscan and ZMap use). Nothing is remembered per probe
beyond the window of probes in flight.

A SYN-ACK means open, a RST closed, silence (after the retries) filtered. The kernel
has no socket for our source port, so it answers each SYN-ACK with a RST itself, which
closes the half-open connection on the target for us.

A classic BPF filter on the receiving socket keeps everything but SYN-ACKs and RSTs to
our source port in the kernel, so a busy host's traffic does not reach Python.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import heapq
import itertools
import os
import secrets
import socket
import struct
import sys
import time
from array import array
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import cast

from portkit._errors import PrivilegeError, TargetError
from portkit.scan._engine import EngineOptions, RateLimiter, _Congestion
from portkit.scan._model import CountKey, PortResult, PortState, ResultBatch
from portkit.scan._names import make_results
from portkit.scan._rawsend import (
    PACKET_SIZE,
    Batch,
    BatchReceiver,
    BatchSender,
    ipv4_header,
    sockaddr_in,
)
from portkit.scan._targets import Target

__all__ = [
    "SOURCE_PORT_RANGE",
    "CookieJar",
    "check_privilege",
    "fast_syn_packet",
    "parse_replies",
    "reply_verdict",
    "run_syn_engine",
    "syn_packet",
    "write_syn",
    "write_syn_batch",
]

# Above Linux's default ephemeral range (32768-60999), so the kernel never hands our
# source port to a connection of its own while we scan.
SOURCE_PORT_RANGE = (61000, 65535)
_SYN = 0x02
_RST = 0x04
_ACK = 0x10
_WINDOW = 1024
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_RECV_BUFFER = 32 << 20
_READ_CAP = 4096  # packets read per wake-up before yielding results
_BATCH = 512  # SYNs per sendmmsg call
# Every so many batches, this process sends one itself (BatchSender.send_here): the
# kernel's share of those probes then runs on this core, which the bulk reply checks
# leave idle part of the time. Measured on 2 cores: 1 in 8 took the sweep from about
# 0.50 s to 0.45 s, with 1 in 4 about the same then. Once closed ports were counted
# rather than made into results, this core had more room: 1 in 3 (and 1 in 4) took
# the sweep from 0.55x nmap -sS to 0.49x; 1 in 2 was worse again (0.54x).
_HERE_EVERY = 3
# An IPv4 header without options (20 bytes) then TCP: addresses, ports, seq, ack, flags.
_REPLY = struct.Struct("!12x8sHHIIxB")
# TCP from its first byte: ports, seq, ack, data offset, flags.
_TCP_START = struct.Struct("!HHIIBB")
CLOSED = PortState.CLOSED
_Found = tuple[Target, int, PortState, str, float | None]
_ADDRESS = attrgetter("address")
_HOSTNAME = attrgetter("hostname")
OPEN = PortState.OPEN
# parse_replies' verdict bytes -> state, and the reason each state is reported with.
_STATE_OF = {ord("c"): CLOSED, ord("o"): OPEN}
_REASON_OF = {CLOSED: "reset", OPEN: "syn-ack"}
_CLOSED_VERDICT = ord("c")


def check_privilege() -> None:
    """Raise :class:`PrivilegeError` unless raw sockets can be opened here."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except PermissionError:
        raise PrivilegeError(
            "--syn needs root or CAP_NET_RAW to send raw packets "
            "(run it with sudo, or drop --syn for the connect scan)"
        ) from None


class CookieJar:
    """Keyed 32-bit cookies for the four-tuples of one scan.

    cookie = MAC(key, source address, destination address, source port) XOR T[dport],
    where MAC is keyed BLAKE2b (RFC 7693) computed once per address pair and T a table
    of 65,536 random words drawn for this scan. Both halves are secret, so a reply that
    carries cookie + 1 in its acknowledgment field answers our SYN; the per-port part
    is a table look-up, which keeps the cost per packet low.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(16)
        table_seed = hashlib.blake2b(b"ports", key=self._key, digest_size=64).digest()
        # 65,536 words from a keyed stream: SHAKE-256 seeded by the scan key.
        stream = hashlib.shake_256(table_seed).digest(4 * 65536)
        self._table = array("I", stream) if array("I").itemsize == 4 else array("L", stream)
        self._pairs: dict[tuple[bytes, bytes, int], int] = {}

    def pair(self, src: bytes, dst: bytes, sport: int) -> int:
        """The per-address-pair half of the cookie."""
        value = self._pairs.get((src, dst, sport))
        if value is None:
            mac = hashlib.blake2b(
                src + dst + struct.pack("!H", sport), key=self._key, digest_size=4
            )
            value = int.from_bytes(mac.digest(), "big")
            self._pairs[(src, dst, sport)] = value
        return value

    def cookie(self, src: bytes, dst: bytes, sport: int, dport: int) -> int:
        """The sequence number of our SYN from (src, sport) to (dst, dport)."""
        return self.pair(src, dst, sport) ^ self._table[dport]

    @property
    def table(self) -> array[int]:
        return self._table


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def syn_packet(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    """A 20-byte TCP SYN header with its checksum (RFC 9293 section 3.1, pseudo-header)."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    words = struct.unpack("!16H", pseudo + header)
    checksum = ~_fold(sum(words)) & 0xFFFF
    return header[:16] + struct.pack("!H", checksum) + header[18:]


def _base_sum(src: bytes, dst: bytes, sport: int) -> int:
    """The checksum sum of everything in a SYN except the destination port and sequence."""
    return sum(struct.unpack("!16H", syn_packet_fields(src, dst, sport)))


def syn_packet_fields(src: bytes, dst: bytes, sport: int) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, 0, 0, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
    return src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20) + header


_PACK_SYN = struct.Struct("!HHIIBBHHH").pack
_PACK_HEADER_INTO = struct.Struct("!HHIIBBHHH").pack_into


def fast_syn_packet(base: int, sport: int, dport: int, seq: int) -> bytes:
    """:func:`syn_packet` from a precomputed :func:`_base_sum` (same bytes, less work)."""
    total = base + dport + (seq >> 16) + (seq & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return _PACK_SYN(sport, dport, seq, 0, 5 << 4, _SYN, _WINDOW, ~total & 0xFFFF, 0)


def write_syn(
    buffer: memoryview | bytearray, offset: int, base: int, sport: int, dport: int, seq: int
) -> None:
    """Write :func:`syn_packet`'s bytes into ``buffer`` at ``offset`` (no new object).

    ``base`` is :func:`_base_sum` of the addresses and source port; adding the
    destination port and the sequence number's two halves completes the one's
    complement sum (RFC 1071), so each packet costs a few additions, not a full sum.
    """
    total = base + dport + (seq >> 16) + (seq & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    _PACK_HEADER_INTO(
        buffer, offset, sport, dport, seq, 0, 5 << 4, _SYN, _WINDOW, ~total & 0xFFFF, 0
    )


# Bulk work on a batch of packets: each of n values sits in a 64-bit lane of one
# Python int, so XOR, addition and masking run over the whole batch at C speed. Values
# stay below 2**33, so no lane ever carries into the next.
_LANES: dict[int, tuple[int, int, int]] = {}
_BULK_MIN = 2  # below this, the per-packet path is as quick
_SYN_TEMPLATE = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
_SYN_ACK = _SYN | _ACK
# A reply's flags byte -> b"c" (RST: closed), b"o" (SYN-ACK: open) or b"x" (neither).
_VERDICTS = bytes(
    ord("c") if f & _RST else ord("o") if f & _SYN_ACK == _SYN_ACK else ord("x") for f in range(256)
)


def _lanes(n: int) -> tuple[int, int, int]:
    """(1 in each of n lanes, 0xFFFF in each, 0xFFFFFFFF in each), cached by n."""
    lanes = _LANES.get(n)
    if lanes is None:
        ones = int.from_bytes((b"\x01" + bytes(7)) * n, "little")
        lanes = (ones, ones * 0xFFFF, ones * 0xFFFFFFFF)
        _LANES[n] = lanes
    return lanes


def _lanes_of(values: Sequence[int]) -> int:
    """One int holding ``values`` in 64-bit lanes, the last value in the lowest lane.

    In that order, ``to_bytes(8 * n, "big")`` puts value ``i`` at bytes ``8 i`` to
    ``8 i + 7``, in network byte order: ready for stride slicing into packets.
    """
    return int.from_bytes(array("Q", values[::-1]).tobytes(), sys.byteorder)


def _gather(table: Sequence[int], ports: Sequence[int]) -> Sequence[int]:
    """``[table[p] for p in ports]`` in one C call (``ports`` has at least two)."""
    return cast(tuple[int, ...], itemgetter(*ports)(table))


def write_syn_batch(
    buffer: memoryview | bytearray,
    offset: int,
    header: bytes,
    base: int,
    sport: int,
    ports: Sequence[int],
    pair: int,
    table: Sequence[int],
) -> None:
    """Write one packet per port (``header`` then :func:`write_syn`'s SYN) from ``offset``.

    Packet ``i``, at ``offset + i * PACKET_SIZE``, is the IPv4 ``header`` and the SYN
    to ``ports[i]`` with sequence ``pair ^ table[ports[i]]``: the same bytes as
    :func:`write_syn`, computed for the whole batch at once. The checksum is the one's
    complement sum of RFC 1071 (RFC 9293 section 3.1), folded lane by lane.
    """
    n = len(ports)
    if n < _BULK_MIN:
        for i, port in enumerate(ports):
            at = offset + i * PACKET_SIZE
            buffer[at : at + 20] = header
            write_syn(buffer, at + 20, base, sport, port, pair ^ table[port])
        return
    ones, m16, _m32 = _lanes(n)
    port_lanes = _lanes_of(ports)
    seq_lanes = _lanes_of(_gather(table, ports)) ^ (pair * ones)
    total = base * ones + port_lanes + ((seq_lanes >> 16) & m16) + (seq_lanes & m16)
    total = (total & m16) + ((total >> 16) & m16)
    total = (total & m16) + ((total >> 16) & m16)
    checksums = ((total & m16) ^ m16).to_bytes(8 * n, "big")
    seqs = seq_lanes.to_bytes(8 * n, "big")
    port_bytes = port_lanes.to_bytes(8 * n, "big")
    step = PACKET_SIZE
    packets = bytearray((header + sport.to_bytes(2, "big") + _SYN_TEMPLATE[2:]) * n)
    packets[22::step] = port_bytes[6::8]  # destination port (RFC 9293 section 3.1)
    packets[23::step] = port_bytes[7::8]
    for i in range(4):  # sequence number
        packets[24 + i :: step] = seqs[4 + i :: 8]
    packets[36::step] = checksums[6::8]
    packets[37::step] = checksums[7::8]
    buffer[offset : offset + n * step] = packets


def reply_verdict(
    view: memoryview,
    offset: int,
    stride: int,
    sport: int,
    pairs: Mapping[bytes, int],
    table: Sequence[int],
) -> tuple[bytes, int, PortState] | None:
    """Check one reply at ``offset``: (addresses, their port, state), or None: not ours.

    Ours means: a TCP segment to ``sport`` from an address pair of ``pairs``, whose
    acknowledgment is its cookie plus one, with RST (closed) or SYN and ACK (open).
    """
    # The IP header says how much of the slot is this datagram (the rest may be an
    # older, longer one's): at least up to the TCP flags (RFC 791 section 3.1).
    if view[offset] == 0x45:
        if view[offset + 2] == 0 and view[offset + 3] < 34:
            return None
        addresses, their_port, our_port, _seq, ack, flags = _REPLY.unpack_from(view, offset)
    else:  # IPv4 options: rare, take the long way
        ihl = (view[offset] & 0x0F) * 4
        length = min(stride, (view[offset + 2] << 8) | view[offset + 3])
        if view[offset] >> 4 != 4 or ihl < 20 or length < ihl + 14:
            return None
        addresses = bytes(view[offset + 12 : offset + 20])
        their_port, our_port, _seq, ack, _off, flags = _TCP_START.unpack_from(view, offset + ihl)
    if our_port != sport:
        return None
    pair = pairs.get(addresses)
    if pair is None or (ack - 1) & 0xFFFFFFFF != pair ^ table[their_port]:
        return None
    if flags & _RST:
        return addresses, their_port, CLOSED
    if flags & _SYN_ACK == _SYN_ACK:
        return addresses, their_port, OPEN
    return None


def parse_replies(
    view: memoryview,
    count: int,
    stride: int,
    sport: int,
    pairs: Mapping[bytes, int],
    table: Sequence[int],
) -> tuple[bytes, list[int], bytes] | None:
    """Check a batch of replies at once: (addresses, their ports, verdicts), or None.

    Datagram ``i`` starts at ``i * stride`` in ``view``. The batch passes when every
    one is an IPv4 datagram without options (RFC 791 section 3.1) long enough for the
    TCP flags, all from one address pair (``pairs`` maps their 8 address bytes to the
    pair half of the cookie), all to ``sport``, each a RST or a SYN-ACK, and each
    acknowledging its own cookie plus one (RFC 9293 section 3.4). Verdicts: one byte
    per reply, ``c`` (RST: closed) or ``o`` (SYN-ACK: open). None means some reply
    fails one of these: the caller then checks the batch packet by packet, which
    decides each one alone. Duplicates and replies to probes no longer outstanding
    are the caller's to check.
    """
    n = count
    if n < _BULK_MIN or stride % 4:
        return None
    step = stride // 4
    with view[: n * stride] as batch, batch.cast("I") as words:

        def column(at: int) -> bytes:
            return batch[at::stride].tobytes()

        def word_column(at: int) -> bytes:
            # Bytes at..at+3 of every datagram, in order: one C slice, not four.
            return words[at // 4 :: step].tobytes()

        if column(0) != b"\x45" * n:
            return None
        length_high = column(2)
        if length_high == bytes(n):
            if min(column(3)) < 34:
                return None
        elif 0 in length_high:
            return None  # mixed lengths: rare; packet by packet
        ports = array("H", word_column(20))  # their port, our port; per datagram
        if sys.byteorder == "little":
            ports.byteswap()
        if ports[1::2] != array("H", (sport,)) * n:
            return None
        addresses = batch[12:20].tobytes()
        if word_column(12) != addresses[:4] * n or word_column(16) != addresses[4:] * n:
            return None
        pair = pairs.get(addresses)
        if pair is None:
            return None
        verdicts = column(33).translate(_VERDICTS)
        if b"x" in verdicts:
            return None
        port_list = ports[0::2].tolist()
        ones, _m16, m32 = _lanes(n)
        expected = (((_lanes_of(_gather(table, port_list)) ^ (pair * ones)) + ones) & m32).to_bytes(
            8 * n, "big"
        )
        # The low four bytes of each 8-byte lane: the acknowledgment numbers expected.
        with memoryview(expected).cast("I") as lanes:
            if word_column(28) != lanes[1::2].tobytes():
                return None
    return addresses, port_list, verdicts


def _bpf_program(sport: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF: accept TCP segments to ``sport`` with RST, or with SYN and ACK."""
    ldh_ind, ldb_ind, ldxb_msh = 0x48, 0x50, 0xB1
    jeq_k, jset_k, and_k, ret_k = 0x15, 0x45, 0x54, 0x06
    return [
        (ldxb_msh, 0, 0, 0),  # X = 4 * (IP header length)
        (ldh_ind, 0, 0, 2),  # A = TCP destination port
        (jeq_k, 0, 6, sport),  # not ours: drop
        (ldb_ind, 0, 0, 13),  # A = TCP flags
        (jset_k, 3, 0, _RST),  # RST: accept
        (and_k, 0, 0, _SYN | _ACK),
        (jeq_k, 1, 0, _SYN | _ACK),  # SYN-ACK: accept
        (ret_k, 0, 0, 0),
        (ret_k, 0, 0, 0xFFFF),
        (ret_k, 0, 0, 0),
    ]


def _attach_filter(sock: socket.socket, sport: int) -> None:
    program = _bpf_program(sport)
    # The kernel copies the program during setsockopt; buf only has to live until then.
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _source_for(dst: str) -> str:
    """The address the kernel's routing would send from to reach ``dst``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((dst, 9))  # no packet is sent: connect only picks a route
        return str(probe.getsockname()[0])
    finally:
        probe.close()


def _raw_socket(sport: int) -> socket.socket:
    check_privilege()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECV_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
    _attach_filter(sock, sport)
    sock.setblocking(False)
    while True:  # drop what arrived before the filter was in place
        try:
            sock.recv(65535)
        except BlockingIOError:
            break
    return sock


async def run_syn_engine(
    probes: Iterator[tuple[Target, int]],
    options: EngineOptions,
    names: Sequence[str | None] | None = None,
    *,
    batch_size: int = _BATCH,
    use_mmsg: bool = True,
    here_every: int = _HERE_EVERY,
    count_after: int | None = None,
) -> AsyncGenerator[list[PortResult], None]:
    """Send a SYN to every (target, port) of ``probes``; yield results in batches.

    With ``count_after``, once that many closed ports of a host have been yielded as
    results, its further closed ports are yielded as counts (``ResultBatch.counts``)
    instead: the CLI's reports only count them.

    Packets are built here and sent by a :class:`BatchSender` process (``sendmmsg``), so
    the kernel's part of each probe runs beside the Python that reads the replies;
    one batch in ``here_every`` is sent from this process instead (0: none).
    A probe's timeout starts when its batch has left, not when it was built.
    """
    jar = CookieJar()
    table = jar.table
    sport = SOURCE_PORT_RANGE[0] + secrets.randbelow(
        SOURCE_PORT_RANGE[1] - SOURCE_PORT_RANGE[0] + 1
    )
    sock = _raw_socket(sport)
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    try:
        sender = BatchSender(batch_size=batch_size, use_sendmmsg=use_mmsg)
    except BaseException:
        sock.close()
        raise
    ceiling = max(16, options.concurrency or 65536)
    congestion = _Congestion(ceiling)
    limiter = RateLimiter(options.rate)
    retries = max(0, options.retries)
    base_timeout = max(0.001, options.timeout)
    # (reply's addresses: target's then ours, port) -> (target, attempt, sent at, answers)
    outstanding: dict[tuple[bytes, int], tuple[Target, int, float, int]] = {}
    # (deadline, sequence, attempt, keys of one batch): a heap, earliest first.
    deadlines: list[tuple[float, int, int, list[tuple[bytes, int]]]] = []
    sequence = itertools.count()
    turns = itertools.count()
    again: deque[tuple[Target, int, int]] = deque()
    # address -> (packed, pair half of the cookie, checksum base, IPv4 header, sockaddr)
    sources: dict[str, tuple[bytes, int, int, bytes, bytes]] = {}
    # A reply's source and destination addresses (8 bytes) -> the pair half of its cookie.
    reply_pairs: dict[bytes, int] = {}
    # Answers found, until they become PortResults: (target, port, state, reason, rtt).
    results: list[_Found] = []
    append = results.append
    # With count_after: closed ports counted rather than made, and how many were made.
    counts: dict[CountKey, int] = {}
    made_closed: dict[str, int] = {}
    table_names = names  # the names of the ports
    answers = 0
    exhausted = False
    fd = sock.fileno()
    receiver = BatchReceiver(sock, use_recvmmsg=use_mmsg)
    read = receiver.read
    view, stride = receiver.view, receiver.stride
    check = reply_verdict
    # The previous target and its addressing: probes come host by host, mostly.
    last_target: Target | None = None
    last_known: tuple[bytes, int, int, bytes, bytes] | None = None

    def finish(target: Target, port: int, state: PortState, reason: str, rtt: float | None) -> None:
        append((target, port, state, reason, rtt))

    def results_of(found: list[_Found], table: Sequence[str | None] | None) -> list[PortResult]:
        if not found:
            return []
        targets, ports, states, reasons, rtts = zip(*found, strict=True)
        return make_results(
            "tcp",
            map(_ADDRESS, targets),
            ports,
            states,
            reasons,
            map(_HOSTNAME, targets),
            repeat(None) if table is None else map(table.__getitem__, ports),
            rtts,
        )

    def addressing(target: Target) -> tuple[bytes, int, int, bytes, bytes]:
        known = sources.get(target.address)
        if known is None:
            if target.family != socket.AF_INET:
                raise TargetError(f"--syn scans IPv4 only; {target.address!r} is IPv6 (drop --syn)")
            dst = socket.inet_aton(target.address)
            src = socket.inet_aton(_source_for(target.address))
            pair = jar.pair(src, dst, sport)
            header = ipv4_header(src, dst)
            # A reply comes from dst to src: its address bytes, in order, are dst + src.
            addresses = dst + src
            known = (
                addresses,
                pair,
                _base_sum(src, dst, sport),
                header,
                sockaddr_in(target.address),
            )
            sources[target.address] = known
            reply_pairs[addresses] = pair
        return known

    def bulk(count: int, now: float) -> bool:
        """Take a whole batch of replies at once; False (nothing done): go packet by packet.

        Same outcome as the packet-by-packet loop when every reply answers a distinct
        outstanding probe with its cookie; anything else is left to that loop.
        """
        nonlocal answers
        parsed = parse_replies(view, count, stride, sport, reply_pairs, table)
        if parsed is None:
            return False
        addresses, ports, verdicts = parsed
        keys = list(zip(repeat(addresses, count), ports, strict=True))
        found = list(map(outstanding.get, keys))
        if None in found or len(set(ports)) != count:
            return False
        entries = cast(list[tuple[Target, int, float, int]], found)
        for key in keys:
            del outstanding[key]
        answers += count
        if congestion.window < ceiling:
            congestion.on_answers(count)
        if count_after is not None:
            # One address pair per batch: one host. Past count_after made closed ports,
            # its closed ports are only counted.
            address = entries[0][0].address
            closed = verdicts.count(_CLOSED_VERDICT)
            made = made_closed.get(address, 0)
            if made >= count_after and closed:
                counted = (address, "tcp", CLOSED, "reset")
                counts[counted] = counts.get(counted, 0) + closed
                if closed == count:
                    return True
                results.extend(
                    [
                        (entry[0], port, OPEN, "syn-ack", now - entry[2])
                        for entry, port, v in zip(entries, ports, verdicts, strict=True)
                        if v != _CLOSED_VERDICT
                    ]
                )
                return True
            made_closed[address] = made + closed
        states = [_STATE_OF[v] for v in verdicts]
        results.extend(
            [
                (entry[0], port, state, _REASON_OF[state], now - entry[2])
                for entry, port, state in zip(entries, ports, states, strict=True)
            ]
        )
        return True

    def receive(now: float) -> None:
        nonlocal answers
        got = 0
        while got < _READ_CAP and (count := read()):
            got += count
            if count >= _BULK_MIN and bulk(count, now):
                continue
            for offset in range(0, count * stride, stride):
                verdict = check(view, offset, stride, sport, reply_pairs, table)
                if verdict is None:
                    continue  # not an answer to our SYN
                addresses, their_port, state = verdict
                entry = outstanding.pop((addresses, their_port), None)
                if entry is None:
                    continue  # late, duplicate, or not ours
                answers += 1
                if congestion.window < ceiling:
                    congestion.on_answer()
                append((entry[0], their_port, state, _REASON_OF[state], now - entry[2]))

    def collect() -> None:
        """Start the timeouts of the batches that left; handle what could not be sent."""
        for report in sender.finished():
            attempt, keys = cast(tuple[int, list[tuple[bytes, int]]], report.tag)
            if report.error is not None:
                raise report.error
            for slot in report.unreachable:
                entry = outstanding.pop(keys[slot], None)
                if entry is not None and entry[1] == attempt:
                    finish(entry[0], keys[slot][1], PortState.FILTERED, "host-unreach", None)
            if report.unsent_from is not None:
                # The kernel's queue stayed full: these never left; send them again first.
                for key in reversed(keys[report.unsent_from :]):
                    entry = outstanding.pop(key, None)
                    if entry is not None:
                        again.appendleft((entry[0], key[1], attempt))
                keys = keys[: report.unsent_from]
            deadline = report.at + base_timeout * (2**attempt)
            heapq.heappush(deadlines, (deadline, next(sequence), attempt, keys))

    def expire(now: float) -> None:
        while deadlines and deadlines[0][0] <= now:
            _deadline, _seq, attempt, keys = heapq.heappop(deadlines)
            for probe_key in keys:
                entry = outstanding.get(probe_key)
                if entry is None or entry[1] != attempt:
                    continue
                del outstanding[probe_key]
                target, _attempt, _sent, answers_then = entry
                congestion.on_loss(now, base_timeout, answers > answers_then)
                if attempt < retries:
                    again.append((target, probe_key[1], attempt + 1))
                else:
                    finish(target, probe_key[1], PortState.FILTERED, "no-response", None)

    def fill(batch: Batch, wanted: int, now: float) -> tuple[int, list[tuple[bytes, int]]]:
        """Build up to ``wanted`` SYNs into ``batch``; all of one attempt."""
        nonlocal exhausted, last_target, last_known
        keys: list[tuple[bytes, int]] = []
        attempt = again[0][2] if again else 0
        destinations = batch.destinations
        data = batch.view
        first = batch.packet_offset
        write = write_syn
        todo: list[tuple[Target, int]] = []
        while again and len(todo) < wanted and again[0][2] == attempt:
            target, port, _attempt = again.popleft()
            todo.append((target, port))
        if attempt == 0 and not exhausted and len(todo) < wanted:
            fresh = list(itertools.islice(probes, wanted - len(todo)))
            if len(fresh) < wanted - len(todo):
                exhausted = True  # the generator has ended
            todo += fresh
        if len(todo) >= _BULK_MIN:
            targets = [t for t, _port in todo]
            target = targets[0]
            if targets.count(target) == len(targets):  # one target (identity first)
                ports = [port for _target, port in todo]
                if target is not last_target or last_known is None:
                    last_known = addressing(target)
                    last_target = target
                addresses, pair, base, header, name = last_known
                write_syn_batch(data, first, header, base, sport, ports, pair, table)
                if destinations[: len(ports)].count(target.address) != len(ports):
                    for slot in range(len(ports)):
                        if destinations[slot] != target.address:
                            batch.set_destination(slot, target.address, name)
                keys = list(zip(repeat(addresses, len(ports)), ports, strict=True))
                outstanding.update(zip(keys, repeat((target, attempt, now, answers))))
                return attempt, keys
        for count, (target, port) in enumerate(todo):
            if target is not last_target or last_known is None:
                last_known = addressing(target)
                last_target = target
            addresses, pair, base, header, name = last_known
            offset = first + count * PACKET_SIZE
            if destinations[count] != target.address:
                batch.set_destination(count, target.address, name)
                data[offset : offset + 20] = header
            write(data, offset + 20, base, sport, port, pair ^ table[port])
            key = (addresses, port)
            outstanding[key] = (target, attempt, now, answers)
            keys.append(key)
        return attempt, keys

    def launch(now: float) -> float | None:
        while True:
            room = congestion.size - len(outstanding)
            if room <= 0 or (exhausted and not again):
                break
            batch = sender.take()
            if batch is None:
                break  # every batch is with the sender: its wake-up brings us back
            allowed = limiter.take(min(room, batch.size))
            attempt, keys = fill(batch, allowed, now) if allowed else (0, [])
            if not keys:
                sender.give_back(batch)
                break
            if here_every and next(turns) % here_every == 0:
                sender.send_here(batch, len(keys), (attempt, keys))
                collect()
            else:
                sender.submit(batch, len(keys), (attempt, keys))
        wait = limiter.wait_time()
        return wait if wait > 0 else None

    loop.add_reader(fd, readable.set)
    loop.add_reader(sender.reports, readable.set)
    try:
        while True:
            now = time.monotonic()
            receive(now)
            collect()
            expire(now)
            rate_wait = launch(now)
            done = exhausted and not again and not outstanding
            if results or counts:
                found, results = results, []
                append = results.append
                if count_after is None:
                    yield results_of(found, table_names)
                else:
                    counted, counts = counts, {}
                    yield ResultBatch(results_of(found, table_names), counted)
                await asyncio.sleep(0)
                continue
            if done:
                return
            waits = [rate_wait] if rate_wait is not None else []
            if deadlines:
                waits.append(max(0.0, deadlines[0][0] - time.monotonic()))
            if not waits and again:
                waits.append(0.001)
            readable.clear()
            try:
                async with asyncio.timeout(min(waits) if waits else None):
                    await readable.wait()
            except TimeoutError:
                pass
    finally:
        loop.remove_reader(fd)
        loop.remove_reader(sender.reports)
        sender.close()
        receiver.close()
        sock.close()


if os.name != "posix":  # pragma: no cover - raw sockets as used here are Linux's
    raise ImportError("the SYN engine needs Linux raw sockets")
