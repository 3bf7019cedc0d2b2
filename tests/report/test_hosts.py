"""Hosts.add (the bulk path a sweep takes) agrees with HostTable.add one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.report._base import LIST_LIMIT, Hosts, HostTable
from portkit.scan._model import PortResult, PortState

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
