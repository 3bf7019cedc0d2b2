"""The SYN engine's bulk paths agree with its packet-by-packet ones."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from portkit.scan._model import PortResult, PortState
from portkit.scan._names import make_results
from portkit.scan._rawsend import PACKET_SIZE, ipv4_header
from portkit.scan._synwire import (
    BULK_MIN,
    CookieJar,
    base_sum,
    parse_replies,
    reply_verdict,
    write_syn,
    write_syn_batch,
)

JAR = CookieJar(key=bytes(range(16)))
OURS = socket.inet_aton("127.0.0.1")
THEIRS = socket.inet_aton("127.0.0.9")
OTHER = socket.inet_aton("127.0.0.10")
SPORT = 61234
PAIRS = {
    THEIRS + OURS: JAR.pair(OURS, THEIRS, SPORT),
    OTHER + OURS: JAR.pair(OURS, OTHER, SPORT),
}
STRIDE = 128
RST_ACK, SYN_ACK = 0x14, 0x12

ports = st.integers(0, 65535)


@given(
    st.lists(ports, min_size=0, max_size=600),
    st.integers(0, 2**32 - 1),
    st.integers(1, 65535),
    st.binary(min_size=4, max_size=4),
)
def test_write_syn_batch_writes_write_syn_bytes(
    port_list: list[int], pair: int, sport: int, dst: bytes
) -> None:
    base = base_sum(OURS, dst, sport)
    header = ipv4_header(OURS, dst)
    bulk = bytearray(b"\xee" * (3 + len(port_list) * PACKET_SIZE + 5))
    one_by_one = bytearray(bulk)
    write_syn_batch(bulk, 3, header, base, sport, port_list, pair, JAR.table)
    for i, port in enumerate(port_list):
        at = 3 + i * PACKET_SIZE
        one_by_one[at : at + 20] = header
        write_syn(one_by_one, at + 20, base, sport, port, pair ^ JAR.table[port])
    assert bulk == one_by_one


def reply(
    port: int,
    *,
    flags: int = RST_ACK,
    src: bytes = THEIRS,
    dst: bytes = OURS,
    sport: int = SPORT,
    ack_delta: int = 1,
    length: int = 40,
    options: int = 0,
) -> bytes:
    """A reply from ``port`` of ``src`` to our ``sport``; ``ack_delta`` 1 is the right cookie."""
    pair = PAIRS.get(src + dst, 0)
    ack = ((pair ^ JAR.table[port]) + ack_delta) & 0xFFFFFFFF
    ihl = 5 + options
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 0, 0, 64, socket.IPPROTO_TCP, 0, src, dst
    )
    ip += b"\x01" * (4 * options)  # NOP options
    tcp = struct.pack("!HHIIBBHHH", port, sport, 7, ack, 0x50, flags, 0, 0, 0)
    return ip + tcp


# One reply each: good ones (closed or open), and the ways one can be wrong.
good = st.builds(reply, ports, flags=st.sampled_from([RST_ACK, SYN_ACK, 0x04, 0x16]))
odd = st.one_of(
    st.builds(reply, ports, ack_delta=st.integers(0, 2**32 - 1)),  # forged or mismatched
    st.builds(reply, ports, flags=st.integers(0, 255)),
    st.builds(reply, ports, src=st.sampled_from([OTHER, OURS])),  # another (or no) pair
    st.builds(reply, ports, sport=st.integers(0, 65535)),
    st.builds(reply, ports, length=st.integers(0, 60)),  # truncated
    st.builds(reply, ports, options=st.integers(1, 10)),
    st.binary(min_size=0, max_size=STRIDE),  # anything, other protocols included
)


def batch_of(packets: list[bytes]) -> memoryview:
    buffer = bytearray(b"\xaa" * (STRIDE * max(1, len(packets))))
    for i, packet in enumerate(packets):
        buffer[i * STRIDE : i * STRIDE + len(packet)] = packet
    return memoryview(buffer)


def verdicts_one_by_one(view: memoryview, count: int) -> list[tuple[bytes, int, PortState] | None]:
    return [reply_verdict(view, i * STRIDE, STRIDE, SPORT, PAIRS, JAR.table) for i in range(count)]


def bulk_may_decline(packets: list[bytes], view: memoryview) -> bool:
    """Whether the batch is one the bulk path leaves to the packet-by-packet one."""
    singles = verdicts_one_by_one(view, len(packets))
    return (
        len(packets) < BULK_MIN
        or None in singles  # a reply packet by packet rejects too
        or len({s[0] for s in singles if s is not None}) > 1  # replies from several pairs
        or any(view[i * STRIDE] != 0x45 for i in range(len(packets)))  # IP options
    )


def same_as_one_by_one(packets: list[bytes]) -> bool:
    """Check parse_replies against reply_verdict; True when the batch passed in bulk.

    Declining is checked too: the bulk path may leave a batch to the packet-by-packet
    one only for a reason :func:`bulk_may_decline` names, so a bulk path that declined
    everything would fail here rather than pass unexercised.
    """
    view = batch_of(packets)
    parsed = parse_replies(view, len(packets), STRIDE, SPORT, PAIRS, JAR.table)
    singles = verdicts_one_by_one(view, len(packets))
    if parsed is None:
        assert bulk_may_decline(packets, view), f"declined a batch it covers: {singles}"
        return False
    addresses, port_list, verdicts = parsed
    states = {ord("c"): PortState.CLOSED, ord("o"): PortState.OPEN}
    assert singles == [
        (addresses, port, states[v]) for port, v in zip(port_list, verdicts, strict=True)
    ]
    return True


@given(st.lists(st.one_of(good, odd), min_size=0, max_size=40))
def test_parse_replies_agrees_with_reply_verdict(packets: list[bytes]) -> None:
    accepted = same_as_one_by_one(packets)
    assert accepted == (not bulk_may_decline(packets, batch_of(packets)))


@given(st.lists(good, min_size=2, max_size=300), st.data())
def test_parse_replies_takes_good_batches_and_refuses_one_bad_reply(
    packets: list[bytes], data: st.DataObject
) -> None:
    assert same_as_one_by_one(packets)
    spoiled = list(packets)
    spoiled[data.draw(st.integers(0, len(packets) - 1))] = data.draw(
        st.builds(reply, ports, ack_delta=st.sampled_from([0, 2, 2**31, 2**32 - 1]))
    )
    assert not same_as_one_by_one(spoiled)


def test_parse_replies_states_and_ports() -> None:
    packets = [reply(80, flags=SYN_ACK), reply(81), reply(65535), reply(0, flags=0x04)]
    view = batch_of(packets)
    assert parse_replies(view, 4, STRIDE, SPORT, PAIRS, JAR.table) == (
        THEIRS + OURS,
        [80, 81, 65535, 0],
        b"occc",
    )
    # A reply from another pair in the batch: packet by packet instead.
    mixed = batch_of([*packets, reply(80, src=OTHER)])
    assert parse_replies(mixed, 5, STRIDE, SPORT, PAIRS, JAR.table) is None
    assert verdicts_one_by_one(mixed, 5)[4] == (OTHER + OURS, 80, PortState.CLOSED)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["127.0.0.1", "::1", "10.1.2.3"]),
            ports,
            st.sampled_from(list(PortState)),
            st.sampled_from(["reset", "syn-ack", "no-response"]),
            st.one_of(st.none(), st.text(max_size=5)),
            st.one_of(st.none(), st.sampled_from(["http", "ssh"])),
            st.one_of(st.none(), st.floats(0, 10)),
        ),
        max_size=50,
    ),
    st.sampled_from(["tcp", "udp"]),
)
def test_make_results_makes_what_the_constructor_makes(
    rows: list[tuple[str, int, PortState, str, str | None, str | None, float | None]],
    transport: str,
) -> None:
    hosts = [r[0] for r in rows]
    port_list = [r[1] for r in rows]
    states = [r[2] for r in rows]
    reasons = [r[3] for r in rows]
    hostnames = [r[4] for r in rows]
    expected = [r[5] for r in rows]
    rtts = [r[6] for r in rows]
    fast = make_results(transport, hosts, port_list, states, reasons, hostnames, expected, rtts)
    built = make_results(
        transport, hosts, port_list, states, reasons, hostnames, expected, rtts, fast=False
    )
    assert fast == built
    assert [hash(r) for r in fast] == [hash(r) for r in built]
    assert [repr(r) for r in fast] == [repr(r) for r in built]
    assert all(type(r) is PortResult and r.identified is None for r in fast)
