"""Ports handed over as counts give the same reports as the same ports one by one."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.report import FORMATS, ScanInfo, ScanSummary, make_report
from portkit.report._base import LIST_LIMIT, Hosts
from portkit.results import CountKey, PortResult, PortState, ResultBatch

INFO = ScanInfo(
    args="portkit scan 127.0.0.1 127.0.0.2 -p- --syn",
    start=1_700_000_000.0,
    scan_type="syn",
    tcp_ports=tuple(range(1, 301)),
    host_count=2,
    version="0.1.0",
)
END = ScanSummary(end=1_700_000_002.0, elapsed=2.0)
COUNT_AFTER = LIST_LIMIT + 1  # what the CLI asks of the engines

results = st.lists(
    st.builds(
        lambda host, port, state, reason, rtt: PortResult(
            host=host, port=port, transport="tcp", state=state, reason=reason, rtt=rtt
        ),
        st.sampled_from(["127.0.0.1", "127.0.0.2"]),
        st.integers(1, 300),
        # Mostly closed, so that hosts pass the listing limit and get counted.
        st.sampled_from([PortState.CLOSED] * 8 + list(PortState)),
        st.sampled_from(["reset", "syn-ack", "no-response"]),
        st.none() | st.floats(0, 1),
    ),
    max_size=6 * LIST_LIMIT,
)


def as_counted(found: list[PortResult], chunk: int, count_after: int) -> list[ResultBatch]:
    """Batches as a counting engine yields them: closed ports past ``count_after`` counted."""
    made: dict[str, int] = {}
    batches = []
    for start in range(0, len(found), chunk):
        results: list[PortResult] = []
        counts: dict[CountKey, int] = {}
        for result in found[start : start + chunk]:
            if result.state is PortState.CLOSED:
                if made.get(result.host, 0) >= count_after:
                    key: CountKey = (result.host, result.transport, result.state, result.reason)
                    counts[key] = counts.get(key, 0) + 1
                    continue
                made[result.host] = made.get(result.host, 0) + 1
            results.append(result)
        batches.append(ResultBatch(results, counts))
    return batches


def render_one_by_one(fmt: str, found: list[PortResult], chunk: int) -> str:
    out = io.StringIO()
    report = make_report(fmt, out)
    report.begin(INFO)
    for start in range(0, len(found), chunk):
        report.add(found[start : start + chunk])
    report.end(END)
    return out.getvalue()


def render_counted(fmt: str, batches: list[ResultBatch]) -> str:
    out = io.StringIO()
    report = make_report(fmt, out)
    report.begin(INFO)
    for batch in batches:  # as the CLI driver feeds them
        report.add(batch.results)
        if batch.counts:
            report.add_counts(batch.counts)
    report.end(END)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(results, st.integers(1, 40), st.sampled_from(FORMATS))
def test_counted_reports_are_byte_identical(found: list[PortResult], chunk: int, fmt: str) -> None:
    batches = as_counted(found, chunk, COUNT_AFTER)
    assert sum(b.total for b in batches) == len(found)
    assert render_counted(fmt, batches) == render_one_by_one(fmt, found, chunk)


def test_a_sweep_counted_is_byte_identical() -> None:
    # The shape of a real sweep: two open ports among thousands of closed ones.
    found = [
        PortResult(
            host="127.0.0.1",
            port=port,
            transport="tcp",
            state=PortState.OPEN if port in (22, 2999) else PortState.CLOSED,
            reason="syn-ack" if port in (22, 2999) else "reset",
        )
        for port in range(1, 3001)
    ]
    batches = as_counted(found, 256, COUNT_AFTER)
    assert sum(len(b.counts) for b in batches) > 0
    assert sum(len(b.results) for b in batches) < 300  # most closed ports were only counted
    for fmt in FORMATS:
        assert render_counted(fmt, batches) == render_one_by_one(fmt, found, 256)


def test_counts_before_the_limit_are_refused() -> None:
    # A count for a state still listed one by one would lose ports from the listing.
    hosts = Hosts()
    hosts.add(
        [PortResult(host="127.0.0.1", port=1, transport="tcp", state=PortState.CLOSED, reason="x")]
    )
    with pytest.raises(ValueError, match="not past the listing limit"):
        hosts.add_counts({("127.0.0.1", "tcp", PortState.CLOSED, "x"): 5})
    with pytest.raises(ValueError, match="not past the listing limit"):
        hosts.add_counts({("127.0.0.9", "tcp", PortState.CLOSED, "x"): 5})


def test_jsonl_counts_only_closed_ports() -> None:
    report = make_report("jsonl", io.StringIO())
    with pytest.raises(ValueError, match="only closed ports"):
        report.add_counts({("127.0.0.1", "tcp", PortState.FILTERED, "no-response"): 3})
