"""The probe scheduler: which probe to send when, and when to give up on one (sans-io).

Every engine (TCP connect and UDP sockets, raw SYN packets over IPv4 and IPv6) shares
this policy and only moves bytes. The scheduler does no I/O and reads no clock: every
method that needs the time takes it as ``now``, so its tests run on a fake clock.

A probe is ``(target, port)``. Its life::

    planned --take--> taken --track--> outstanding --answer/drop--> finished (one row)
                        |  \\                  |
                        |   finish_now        expire: attempt < retries --> queued again
                        |   (answered at      |                             (attempt + 1)
                        |    once: a row)     '-- last attempt --> finished (silent state)
                        '--give_back--> queued again (same attempt, first in line)

Policy:

- *window*: at most ``window`` probes are outstanding. The window starts at the
  ceiling; a probe that goes unanswered while the same scan keeps getting answers
  halves it (at most once per timeout period), and every answer grows it by one
  again, up to the ceiling: additive increase, multiplicative decrease, as TCP does
  (RFC 5681 section 3.1). Silence alone is not congestion: a host that answers
  nothing is filtered or down, and slowing down would only make that scan slower.
- *rate*: a token bucket; at most ``rate`` probes taken per second, in bursts of a
  hundredth of a second's worth.
- *retries*: attempt ``a`` of a probe waits ``rto * 2**a`` for its answer (with
  ``adaptive``, the doubling is of the measured estimate and the floor applies after
  it: see :meth:`RttEstimator.wait`); after
  ``retries`` re-sends the probe is finished in the ``silent`` state (filtered for
  TCP, open|filtered for UDP), reason ``no-response``.
- *rto* (retransmission timeout): ``timeout`` until round trips are measured; with
  ``adaptive``, then the smoothed round trip plus four times its variation (RFC 6298
  section 2: SRTT, RTTVAR), between ``min_timeout`` and ``timeout``. Only first
  attempts are measured (Karn's rule, RFC 6298 section 3: the answer to a re-sent
  probe may be the first one's). A probe that goes unanswered does not move it: on a
  scan, silence is mostly a filtered port, not a slower path, and the window already
  backs off where answers are lost among others.
- *finished rows*: every probe taken ends in exactly one row, ``(target, port,
  state, reason, rtt)``, collected in :attr:`ProbeScheduler.rows` until
  :meth:`ProbeScheduler.take_rows`; an answer to a probe that is no longer
  outstanding (late, duplicate) is refused, so it cannot make a second row.

Deadlines are kept in one FIFO queue per attempt, of the times the probes left: all
probes of one attempt wait the same time (the current ``rto``, times two per attempt),
so with a clock that never goes back each queue is already in deadline order whatever
the ``rto`` has become, and expiry costs O(1) per probe.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from portkit.results import PortState
from portkit.scan._targets import Target

__all__ = [
    "MIN_WINDOW",
    "Outstanding",
    "Policy",
    "ProbeScheduler",
    "Row",
    "RttEstimator",
    "TokenBucket",
    "Window",
]

MIN_WINDOW = 16
# Refills are sums of float products: a token that is 0.9999999999 after exact
# arithmetic would be 1 is one.
_EPSILON = 1e-9
_IDLE_RETRY = 0.01  # seconds before trying again when nothing else will wake the driver

K = TypeVar("K", bound=Hashable)
Probe = tuple[Target, int]
# A finished probe: (target, port, state, reason, rtt in seconds or None).
Row = tuple[Target, int, PortState, str, float | None]
# An outstanding probe: (target, port, attempt, sent at, answers counted when sent).
Outstanding = tuple[Target, int, int, float, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The scheduler's knobs.

    Args:
        timeout: seconds the first attempt waits for its answer (then doubled per attempt).
        retries: re-sends of an unanswered probe before it is finished ``silent``.
        rate: probes per second, a ceiling (None: no ceiling).
        ceiling: probes outstanding at most (the window never grows past it).
        silent: the state of a probe that never got an answer.
        min_window: the window never shrinks below this (nor below 1).
        adaptive: derive the wait from measured round trips (``timeout`` is then the
            first wait and the longest).
        min_timeout: the shortest wait an adaptive scan uses.
    """

    timeout: float = 1.0
    retries: int = 2
    rate: float | None = None
    ceiling: int = 8192
    silent: PortState = PortState.FILTERED
    min_window: int = MIN_WINDOW
    adaptive: bool = False
    min_timeout: float = 0.1


class RttEstimator:
    """The retransmission timeout from measured round trips (RFC 6298 section 2).

    Before the first sample the timeout is ``initial``; each sample ``r`` updates
    ``SRTT`` and ``RTTVAR`` (alpha 1/8, beta 1/4; the first sets ``SRTT = r``,
    ``RTTVAR = r/2``) and the timeout becomes ``SRTT + 4 * RTTVAR``, kept between
    ``floor`` and ``ceiling``. RFC 6298's one-second floor is for a connection's data;
    a scan's probes use nmap's 100 ms by default (the floor is a parameter).
    """

    __slots__ = ("ceiling", "estimate", "floor", "rto", "rttvar", "samples", "srtt")

    def __init__(self, initial: float, floor: float, ceiling: float) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.rto = min(initial, ceiling)
        self.estimate = self.rto  # SRTT + 4 RTTVAR, before the floor
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def wait(self, attempt: int) -> float:
        """Seconds attempt ``attempt`` (0: the first) waits for its answer.

        Each re-send doubles the estimate (RFC 6298 section 5.5, "back off the
        timer"), never past ``ceiling`` doubled as often; the floor applies after
        the doubling, not before it. The doubling is there for a path that got slower
        than measured; the floor is a margin against noise in the measure. Where the
        floor dominates (a near host: round trips of some microseconds against 100
        ms), doubling it would only make every dropped port cost 0.1 + 0.2 + 0.4 s
        instead of 3 x 0.1 s: the first wait already covered a hundred round trips.
        """
        scale = 1 << attempt
        wait = self.estimate * scale
        if wait < self.floor:
            return self.floor
        return min(wait, self.ceiling * scale)

    def sample(self, rtt: float) -> None:
        """One measured round trip, in seconds."""
        srtt = self.srtt
        if srtt is None:
            srtt, rttvar = rtt, rtt / 2
        else:
            rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - rtt)
            srtt = 0.875 * srtt + 0.125 * rtt
        self.srtt, self.rttvar = srtt, rttvar
        self.samples += 1
        rto = self.estimate = srtt + 4 * rttvar
        self.rto = self.floor if rto < self.floor else min(rto, self.ceiling)


class TokenBucket:
    """At most ``rate`` tokens per second, bursts of ``rate / 100`` (at least one)."""

    def __init__(self, rate: float | None, now: float) -> None:
        self.rate = rate
        self._burst = 1.0 if rate is None else max(1.0, rate / 100)
        self._tokens = self._burst
        self._last = now

    def allowance(self, wanted: int, now: float) -> int:
        """How many of ``wanted`` may start at ``now`` (not spent yet: see :meth:`spend`)."""
        if self.rate is None:
            return wanted
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return min(wanted, int(self._tokens + _EPSILON))

    def spend(self, count: int) -> None:
        """Spend ``count`` tokens (a negative count gives tokens back)."""
        if self.rate is not None:
            self._tokens -= count

    def wait(self) -> float:
        """Seconds from the last :meth:`allowance` until the next token (0: one is here)."""
        if self.rate is None or self._tokens + _EPSILON >= 1:
            return 0.0
        return (1 - self._tokens) / self.rate


class Window:
    """Additive increase, multiplicative decrease of probes outstanding (RFC 5681 3.1)."""

    def __init__(self, ceiling: int, floor: int = MIN_WINDOW) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = max(1, min(floor, self.ceiling))
        self.window = float(self.ceiling)
        self._last_cut = float("-inf")
        self.cuts = 0

    @property
    def size(self) -> int:
        return int(self.window)

    def grow(self, count: int = 1) -> None:
        """``count`` answers came: one more probe in flight for each, up to the ceiling."""
        if self.window < self.ceiling:
            self.window = min(self.ceiling, self.window + count)

    def loss(self, now: float, period: float, answered_since: bool) -> None:
        """A probe went unanswered; halve the window if others were answered meanwhile."""
        if answered_since and now - self._last_cut >= period:
            self.window = max(self.floor, self.window / 2)
            self._last_cut = now
            self.cuts += 1

    def shrink_to(self, size: float) -> None:
        """The host ran short of a resource (ports, descriptors, buffers): shrink now."""
        self.window = max(self.floor, min(self.window, size))


class ProbeScheduler(Generic[K]):
    """The window, rate, retries, deadlines and finished rows of one scan (sans-io).

    Args:
        plan: the probes, taken lazily (memory stays bounded whatever its length).
        policy: the knobs.
        now: the clock's value at the start.
    """

    def __init__(self, plan: Iterator[Probe], policy: Policy, now: float) -> None:
        self.policy = policy
        self._plan = plan
        self.exhausted = False
        self.window = Window(policy.ceiling, policy.min_window)
        self.bucket = TokenBucket(policy.rate, now)
        self._retries = max(0, policy.retries)
        timeout = max(0.001, policy.timeout)
        self.rtt = RttEstimator(timeout, max(0.001, policy.min_timeout), timeout)
        # A wait between tracking and leaving shorter than this cannot move a timeout
        # (a hundredth of the floor): not worth re-stamping a batch for.
        self._restamp_after = self.rtt.floor / 100
        self._adaptive = policy.adaptive
        self._silent = policy.silent
        self._again: deque[tuple[Target, int, int]] = deque()
        self.outstanding: dict[K, Outstanding] = {}
        # One queue per attempt of (sent at, keys, their entries when sent).
        self._deadlines: list[deque[tuple[float, Sequence[K], Sequence[Outstanding]]]] = [
            deque() for _ in range(self._retries + 1)
        ]
        self.answers = 0
        self.rows: list[Row] = []

    # -- sending ---------------------------------------------------------------

    def take(self, now: float, most: int | None = None) -> tuple[int, list[Probe]]:
        """Probes to send now, all of one attempt: (attempt, probes).

        Probes waiting to be sent again come first, then new ones from the plan; as
        many as the window's room, the rate and ``most`` allow. Each one taken must
        then be tracked (:meth:`track`, :meth:`sent`), finished (:meth:`finish_now`)
        or given back (:meth:`give_back`).
        """
        room = self.window.size - len(self.outstanding)
        if most is not None and most < room:
            room = most
        if room <= 0:
            return 0, []
        room = self.bucket.allowance(room, now)
        if room <= 0:
            return 0, []
        again = self._again
        if again:
            attempt = again[0][2]
            taken: list[Probe] = []
            while again and len(taken) < room and again[0][2] == attempt:
                target, port, _attempt = again.popleft()
                taken.append((target, port))
        elif self.exhausted:
            return 0, []
        else:
            attempt = 0
            taken = list(itertools.islice(self._plan, room))
            if len(taken) < room:
                self.exhausted = True
        self.bucket.spend(len(taken))
        return attempt, taken

    def give_back(self, probes: Sequence[Probe], attempt: int) -> None:
        """Probes taken but not sent (the host was short of something): first in line again."""
        self._again.extendleft((t, p, attempt) for t, p in reversed(probes))
        self.bucket.spend(-len(probes))

    def short_of_resources(self) -> None:
        """The host refused a socket or a buffer: halve the window to what is outstanding."""
        self.window.shrink_to(len(self.outstanding) / 2)

    def track(
        self, keys: Sequence[K], probes: Sequence[Probe], attempt: int, now: float
    ) -> list[Outstanding]:
        """Probes on their way: answers to ``keys`` are expected from now on.

        Their deadlines start with :meth:`arm`, once they have left (a batch may be
        sent a moment later by another process); returns their entries for it.
        """
        answers = self.answers
        entries = [(t, p, attempt, now, answers) for t, p in probes]
        self.outstanding.update(zip(keys, entries, strict=True))
        return entries

    def arm(
        self, keys: Sequence[K], entries: Sequence[Outstanding], attempt: int, at: float
    ) -> None:
        """Start the deadlines of tracked probes that left at ``at``.

        Their entries are stamped with ``at`` too when they waited noticeably between
        :meth:`track` and leaving (a batch queued for a sender process on a busy
        machine waits milliseconds to seconds): the round trips measured from them
        then measure the path, not the queue. An estimate that counted the queue grew
        past the floor under load, and every dropped port waited that much longer.
        """
        if not keys:
            return
        if entries and at - entries[0][3] > self._restamp_after:
            outstanding = self.outstanding
            restamped = []
            for key, entry in zip(keys, entries, strict=True):
                if outstanding.get(key) is entry:  # not answered already
                    entry = (entry[0], entry[1], entry[2], at, entry[4])
                    outstanding[key] = entry
                restamped.append(entry)
            entries = restamped
        self._deadlines[attempt].append((at, keys, entries))

    def sent(self, key: K, target: Target, port: int, attempt: int, now: float) -> None:
        """One probe left at ``now``: :meth:`track` and :meth:`arm` in one."""
        entry = (target, port, attempt, now, self.answers)
        self.outstanding[key] = entry
        self._deadlines[attempt].append((now, (key,), (entry,)))

    def untrack(self, keys: Sequence[K], attempt: int) -> None:
        """Tracked probes that never left: first in line again, same attempt."""
        back = []
        for key in keys:
            entry = self.outstanding.pop(key, None)
            if entry is not None:
                back.append((entry[0], entry[1]))
        self.give_back(back, attempt)

    # -- outcomes --------------------------------------------------------------

    def answer(
        self, key: K, state: PortState, reason: str, now: float, *, grow: bool = True
    ) -> Outstanding | None:
        """An answer to ``key``: its row, or None when it is not outstanding (late, a duplicate).

        ``grow``: the answer shows the path is clear (a SYN-ACK, a RST, a port
        unreachable), so the window grows; an ICMP "host unreachable" counts as an
        answer but does not.
        """
        entry = self.outstanding.pop(key, None)
        if entry is None:
            return None
        self.answers += 1
        if grow:
            self.window.grow()
        rtt = now - entry[3]
        if self._adaptive and entry[2] == 0:
            self.rtt.sample(rtt)  # first attempts only (Karn)
        self.rows.append((entry[0], entry[1], state, reason, rtt))
        return entry

    def answer_all(self, keys: Sequence[K], now: float | None = None) -> list[Outstanding] | None:
        """Answers to every one of ``keys`` at once, or None (then nothing was done).

        All or nothing: None when one of them is not outstanding or one repeats. The
        caller makes their rows (:attr:`rows`): one per key, in any form it likes,
        such as counts (see the SYN engine). With ``now`` (when they were read, in the
        order they arrived), the last first-attempt probe among them is one round-trip
        sample.
        """
        outstanding = self.outstanding
        found = list(map(outstanding.get, keys))
        if None in found or len(set(keys)) != len(keys):
            return None
        for key in keys:
            del outstanding[key]
        self.answers += len(keys)
        self.window.grow(len(keys))
        if self._adaptive and now is not None:
            # One sample a batch (cheap, enough): its last first-attempt answer's. The
            # answers were read together at ``now``; the last to arrive sat least long
            # in the socket buffer before this read, so its time is the closest to the
            # path's (on a busy machine the first ones' counted the wait for a core).
            last = next((e for e in reversed(found) if e is not None and e[2] == 0), None)
            if last is not None:
                self.rtt.sample(now - last[3])
        return found  # type: ignore[return-value]  # no None left

    def drop(self, key: K, state: PortState, reason: str) -> Outstanding | None:
        """``key`` failed without an answer that says anything of the path (a local error)."""
        entry = self.outstanding.pop(key, None)
        if entry is not None:
            self.rows.append((entry[0], entry[1], state, reason, None))
        return entry

    def finish_now(
        self,
        target: Target,
        port: int,
        state: PortState,
        reason: str,
        rtt: float | None,
        *,
        answered: bool = True,
        grow: bool = True,
    ) -> None:
        """A probe taken was settled before it was ever outstanding (answered at once)."""
        if answered:
            self.answers += 1
            if grow:
                self.window.grow()
        self.rows.append((target, port, state, reason, rtt))

    def answered_at_once(self, count: int) -> None:
        """``count`` probes were settled by an answer before they were outstanding, and
        the transport made (or counted) their rows itself: :meth:`finish_now` for many,
        without a row each."""
        if count:
            self.answers += count
            self.window.grow(count)

    def unanswered(self, key: K, now: float) -> Outstanding | None:
        """``key`` will get no answer (the kernel gave up on it): as if its deadline passed."""
        entry = self.outstanding.pop(key, None)
        if entry is not None:
            self._lost(entry, now)
        return entry

    def unanswered_now(self, target: Target, port: int, attempt: int, now: float) -> None:
        """A probe taken but never outstanding will get no answer."""
        self._lost((target, port, attempt, now, self.answers), now)

    def expire(self, now: float) -> list[K]:
        """Probes whose deadline has passed by ``now``: sent again, or finished silent.

        Returns their keys, so the caller can release what it holds for them.
        """
        expired: list[K] = []
        outstanding = self.outstanding
        waiting = self.rtt.wait
        for attempt, queue in enumerate(self._deadlines):
            if not queue:
                continue
            wait = waiting(attempt)  # (the same sum as wake_at's, to the last bit)
            while queue and queue[0][0] + wait <= now:
                _deadline, keys, entries = queue.popleft()
                for key, entry in zip(keys, entries, strict=True):
                    if outstanding.get(key) is entry:
                        del outstanding[key]
                        expired.append(key)
                        self._lost(entry, now)
        return expired

    def _lost(self, entry: Outstanding, now: float) -> None:
        target, port, attempt, _sent, answers_then = entry
        self.window.loss(now, self.rtt.rto, self.answers > answers_then)
        if attempt < self._retries:
            self._again.append((target, port, attempt + 1))
        else:
            self.rows.append((target, port, self._silent, "no-response", None))

    # -- the driver's questions ------------------------------------------------

    def take_rows(self) -> list[Row]:
        """The rows finished since the last call."""
        rows, self.rows = self.rows, []
        return rows

    @property
    def queued(self) -> int:
        """Probes waiting to be sent again."""
        return len(self._again)

    @property
    def done(self) -> bool:
        """Every probe of the plan is finished (its row may still wait in :attr:`rows`)."""
        return self.exhausted and not self._again and not self.outstanding

    def wake_at(self, now: float) -> float | None:
        """When the driver should act again if no answer comes first; None: only on answers."""
        wake: float | None = None
        waiting = self.rtt.wait
        for attempt, queue in enumerate(self._deadlines):
            if queue:
                deadline = queue[0][0] + waiting(attempt)
                if wake is None or deadline < wake:
                    wake = deadline
        if self._again or not self.exhausted:
            wait = self.bucket.wait()
            if wait > 0 and self.window.size > len(self.outstanding):
                token = now + wait
                wake = token if wake is None else min(wake, token)
            elif wake is None and self._again and not self.outstanding:
                wake = now + _IDLE_RETRY  # short of resources: try again shortly
        return wake
