"""SYN probes on the wire (sans-io): keyed cookies, SYN segments, replies checked.

Each probe is one SYN (RFC 9293 section 3.5). Its sequence number is a keyed MAC of
the four-tuple (BLAKE2b in keyed mode, RFC 7693, truncated to 32 bits), so a reply
proves itself: a SYN-ACK or RST whose acknowledgment number is that cookie plus one
answers our probe and nothing else (the scheme masscan and ZMap use).

Everything here turns values into bytes and bytes into verdicts, one packet at a time
and a batch at a time (the bulk forms are the speed tricks; each has a test against
the per-packet form). The SYN engine (``_syn``) moves the bytes.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import cast

from portkit.results import PortState
from portkit.scan._rawsend import PACKET_SIZE

__all__ = [
    "BULK_MIN",
    "CLOSED_VERDICT",
    "REASON_OF",
    "RST",
    "STATE_OF",
    "SYN_ACK",
    "TCP_START",
    "CookieJar",
    "base_sum",
    "base_sum6",
    "fast_syn_packet",
    "parse_replies",
    "reply_verdict",
    "syn_packet",
    "write_syn",
    "write_syn_batch",
]

_SYN = 0x02
RST = 0x04  # TCP flags (RFC 9293 section 3.1)
_ACK = 0x10
SYN_ACK = _SYN | _ACK
_WINDOW = 1024
# An IPv4 header without options (20 bytes) then TCP: addresses, ports, seq, ack, flags.
_REPLY = struct.Struct("!12x8sHHIIxB")
# TCP from its first byte: ports, seq, ack, data offset, flags.
TCP_START = struct.Struct("!HHIIBB")
CLOSED = PortState.CLOSED
OPEN = PortState.OPEN
# parse_replies' verdict bytes -> state, and the reason each state is reported with.
STATE_OF = {ord("c"): CLOSED, ord("o"): OPEN}
REASON_OF = {CLOSED: "reset", OPEN: "syn-ack"}
CLOSED_VERDICT = ord("c")


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


def base_sum(src: bytes, dst: bytes, sport: int) -> int:
    """The checksum sum of everything in a SYN except the destination port and sequence."""
    return sum(struct.unpack("!16H", syn_packet_fields(src, dst, sport)))


def syn_packet_fields(src: bytes, dst: bytes, sport: int) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, 0, 0, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
    return src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20) + header


_PACK_SYN = struct.Struct("!HHIIBBHHH").pack
_PACK_HEADER_INTO = struct.Struct("!HHIIBBHHH").pack_into


def fast_syn_packet(base: int, sport: int, dport: int, seq: int) -> bytes:
    """:func:`syn_packet` from a precomputed :func:`base_sum` (same bytes, less work)."""
    total = base + dport + (seq >> 16) + (seq & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return _PACK_SYN(sport, dport, seq, 0, 5 << 4, _SYN, _WINDOW, ~total & 0xFFFF, 0)


def write_syn(
    buffer: memoryview | bytearray, offset: int, base: int, sport: int, dport: int, seq: int
) -> None:
    """Write :func:`syn_packet`'s bytes into ``buffer`` at ``offset`` (no new object).

    ``base`` is :func:`base_sum` of the addresses and source port; adding the
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
BULK_MIN = 2  # below this, the per-packet path is as quick
_SYN_TEMPLATE = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
# A reply's flags byte -> b"c" (RST: closed), b"o" (SYN-ACK: open) or b"x" (neither).
_VERDICTS = bytes(
    ord("c") if f & RST else ord("o") if f & SYN_ACK == SYN_ACK else ord("x") for f in range(256)
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
    if n < BULK_MIN:
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
        their_port, our_port, _seq, ack, _off, flags = TCP_START.unpack_from(view, offset + ihl)
    if our_port != sport:
        return None
    pair = pairs.get(addresses)
    if pair is None or (ack - 1) & 0xFFFFFFFF != pair ^ table[their_port]:
        return None
    if flags & RST:
        return addresses, their_port, CLOSED
    if flags & SYN_ACK == SYN_ACK:
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
    if n < BULK_MIN or stride % 4:
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


def base_sum6(src: bytes, dst: bytes, sport: int) -> int:
    """:func:`base_sum` for IPv6: the pseudo-header of RFC 8200 section 8.1.

    Source, destination, the upper-layer length (20, as 32 bits) and the next
    header (TCP, after three zero bytes); its 16-bit words sum as IPv4's do.
    """
    header = struct.pack("!HHIIBBHHH", sport, 0, 0, 0, 5 << 4, _SYN, _WINDOW, 0, 0)
    pseudo = src + dst + struct.pack("!IxxxB", 20, socket.IPPROTO_TCP)
    return sum(struct.unpack(f"!{(len(pseudo) + 20) // 2}H", pseudo + header))
