"""The probe scheduler on a fake clock: no sockets, no sleeping, every step decided here."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.scan._model import PortState
from portkit.scan._schedule import (
    MIN_WINDOW,
    Policy,
    ProbeScheduler,
    RttEstimator,
    TokenBucket,
    Window,
)
from portkit.scan._targets import Target

HOST = Target(address="127.0.0.1")  # nothing is sent: the network is fake
OPEN, CLOSED, FILTERED = PortState.OPEN, PortState.CLOSED, PortState.FILTERED


def plan(count: int, target: Target = HOST) -> list[tuple[Target, int]]:
    return [(target, port) for port in range(1, count + 1)]


def scheduler(count: int, now: float = 0.0, **policy: object) -> ProbeScheduler[int]:
    return ProbeScheduler(iter(plan(count)), Policy(**policy), now)  # type: ignore[arg-type]


def send_all(s: ProbeScheduler[int], now: float, most: int | None = None) -> list[int]:
    """Take what the scheduler allows and send it, keyed by port; return the ports sent."""
    sent: list[int] = []
    while True:
        attempt, probes = s.take(now, most)
        if not probes:
            return sent
        for target, port in probes:
            s.sent(port, target, port, attempt, now)
            sent.append(port)


# -- window --------------------------------------------------------------------


def test_window_caps_probes_outstanding() -> None:
    s = scheduler(100, ceiling=10)
    assert send_all(s, 0.0) == list(range(1, 11))
    assert len(s.outstanding) == 10
    assert s.take(0.0) == (0, [])  # full: nothing more until an answer
    assert s.answer(3, CLOSED, "reset", 0.1) is not None
    assert send_all(s, 0.1) == [11]  # one answer, one more probe


def test_take_honours_most() -> None:
    s = scheduler(100, ceiling=50)
    attempt, probes = s.take(0.0, most=7)
    assert (attempt, len(probes)) == (0, 7)


def test_back_off_halves_on_loss_among_answers_only() -> None:
    w = Window(1024)
    w.loss(now=10.0, period=1.0, answered_since=False)  # silence: filtered, not congestion
    assert w.size == 1024
    w.loss(now=10.0, period=1.0, answered_since=True)
    assert w.size == 512
    w.loss(now=10.5, period=1.0, answered_since=True)  # same period: one cut only
    assert w.size == 512
    w.loss(now=11.0, period=1.0, answered_since=True)
    assert w.size == 256
    for _ in range(10):
        w.grow()
    assert w.size == 266  # additive increase
    w.grow(10_000)
    assert w.size == 1024  # never past the ceiling
    for step in range(20):
        w.loss(now=12.0 + step, period=1.0, answered_since=True)
    assert w.size == MIN_WINDOW


def test_scheduler_cuts_window_when_a_probe_is_lost_among_answers() -> None:
    s = scheduler(200, ceiling=100, timeout=1.0, retries=1)
    send_all(s, 0.0)
    # Answers to every probe but port 1 after it was sent: congestion, not a filter.
    for port in range(2, 101):
        s.answer(port, CLOSED, "reset", 0.5)
    s.expire(1.0)
    assert s.window.size == 50
    assert s.window.cuts == 1


def test_silence_alone_does_not_shrink_the_window() -> None:
    s = scheduler(100, ceiling=100, timeout=1.0, retries=0)
    send_all(s, 0.0)
    s.expire(1.0)
    assert s.window.size == 100
    assert len(s.rows) == 100


def test_short_of_resources_halves_to_what_is_outstanding() -> None:
    s = scheduler(100, ceiling=100)
    attempt, probes = s.take(0.0, most=80)
    for target, port in probes[:40]:
        s.sent(port, target, port, attempt, 0.0)
    s.give_back(probes[40:], attempt)
    s.short_of_resources()
    assert s.window.size == MIN_WINDOW + 4  # 40 outstanding, halved: 20
    # What was given back comes first, in order.
    assert s.take(0.0) == (0, [])  # window full: 40 outstanding, 20 allowed
    for port in range(1, 41):
        s.answer(port, CLOSED, "reset", 0.1)
    assert [p for _t, p in s.take(0.1)[1]][:3] == [41, 42, 43]


# -- rate ----------------------------------------------------------------------


def test_token_bucket_paces_and_never_bursts_past_its_size() -> None:
    bucket = TokenBucket(100.0, now=0.0)
    assert bucket.allowance(50, 0.0) == 1  # 100/s: a burst of one
    bucket.spend(1)
    assert bucket.allowance(50, 0.0) == 0
    assert bucket.wait() == 0.01
    assert bucket.allowance(500, 0.5) == 1  # refills, but never beyond the burst
    assert TokenBucket(None, 0.0).allowance(500, 0.0) == 500


def test_rate_spaces_out_probes_on_the_fake_clock() -> None:
    s = scheduler(1000, rate=1000.0, ceiling=10_000)
    starts: list[float] = []
    now = 0.0
    while now < 0.9:  # the first deadline is at 1.0
        starts += [now] * len(send_all(s, now))
        wake = s.wake_at(now)
        assert wake is not None
        assert wake > now
        now = wake
    # 1000/s with bursts of 10: by 0.9 s, about 900 + one burst; never more.
    assert 880 <= len(starts) <= 910
    for t in (0.1, 0.3, 0.5, 0.7):
        assert sum(1 for x in starts if x <= t) <= 1000 * t + 10


def test_given_back_probes_return_their_tokens() -> None:
    s = scheduler(10, rate=100.0)
    attempt, probes = s.take(0.0)
    assert len(probes) == 1
    s.give_back(probes, attempt)
    assert s.take(0.0)[1] == probes  # the token came back with the probe


# -- retries and expiry ----------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
def test_retries_double_the_deadline_then_call_the_port_silent(batched: bool) -> None:
    s = scheduler(1, timeout=1.0, retries=2)
    sends: list[tuple[float, int]] = []
    now = 0.0
    while not s.done:
        s.expire(now)
        attempt, probes = s.take(now)
        keys = [port for _target, port in probes]
        if batched:
            s.arm(keys, s.track(keys, probes, attempt, now), attempt, now)
        else:
            for target, port in probes:
                s.sent(port, target, port, attempt, now)
        sends += [(now, attempt)] * len(probes)
        wake = s.wake_at(now)
        if wake is None:
            break
        now = wake
    assert sends == [(0.0, 0), (1.0, 1), (3.0, 2)]  # waits of 1, 2 and then 4 s
    assert now == 7.0
    assert s.take_rows() == [(HOST, 1, FILTERED, "no-response", None)]


def test_a_reused_key_is_not_expired_by_its_previous_owner_deadline() -> None:
    # The connect engine keys probes by descriptor, and the kernel reuses descriptors:
    # an answered probe's deadline must not expire the next probe on the same one.
    s = scheduler(2, timeout=1.0, retries=0)
    s.sent(5, HOST, 1, 0, 0.0)
    s.answer(5, CLOSED, "reset", 0.1)
    s.sent(5, HOST, 2, 0, 0.5)
    assert s.expire(1.0) == []
    assert s.expire(1.5) == [5]
    assert [row[1:3] for row in s.take_rows()] == [(1, CLOSED), (2, FILTERED)]


def test_udp_silence_is_open_filtered() -> None:
    s = scheduler(1, timeout=1.0, retries=0, silent=PortState.OPEN_FILTERED)
    send_all(s, 0.0)
    assert s.expire(0.999) == []
    assert s.expire(1.0) == [1]
    assert s.take_rows() == [(HOST, 1, PortState.OPEN_FILTERED, "no-response", None)]


def test_answer_after_expiry_is_refused_and_makes_no_second_row() -> None:
    s = scheduler(1, timeout=1.0, retries=0)
    send_all(s, 0.0)
    s.expire(1.0)
    assert s.answer(1, OPEN, "syn-ack", 1.2) is None
    assert len(s.take_rows()) == 1


def test_answer_to_a_retry_counts_its_own_rtt() -> None:
    s = scheduler(1, timeout=1.0, retries=1)
    send_all(s, 0.0)
    s.expire(1.0)
    send_all(s, 1.0)
    s.answer(1, OPEN, "syn-ack", 1.25)
    assert s.take_rows() == [(HOST, 1, OPEN, "syn-ack", 0.25)]
    assert s.done


def test_a_retry_waits_its_own_deadline_behind_newer_first_attempts() -> None:
    # Attempt 1 sent at t=1 waits until 3; a first attempt sent at t=1.5 expires at 2.5
    # and must not be held back behind it.
    s = scheduler(2, timeout=1.0, retries=1, ceiling=1)
    send_all(s, 0.0)  # port 1
    s.expire(1.0)
    send_all(s, 1.0)  # port 1 again (attempt 1)
    s.answer(1, CLOSED, "reset", 1.4)
    send_all(s, 1.5)  # port 2 (attempt 0)
    assert s.wake_at(1.5) == 2.5
    assert s.expire(2.5) == [2]


def test_batches_track_then_arm_when_they_leave() -> None:
    s = scheduler(4, timeout=1.0, retries=0)
    attempt, probes = s.take(0.0)
    keys = [p for _t, p in probes]
    entries = s.track(keys, probes, attempt, 0.0)
    assert s.answer(2, OPEN, "syn-ack", 0.01) is not None  # answered before it "left"
    s.arm(keys, entries, attempt, 0.5)
    assert s.expire(1.4) == []
    assert sorted(s.expire(1.5)) == [1, 3, 4]


def test_untracked_batch_goes_back_first_in_line() -> None:
    s = scheduler(6, ceiling=3)
    attempt, probes = s.take(0.0)
    s.track([1, 2, 3], probes, attempt, 0.0)
    s.untrack([2, 3], attempt)
    assert [p for _t, p in s.take(0.0)[1]] == [2, 3]


def test_answer_all_is_all_or_nothing() -> None:
    s = scheduler(4)
    send_all(s, 0.0)
    assert s.answer_all([1, 2, 9]) is None
    assert s.answer_all([1, 1]) is None
    assert len(s.outstanding) == 4
    found = s.answer_all([1, 2])
    assert found is not None
    assert [e[1] for e in found] == [1, 2]
    assert sorted(s.outstanding) == [3, 4]


# -- every probe ends in exactly one row ------------------------------------------


@dataclass
class Network:
    """A fake network: each port answers (or not) each attempt after some delay."""

    # port -> per attempt: None (lost) or (delay, state, duplicate answer)
    fate: dict[int, list[tuple[float, PortState, bool] | None]]
    arrivals: list[tuple[float, int, int, PortState]] = field(default_factory=list)
    sent: Counter[int] = field(default_factory=Counter)

    def send(self, now: float, port: int, attempt: int) -> None:
        self.sent[port] += 1
        plan = self.fate[port]
        outcome = plan[attempt] if attempt < len(plan) else None
        if outcome is not None:
            delay, state, duplicate = outcome
            heapq.heappush(self.arrivals, (now + delay, port, attempt, state))
            if duplicate:
                heapq.heappush(self.arrivals, (now + delay * 2, port, attempt, state))


outcomes = st.one_of(
    st.none(),
    st.tuples(st.floats(0.0, 5.0), st.sampled_from([OPEN, CLOSED]), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(
    fates=st.lists(st.lists(outcomes, max_size=4), min_size=0, max_size=60),
    retries=st.integers(0, 3),
    ceiling=st.integers(1, 40),
    rate=st.one_of(st.none(), st.floats(5.0, 500.0)),
    batched=st.booleans(),
)
def test_every_planned_probe_ends_in_exactly_one_row(
    fates: list[list[tuple[float, PortState, bool] | None]],
    retries: int,
    ceiling: int,
    rate: float | None,
    batched: bool,
) -> None:
    net = Network(dict(enumerate(fates, 1)))
    s = scheduler(
        len(fates), timeout=1.0, retries=retries, ceiling=ceiling, rate=rate, min_window=1
    )
    attempts: dict[int, int] = {}  # port -> attempt of the probe last sent
    now = 0.0
    rows = []
    for _step in range(100_000):
        while net.arrivals and net.arrivals[0][0] <= now:
            _at, port, attempt, state = heapq.heappop(net.arrivals)
            # A stale answer (an earlier attempt's) still answers the port, as on a real
            # network; only one row may come of it.
            s.answer(port, state, "answer", now)
        s.expire(now)
        while True:
            attempt, probes = s.take(now)
            if not probes:
                break
            assert len(s.outstanding) + len(probes) <= s.window.size
            keys = [p for _t, p in probes]
            if batched:
                entries = s.track(keys, probes, attempt, now)
                s.arm(keys, entries, attempt, now)
            else:
                for target, port in probes:
                    s.sent(port, target, port, attempt, now)
            for port in keys:
                attempts[port] = attempt
                net.send(now, port, attempt)
        rows += s.take_rows()
        if s.done:
            break
        wake = s.wake_at(now)
        if net.arrivals:
            wake = net.arrivals[0][0] if wake is None else min(wake, net.arrivals[0][0])
        assert wake is not None, "stalled with probes unfinished"
        now = max(now, wake)
    assert s.done
    rows += s.take_rows()
    by_port = Counter(row[1] for row in rows)
    assert by_port == Counter(range(1, len(fates) + 1))  # exactly one row each
    for _target, port, state, reason, rtt in rows:
        # No probe was sent more often than the retries allow.
        assert net.sent[port] <= retries + 1
        if reason == "no-response":
            assert state is FILTERED
            assert rtt is None
            assert net.sent[port] == retries + 1
        else:
            assert rtt is not None
            assert rtt >= 0
            assert state in (OPEN, CLOSED)
            # The state is the one the network gave that port.
            assert state in {o[1] for o in net.fate[port] if o is not None}


# -- waits from measured round trips (RFC 6298) ---------------------------------------


def test_rtt_estimator_follows_rfc_6298() -> None:
    rtt = RttEstimator(initial=1.0, floor=0.001, ceiling=1.0)
    assert rtt.rto == 1.0  # nothing measured: the initial wait
    rtt.sample(0.1)  # first: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
    assert (rtt.srtt, rtt.rttvar) == pytest.approx((0.1, 0.05))
    assert rtt.rto == pytest.approx(0.3)
    rtt.sample(0.2)  # RTTVAR = 3/4 * 0.05 + 1/4 * |0.1 - 0.2|; SRTT = 7/8 * 0.1 + 1/8 * 0.2
    assert rtt.rttvar == pytest.approx(0.0625)
    assert rtt.srtt == pytest.approx(0.1125)
    assert rtt.rto == pytest.approx(0.1125 + 4 * 0.0625)


def test_rtt_estimator_keeps_between_floor_and_ceiling() -> None:
    rtt = RttEstimator(initial=1.0, floor=0.1, ceiling=0.5)
    assert rtt.rto == 0.5  # the initial wait never exceeds the ceiling
    for _ in range(50):
        rtt.sample(0.0001)  # a link far quicker than the floor
    assert rtt.rto == 0.1
    for _ in range(50):
        rtt.sample(3.0)
    assert rtt.rto == 0.5


def test_adaptive_wait_shrinks_to_the_measured_link() -> None:
    # Ports 1-10 answer in 2 ms; port 11 is dropped. On a fixed 1 s wait the dropped
    # port would cost 1 + 2 + 4 s; measured, it costs the floor three times: 2 ms + 4 x
    # its variation, doubled twice, is still under the floor.
    s = scheduler(11, timeout=1.0, retries=2, adaptive=True, min_timeout=0.1)
    now = 0.0
    send_all(s, now)
    now = 0.002
    for port in range(1, 11):
        s.answer(port, CLOSED, "reset", now)
    assert s.rtt.rto == pytest.approx(0.1)  # the floor: 2 ms + 4 * variation is less
    assert s.wake_at(now) == pytest.approx(0.1)  # port 11's first wait, not 1 s
    while not s.done:
        wake = s.wake_at(now)
        assert wake is not None
        now = wake
        s.expire(now)
        send_all(s, now)
    assert s.take_rows()[-1][1:] == (11, PortState.FILTERED, "no-response", None)
    assert now == pytest.approx(0.1 + 0.1 + 0.1)


def test_re_sends_double_the_estimate_not_the_floor() -> None:
    rtt = RttEstimator(initial=1.0, floor=0.1, ceiling=1.0)
    # Nothing measured: the configured wait, doubled per re-send.
    assert [rtt.wait(a) for a in range(3)] == [1.0, 2.0, 4.0]
    rtt.sample(0.1)  # estimate 0.1 + 4 x 0.05 = 0.3: above the floor, doubled
    assert [rtt.wait(a) for a in range(3)] == pytest.approx([0.3, 0.6, 1.2])
    for _ in range(50):
        rtt.sample(0.0001)  # a near host: the estimate far under the floor
    assert [rtt.wait(a) for a in range(3)] == [0.1, 0.1, 0.1]
    rtt.sample(0.06)  # the estimate jumps to ~0.07: attempt 1 doubles past the floor
    assert 0.05 < rtt.estimate < 0.1
    assert rtt.wait(0) == 0.1
    assert rtt.wait(1) == pytest.approx(2 * rtt.estimate)
    assert rtt.wait(1) > 0.1
    for _ in range(50):
        rtt.sample(3.0)  # slower than the ceiling: the ceiling, doubled per re-send
    assert [rtt.wait(a) for a in range(3)] == [1.0, 2.0, 4.0]


def test_fixed_wait_without_adaptive() -> None:
    s = scheduler(2, timeout=1.0, retries=0)
    send_all(s, 0.0)
    s.answer(1, CLOSED, "reset", 0.002)
    assert s.rtt.rto == 1.0  # nothing learnt
    assert s.wake_at(0.002) == 1.0


def test_answers_to_re_sent_probes_are_not_measured() -> None:
    # Karn's rule (RFC 6298 section 3): the answer to a re-sent probe may be the first
    # one's, so its time says nothing of the round trip.
    s = scheduler(1, timeout=1.0, retries=1, adaptive=True, min_timeout=0.01)
    send_all(s, 0.0)
    s.expire(1.0)
    send_all(s, 1.0)  # attempt 1
    s.answer(1, CLOSED, "reset", 1.001)
    assert s.rtt.samples == 0
    assert s.rtt.rto == 1.0


def test_batched_answers_give_one_sample() -> None:
    s = scheduler(4, timeout=1.0, adaptive=True, min_timeout=0.01)
    attempt, probes = s.take(0.0)
    keys = [port for _t, port in probes]
    s.arm(keys, s.track(keys, probes, attempt, 0.0), attempt, 0.0)
    assert s.answer_all(keys, 0.05) is not None
    assert s.rtt.samples == 1
    assert s.rtt.srtt == pytest.approx(0.05)


def test_round_trips_run_from_when_a_batch_left_not_when_it_was_queued() -> None:
    # A batch built at 0.0 waits 0.5 s for a busy sender process, leaves at 0.5 and is
    # answered 2 ms later: the round trip is 2 ms, not 502 ms.
    s = scheduler(4, timeout=1.0, adaptive=True, min_timeout=0.01)
    attempt, probes = s.take(0.0)
    keys = [port for _t, port in probes]
    s.arm(keys, s.track(keys, probes, attempt, 0.0), attempt, 0.5)
    assert s.answer_all(keys[:2], 0.502) is not None
    assert s.rtt.srtt == pytest.approx(0.002)
    s.answer(keys[2], CLOSED, "reset", 0.503)
    assert s.take_rows()[-1][4] == pytest.approx(0.003)  # its row's rtt too
    # The last one's deadline runs from when it left as well.
    assert s.expire(0.5 + s.rtt.wait(0) - 0.001) == []
    assert s.expire(0.5 + s.rtt.wait(0)) == [keys[3]]


def test_a_batch_of_answers_is_timed_by_its_last() -> None:
    # Two probes left 10 ms apart; both answers are read together at 12 ms. The first
    # answer sat in the socket buffer (the reader was busy); the last one's 2 ms is the
    # round trip the batch shows.
    s = scheduler(2, timeout=1.0, adaptive=True, min_timeout=0.001)
    for at in (0.0, 0.010):
        attempt, probes = s.take(at, 1)
        keys = [port for _t, port in probes]
        s.arm(keys, s.track(keys, probes, attempt, at), attempt, at)
    assert s.answer_all([1, 2], 0.012) is not None
    assert s.rtt.samples == 1
    assert s.rtt.srtt == pytest.approx(0.002)
