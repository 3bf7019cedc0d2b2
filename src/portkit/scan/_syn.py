"""The TCP SYN engine (``--syn``): raw packets, stateless sending, keyed cookies.

Each probe is one SYN (RFC 9293 section 3.5) from a fixed source port outside the
kernel's ephemeral range, whose sequence number is a keyed cookie of the four-tuple
(``_synwire``: the bytes, built and checked), so a reply proves itself. Nothing is
remembered per probe beyond the window of probes in flight, which is the
:class:`~portkit.scan._schedule.ProbeScheduler`'s; this module is its transport, IPv4
and IPv6.

A SYN-ACK means open, a RST closed, silence (after the retries) filtered. The kernel
has no socket for our source port, so it answers each SYN-ACK with a RST itself, which
closes the half-open connection on the target for us.

A classic BPF filter on the receiving socket keeps everything but SYN-ACKs and RSTs to
our source port in the kernel, so a busy host's traffic does not reach Python.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import cast

from portkit._bpf import attach_filter
from portkit._errors import PrivilegeError, TargetError
from portkit.results import Batches, CountKey, PortState
from portkit.scan._drive import drive
from portkit.scan._engine import EngineOptions
from portkit.scan._rawsend import (
    PACKET_SIZE,
    Batch,
    BatchReceiver,
    BatchSender,
    ipv4_header,
    sockaddr_in,
    sockaddr_in6,
)
from portkit.scan._schedule import MIN_WINDOW, Outstanding, Policy, ProbeScheduler
from portkit.scan._synwire import (
    BULK_MIN,
    CLOSED_VERDICT,
    REASON_OF,
    RST,
    STATE_OF,
    SYN_ACK,
    TCP_START,
    CookieJar,
    base_sum,
    base_sum6,
    parse_replies,
    reply_verdict,
    write_syn,
    write_syn_batch,
)
from portkit.scan._targets import Target

__all__ = ["SOURCE_PORT_RANGE", "check_privilege", "run_syn_engine"]

# Above Linux's default ephemeral range (32768-60999), so the kernel never hands our
# source port to a connection of its own while we scan.
SOURCE_PORT_RANGE = (61000, 65535)
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
CLOSED, OPEN = PortState.CLOSED, PortState.OPEN


def check_privilege() -> None:
    """Raise :class:`PrivilegeError` unless raw sockets can be opened here."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except PermissionError:
        raise PrivilegeError(
            "--syn needs root or CAP_NET_RAW to send raw packets "
            "(run it with sudo, or drop --syn for the connect scan)"
        ) from None


def _bpf_program(sport: int, *, ipv6: bool = False) -> list[tuple[int, int, int, int]]:
    """Classic BPF: accept TCP segments to ``sport`` with RST, or with SYN and ACK.

    An IPv4 raw socket's filter sees the IP header first; an IPv6 one's sees the TCP
    segment alone (the IPv6 header is not part of what such a socket reads).
    """
    ldh_ind, ldb_ind, ldxb_msh, ldx_imm = 0x48, 0x50, 0xB1, 0x01
    jeq_k, jset_k, and_k, ret_k = 0x15, 0x45, 0x54, 0x06
    return [
        # X = where TCP starts: 4 * (IPv4 header length), or 0.
        (ldx_imm, 0, 0, 0) if ipv6 else (ldxb_msh, 0, 0, 0),
        (ldh_ind, 0, 0, 2),  # A = TCP destination port
        (jeq_k, 0, 6, sport),  # not ours: drop
        (ldb_ind, 0, 0, 13),  # A = TCP flags
        (jset_k, 3, 0, RST),  # RST: accept
        (and_k, 0, 0, SYN_ACK),
        (jeq_k, 1, 0, SYN_ACK),  # SYN-ACK: accept
        (ret_k, 0, 0, 0),
        (ret_k, 0, 0, 0xFFFF),
        (ret_k, 0, 0, 0),
    ]


def _attach_filter(sock: socket.socket, sport: int, *, ipv6: bool = False) -> None:
    attach_filter(sock, _bpf_program(sport, ipv6=ipv6))


def _source_for(dst: str) -> str:
    """The address the kernel's routing would send from to reach ``dst``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((dst, 9))  # no packet is sent: connect only picks a route
        return str(probe.getsockname()[0])
    finally:
        probe.close()


def _source_for6(dst: str) -> str:
    """The IPv6 address the kernel's routing would send from to reach ``dst``."""
    probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        probe.connect((dst, 9, 0, 0))  # no packet is sent: connect only picks a route
        return str(probe.getsockname()[0]).partition("%")[0]
    finally:
        probe.close()


def _raw_socket6(sport: int) -> socket.socket | None:
    """A raw IPv6 TCP socket that sends SYNs and reads replies; None without IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return None
        raise
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECV_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
    _attach_filter(sock, sport, ipv6=True)  # only replies to us reach Python
    sock.setblocking(False)
    _drain(sock)
    return sock


def _drain(sock: socket.socket) -> None:
    """Drop what arrived before the filter was in place."""
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def _raw_socket(sport: int) -> socket.socket:
    check_privilege()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECV_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
    _attach_filter(sock, sport)
    sock.setblocking(False)
    _drain(sock)
    return sock


class _SynTransport:
    """SYN probes, IPv4 and IPv6, in batches (one family each) through a :class:`BatchSender`.

    Outstanding probes are keyed by what identifies their answer: for IPv4 the
    reply's address bytes (target's, then ours) and the target's port; for IPv6 the
    target's 16 address bytes and its port.
    """

    transport = "tcp"

    def __init__(
        self,
        scheduler: ProbeScheduler[tuple[bytes, int]],
        *,
        batch_size: int,
        fast: bool,
        count_after: int | None,
    ) -> None:
        self._scheduler = scheduler
        self._fast = fast
        self._jar = jar = CookieJar()
        self._table = jar.table
        self._sport = SOURCE_PORT_RANGE[0] + secrets.randbelow(
            SOURCE_PORT_RANGE[1] - SOURCE_PORT_RANGE[0] + 1
        )
        self._here_every = _HERE_EVERY if fast else 0
        self._turns = itertools.count()
        self._count_after = count_after
        # With count_after: closed ports counted rather than made, and how many were made.
        self._counts: dict[CountKey, int] = {}
        self._made_closed: dict[str, int] = {}
        # address -> (reply's address bytes, pair half of the cookie, checksum base,
        # IPv4 header, sockaddr)
        self._sources: dict[str, tuple[bytes, int, int, bytes, bytes]] = {}
        # A reply's source and destination addresses (8 bytes) -> the pair half of its cookie.
        self._reply_pairs: dict[bytes, int] = {}
        # IPv6: address -> (its bytes, pair half of the cookie, checksum base, sockaddr).
        self._sources6: dict[str, tuple[bytes, int, int, bytes]] = {}
        self._reply_pairs6: dict[bytes, int] = {}
        self._last_target: Target | None = None
        self._last_known: tuple[bytes, int, int, bytes, bytes] | None = None
        check_privilege()
        # The sender forks: before any socket of ours exists, so it holds none of them.
        self._sender = BatchSender(batch_size=batch_size, use_sendmmsg=fast)
        try:
            self._sock = _raw_socket(self._sport)
            self._sock6 = _raw_socket6(self._sport)
        except BaseException:
            self._sender.close()
            raise
        self._receiver = BatchReceiver(self._sock, use_recvmmsg=fast)
        self._receiver6 = (
            None
            if self._sock6 is None
            else BatchReceiver(self._sock6, use_recvmmsg=fast, ipv6_sources=True)
        )

    def descriptors(self) -> list[int]:
        fds = [self._sock.fileno(), self._sender.reports]
        if self._sock6 is not None:
            fds.append(self._sock6.fileno())
        return fds

    def take_counts(self) -> dict[CountKey, int] | None:
        if self._count_after is None:
            return None
        counts, self._counts = self._counts, {}
        return counts

    def close(self) -> None:
        self._sender.close()
        self._receiver.close()
        if self._receiver6 is not None:
            self._receiver6.close()
        self._sock.close()
        if self._sock6 is not None:
            self._sock6.close()

    def expired(self, keys: list[tuple[bytes, int]]) -> None:
        pass  # nothing is held per probe

    # -- addressing ------------------------------------------------------------

    def _addressing(self, target: Target) -> tuple[bytes, int, int, bytes, bytes]:
        known = self._sources.get(target.address)
        if known is None:
            dst = socket.inet_aton(target.address)
            src = socket.inet_aton(_source_for(target.address))
            pair = self._jar.pair(src, dst, self._sport)
            # A reply comes from dst to src: its address bytes, in order, are dst + src.
            addresses = dst + src
            known = (
                addresses,
                pair,
                base_sum(src, dst, self._sport),
                ipv4_header(src, dst),
                sockaddr_in(target.address),
            )
            self._sources[target.address] = known
            self._reply_pairs[addresses] = pair
        return known

    def _addressing6(self, target: Target) -> tuple[bytes, int, int, bytes]:
        known = self._sources6.get(target.address)
        if known is None:
            if self._sock6 is None:
                raise TargetError(
                    f"--syn cannot scan {target.address!r}: this host has no IPv6 raw sockets"
                )
            dst = socket.inet_pton(socket.AF_INET6, target.address)
            src = socket.inet_pton(socket.AF_INET6, _source_for6(target.address))
            pair = self._jar.pair(src, dst, self._sport)
            known = (dst, pair, base_sum6(src, dst, self._sport), sockaddr_in6(target.address))
            self._sources6[target.address] = known
            self._reply_pairs6[dst] = pair
        return known

    # -- answers ---------------------------------------------------------------

    def _bulk(self, count: int, now: float) -> bool:
        """Take a whole batch of replies at once; False (nothing done): go packet by packet.

        Same outcome as the packet-by-packet loop when every reply answers a distinct
        outstanding probe with its cookie; anything else is left to that loop.
        """
        receiver = self._receiver
        parsed = parse_replies(
            receiver.view, count, receiver.stride, self._sport, self._reply_pairs, self._table
        )
        if parsed is None:
            return False
        addresses, ports, verdicts = parsed
        entries = self._scheduler.answer_all(
            list(zip(repeat(addresses, count), ports, strict=True)), now
        )
        if entries is None:
            return False
        rows = self._scheduler.rows
        if self._count_after is not None:
            # One address pair per batch: one host. Past count_after made closed ports,
            # its closed ports are only counted.
            address = entries[0][0].address
            closed = verdicts.count(CLOSED_VERDICT)
            made = self._made_closed.get(address, 0)
            if made >= self._count_after and closed:
                counted = (address, "tcp", CLOSED, "reset")
                self._counts[counted] = self._counts.get(counted, 0) + closed
                if closed < count:
                    rows.extend(
                        [
                            (entry[0], entry[1], OPEN, "syn-ack", now - entry[3])
                            for entry, v in zip(entries, verdicts, strict=True)
                            if v != CLOSED_VERDICT
                        ]
                    )
                return True
            self._made_closed[address] = made + closed
        states = [STATE_OF[v] for v in verdicts]
        rows.extend(
            [
                (entry[0], entry[1], state, REASON_OF[state], now - entry[3])
                for entry, state in zip(entries, states, strict=True)
            ]
        )
        return True

    def receive(self, now: float) -> None:
        self._collect()
        receiver = self._receiver
        read = receiver.read
        view, stride = receiver.view, receiver.stride
        answer = self._scheduler.answer
        sport, pairs, table = self._sport, self._reply_pairs, self._table
        check = reply_verdict
        bulk = BULK_MIN if self._fast else 1 << 30
        got = 0
        while got < _READ_CAP and (count := read()):
            got += count
            if count >= bulk and self._bulk(count, now):
                continue
            for offset in range(0, count * stride, stride):
                verdict = check(view, offset, stride, sport, pairs, table)
                if verdict is None:
                    continue  # not an answer to our SYN
                addresses, their_port, state = verdict
                # None: late, a duplicate, or not ours.
                answer((addresses, their_port), state, REASON_OF[state], now)
        if self._sock6 is not None:
            self._receive6(now)

    def _receive6(self, now: float) -> None:
        # An IPv6 raw socket delivers the TCP segment without the IPv6 header (RFC
        # 3542 section 3) and the source address beside it. Its filter let through
        # only segments to our port with RST or SYN-ACK, at least 14 bytes long.
        receiver = self._receiver6
        assert receiver is not None
        view, stride, sources = receiver.view, receiver.stride, receiver.sources
        answer = self._scheduler.answer
        sport, pairs, table = self._sport, self._reply_pairs6, self._table
        got = 0
        while got < _READ_CAP and (count := receiver.read()):
            got += count
            for i in range(count):
                their_port, our_port, _seq, ack, _offset, flags = TCP_START.unpack_from(
                    view, i * stride
                )
                if our_port != sport:
                    continue
                address = bytes(sources[16 * i : 16 * i + 16])
                pair = pairs.get(address)
                if pair is None or (ack - 1) & 0xFFFFFFFF != pair ^ table[their_port]:
                    continue  # not an answer to our SYN
                if flags & RST:
                    answer((address, their_port), CLOSED, "reset", now)
                elif flags & SYN_ACK == SYN_ACK:
                    answer((address, their_port), OPEN, "syn-ack", now)

    def _collect(self) -> None:
        """Start the timeouts of the batches that left; handle what could not be sent."""
        scheduler = self._scheduler
        outstanding = scheduler.outstanding
        for report in self._sender.finished():
            attempt, keys, entries = cast(
                tuple[int, list[tuple[bytes, int]], list[Outstanding]], report.tag
            )
            if report.error is not None:
                raise report.error
            for slot in report.unreachable:
                if outstanding.get(keys[slot]) is entries[slot]:
                    scheduler.drop(keys[slot], PortState.FILTERED, "host-unreach")
            if report.unsent_from is not None:
                # The kernel's queue stayed full: these never left; send them again first.
                scheduler.untrack(keys[report.unsent_from :], attempt)
                keys = keys[: report.unsent_from]
                entries = entries[: report.unsent_from]
            scheduler.arm(keys, entries, attempt, report.at)

    # -- sending ---------------------------------------------------------------

    def _fill(
        self, batch: Batch, probes: list[tuple[Target, int]], one_target: bool
    ) -> list[tuple[bytes, int]]:
        """Write a SYN per probe (all IPv4) into ``batch``; return their keys."""
        destinations = batch.destinations
        data = batch.view
        first = batch.packet_offset
        sport, table = self._sport, self._table
        if self._fast and len(probes) >= BULK_MIN:
            target = probes[0][0]
            if one_target:
                ports = [port for _target, port in probes]
                if target is not self._last_target or self._last_known is None:
                    self._last_known = self._addressing(target)
                    self._last_target = target
                addresses, pair, base, header, name = self._last_known
                write_syn_batch(data, first, header, base, sport, ports, pair, table)
                if destinations[: len(ports)].count(target.address) != len(ports):
                    for slot in range(len(ports)):
                        if destinations[slot] != target.address:
                            batch.set_destination(slot, target.address, name)
                return list(zip(repeat(addresses, len(ports)), ports, strict=True))
        keys: list[tuple[bytes, int]] = []
        for count, (target, port) in enumerate(probes):
            if target is not self._last_target or self._last_known is None:
                self._last_known = self._addressing(target)
                self._last_target = target
            addresses, pair, base, header, name = self._last_known
            offset = first + count * PACKET_SIZE
            if destinations[count] != target.address:
                batch.set_destination(count, target.address, name)
                data[offset : offset + 20] = header
            write_syn(data, offset + 20, base, sport, port, pair ^ table[port])
            keys.append((addresses, port))
        return keys

    def _fill6(self, batch: Batch, probes: list[tuple[Target, int]]) -> list[tuple[bytes, int]]:
        """Write a SYN segment per probe (all IPv6) into ``batch``; return their keys.

        The kernel builds each IPv6 header; the checksum covers its pseudo-header
        (RFC 8200 section 8.1), from :func:`base_sum6`.
        """
        destinations = batch.destinations
        data = batch.view
        first = batch.packet_offset
        sport, table = self._sport, self._table
        keys: list[tuple[bytes, int]] = []
        for count, (target, port) in enumerate(probes):
            dst, pair, base, name = self._addressing6(target)
            if destinations[count] != target.address:
                batch.set_destination(count, target.address, name)
            write_syn(data, first + count * PACKET_SIZE, base, sport, port, pair ^ table[port])
            keys.append((dst, port))
        return keys

    def launch(self, now: float, most: int | None) -> None:
        # ``most`` is not needed here: at most the sender's batches are in the air.
        del most
        scheduler = self._scheduler
        sender = self._sender
        while True:
            batch = sender.take()
            if batch is None:
                return  # every batch is with the sender: its report brings us back
            attempt, probes = scheduler.take(now, batch.size)
            if not probes:
                sender.give_back(batch)
                return
            # Probes come host by host: mostly one target per batch (identity first).
            first = probes[0][0]
            one_target = [t for t, _port in probes].count(first) == len(probes)
            ipv6 = ":" in first.address
            if not one_target:
                # A batch holds one family: the first probe's; the others go first next.
                same = [p for p in probes if (":" in p[0].address) == ipv6]
                if len(same) < len(probes):
                    other = [p for p in probes if (":" in p[0].address) != ipv6]
                    scheduler.give_back(other, attempt)
                    probes = same
            batch.set_ipv6(ipv6)
            keys = self._fill6(batch, probes) if ipv6 else self._fill(batch, probes, one_target)
            entries = scheduler.track(keys, probes, attempt, now)
            if self._here_every and next(self._turns) % self._here_every == 0:
                sender.send_here(batch, len(keys), (attempt, keys, entries))
                self._collect()
            else:
                sender.submit(batch, len(keys), (attempt, keys, entries))


def run_syn_engine(
    probes: Iterator[tuple[Target, int]],
    options: EngineOptions,
    names: Sequence[str | None] | None = None,
    *,
    batch_size: int = _BATCH,
    fast: bool = True,
    count_after: int | None = None,
) -> Batches:
    """Send a SYN to every (target, port) of ``probes``; yield results in batches.

    IPv4 and IPv6 targets alike. With ``count_after``, once that many closed ports of
    a host have been yielded as results, its further closed ports are yielded as
    counts (:attr:`ResultBatch.counts`) instead: the CLI's reports only count them.

    IPv4 packets are built here and sent by a :class:`BatchSender` process
    (``sendmmsg``), so the kernel's part of each probe runs beside the Python that
    reads the replies. A probe's timeout starts when its batch has left, not when it
    was built.

    ``fast`` is the one switch of the speed tricks: ``sendmmsg``/``recvmmsg``, one
    batch in a few sent from this process, SYNs built a batch at a time and replies
    checked a batch at a time. ``fast=False`` is the plain path: one system call and
    one check per packet. The results are the same either way (tests compare them).
    """
    policy = Policy(
        timeout=options.timeout,
        retries=options.retries,
        rate=options.rate,
        ceiling=max(MIN_WINDOW, options.concurrency or 65536),
        adaptive=True,  # SYN-ACKs and resets come from the target's kernel
    )
    scheduler: ProbeScheduler[tuple[bytes, int]] = ProbeScheduler(probes, policy, time.monotonic())
    transport = _SynTransport(
        scheduler,
        batch_size=batch_size,
        fast=fast,
        count_after=count_after,
    )
    return drive(transport, scheduler, names)


if os.name != "posix":  # pragma: no cover - raw sockets as used here are Linux's
    raise ImportError("the SYN engine needs Linux raw sockets")
