"""Slots per client address: the share of each address and the total."""

from __future__ import annotations

from portkit.host.apps.mail._limits import AddressSlots


def test_each_address_has_its_share_and_all_share_the_total() -> None:
    slots = AddressSlots(2, total=3)
    assert [slots.acquire("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert slots.acquire("10.0.0.2")
    assert not slots.acquire("10.0.0.3")  # the total is held
    slots.release("10.0.0.1")
    assert slots.held("10.0.0.1") == 1
    assert slots.acquire("10.0.0.3")
    slots.release("10.0.0.9")  # never held: changes nothing
    assert not slots.acquire("10.0.0.4")
