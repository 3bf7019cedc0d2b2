"""Connection slots per client address, so one address cannot take every slot.

``max-connections`` bounds what an application serves at once; without a bound per address
one client could hold all of them for the idle timeout and lock everyone else out. The
count is taken at admission, in the same step as the check, so a burst cannot overshoot.
"""

from __future__ import annotations

__all__ = ["AddressSlots"]


class AddressSlots:
    """Slots (connections, messages in transfer) per client address, ``per_address`` each.

    With ``total``, at most that many slots are held by all addresses together.
    Not thread-safe: taking and giving back both run on the event loop.
    """

    def __init__(self, per_address: int, total: int | None = None) -> None:
        self.per_address = per_address
        self.total = total
        self._open: dict[str, int] = {}
        self._held = 0

    def acquire(self, address: str) -> bool:
        """Take a slot for ``address``; False (nothing taken) if it holds its share."""
        count = self._open.get(address, 0)
        if count >= self.per_address or (self.total is not None and self._held >= self.total):
            return False
        self._open[address] = count + 1
        self._held += 1
        return True

    def release(self, address: str) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        count = self._open.get(address, 0) - 1
        if count < 0:
            return
        self._held -= 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def held(self, address: str) -> int:
        """How many slots ``address`` holds now."""
        return self._open.get(address, 0)
