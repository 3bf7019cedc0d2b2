"""Admission and the send clock, without sockets: limits counted as connections arrive."""

from __future__ import annotations

import pytest

from portkit.host._limits import Admission, SendClock, source_of


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: the same source
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4-mapped counts as the IPv4 address
        ("fe80::1%eth0", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_sources(host: str, source: str) -> None:
    assert source_of(host) == source


def test_total_and_per_source_limits() -> None:
    admission = Admission(4)  # per source: half, 2
    first = [admission.admit("192.0.2.1") for _ in range(3)]
    assert first[2] is None
    assert admission.refusal("192.0.2.1") == "2 connections from 192.0.2.1 (limit 2)"
    others = [admission.admit(f"192.0.2.{n}") for n in (2, 3, 4)]
    assert others[2] is None
    assert admission.refusal("192.0.2.9") == "4 connections open (limit 4)"
    slot = first[0]
    assert slot is not None
    slot.release()
    slot.release()  # a second release gives nothing back twice
    assert admission.open == 3
    assert admission.held_by("192.0.2.1") == 1
    assert admission.admit("192.0.2.1") is not None
    assert admission.admit("192.0.2.1") is None


def test_explicit_per_source() -> None:
    admission = Admission(3, per_source=3)
    assert all(admission.admit("::1") for _ in range(3))
    assert admission.admit("::1") is None


def test_send_clock() -> None:
    clock = SendClock(10.0, 0.0, now=0.0, acked=0)
    assert not clock.expired(9.0, 0)
    assert not clock.expired(9.5, 1)  # one byte taken: the clock starts again
    assert not clock.expired(19.0, 1)
    assert clock.expired(19.5, 1)
    rated = SendClock(10.0, 100.0, now=0.0, acked=0)  # 1,000 bytes per 10 s at least
    assert not rated.expired(5.0, 999)
    assert rated.expired(10.0, 999)
    assert not rated.expired(10.0, 1000)
