"""Hosts.add (the bulk path a sweep takes) agrees with HostTable.add one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.report._base import LIST_LIMIT, Hosts, HostTable
from portkit.results import PortResult, PortState

results = st.lists(
    st.builds(
        lambda host, port, transport, state, reason: PortResult(
            host=host, port=port, transport=transport, state=state, reason=reason
        ),
        st.sampled_from(["127.0.0.1", "127.0.0.2", "::1"]),
        st.integers(1, 200),
        st.sampled_from(["tcp", "udp"]),
        st.sampled_from(list(PortState)),
        st.sampled_from(["reset", "syn-ack", "no-response", "conn-refused"]),
    ),
    max_size=4 * LIST_LIMIT,
)


@settings(max_examples=200)
@given(results, st.integers(1, 7))
def test_bulk_add_equals_one_by_one(found: list[PortResult], chunk: int) -> None:
    hosts = Hosts()
    for start in range(0, len(found), chunk):  # in batches, as the engines yield them
        hosts.add(found[start : start + chunk])
    reference: dict[str, HostTable] = {}
    for result in found:
        reference.setdefault(result.host, HostTable(result.host)).add(result)
    tables = {t.address: t for t in hosts.tables()}
    assert set(tables) == set(reference)
    for address, want in reference.items():
        got = tables[address]
        assert got.counts == want.counts
        assert got.ports() == want.ports()
        assert got.extra() == want.extra()
        assert got.listed == want.listed
        for transport, state, _count in want.extra():
            assert got.extra_reasons(transport, state) == want.extra_reasons(transport, state)


def test_a_sweep_lists_the_open_and_counts_the_rest() -> None:
    hosts = Hosts()
    closed = [
        PortResult(
            host="127.0.0.1", port=p, transport="tcp", state=PortState.CLOSED, reason="reset"
        )
        for p in range(1, 1001)
    ]
    opened = PortResult(
        host="127.0.0.1", port=22, transport="tcp", state=PortState.OPEN, reason="syn-ack"
    )
    hosts.add([*closed[:500], opened, *closed[500:]])
    (table,) = hosts.tables()
    assert table.listed == [opened]
    assert table.extra() == [("tcp", PortState.CLOSED, 1000)]
    assert table.extra_reasons("tcp", PortState.CLOSED) == [("reset", 1000)]
    assert table.total == 1001


# Few kinds of result, many of each: past the listing limit, where counting in bulk applies.
sweeps = st.lists(
    st.builds(
        lambda host, port, state, reason, hostname: PortResult(
            host=host, port=port, transport="tcp", state=state, reason=reason, hostname=hostname
        ),
        st.sampled_from(["127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"]),
        st.integers(1, 65535),
        st.sampled_from([PortState.CLOSED] * 6 + [PortState.OPEN, PortState.FILTERED]),
        st.sampled_from(["reset", "reset", "reset", "syn-ack", "no-response"]),
        st.sampled_from([None, "a.example", "b.example"]),
    ),
    max_size=20 * LIST_LIMIT,
)


@settings(max_examples=100)
@given(sweeps, st.integers(1, 150))
def test_counting_in_bulk_equals_one_by_one(found: list[PortResult], chunk: int) -> None:
    bulk, one_by_one = Hosts(), Hosts()
    for start in range(0, len(found), chunk):
        bulk.add(found[start : start + chunk])
    one_by_one.add(iter(found))  # not a sequence: never counted in bulk
    got = {t.address: t for t in bulk.tables()}
    want = {t.address: t for t in one_by_one.tables()}
    assert set(got) == set(want)
    for address, table in want.items():
        assert got[address].hostname == table.hostname
        assert got[address].listed == table.listed
        assert got[address]._reasons == table._reasons
        assert list(got[address]._reasons) == list(table._reasons)  # same order too
        assert got[address]._held == table._held


def test_a_summarised_batch_is_counted_in_bulk() -> None:
    def closed(port: int) -> PortResult:
        return PortResult(
            host="127.0.0.1", port=port, transport="tcp", state=PortState.CLOSED, reason="reset"
        )

    hosts = Hosts()
    hosts.add([closed(p) for p in range(1, LIST_LIMIT + 2)])  # past the limit: counted only
    opened = PortResult(
        host="127.0.0.1", port=80, transport="tcp", state=PortState.OPEN, reason="syn-ack"
    )
    batch = [closed(p) for p in range(100, 200)] + [opened]
    assert hosts._count(batch)
    (table,) = hosts.tables()
    assert table.listed == [opened]
    assert table.extra_reasons("tcp", PortState.CLOSED) == [("reset", LIST_LIMIT + 101)]
    # A new reason or a new host: not counted in bulk (the loop keeps their order).
    odd = PortResult(
        host="127.0.0.1", port=6, transport="tcp", state=PortState.CLOSED, reason="other"
    )
    assert not hosts._count([closed(5), odd])
    elsewhere = PortResult(
        host="::1", port=1, transport="tcp", state=PortState.CLOSED, reason="reset"
    )
    assert not hosts._count([closed(5), elsewhere])
