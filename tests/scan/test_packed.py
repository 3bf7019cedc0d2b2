"""Results packed as columns to travel from a worker, and unpacked the same."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.results import Identification, PortResult, PortState
from portkit.scan._packed import pack, unpack

_TEXT = st.one_of(st.none(), st.sampled_from(["http", "ssh", "", "é \x00 name"]))

results = st.builds(
    PortResult,
    host=st.sampled_from(["127.0.0.1", "10.0.0.255", "::1", "fd00::2"]),
    port=st.integers(0, 65535),
    transport=st.sampled_from(["tcp", "udp"]),
    state=st.sampled_from(list(PortState)),
    reason=st.sampled_from(["syn-ack", "conn-refused", "no-response", "port-unreach"]),
    hostname=_TEXT,
    expected=_TEXT,
    rtt=st.one_of(st.none(), st.floats(0, 10, allow_nan=False), st.just(0.0)),
    identified=st.one_of(
        st.none(),
        st.builds(Identification, service=_TEXT, evidence=st.binary(max_size=8)),
    ),
)


@given(st.lists(results, max_size=60))
@settings(max_examples=300, deadline=None)
def test_packed_results_come_back_the_same_in_the_same_order(
    given_results: list[PortResult],
) -> None:
    travelled = pickle.loads(pickle.dumps(pack(given_results)))
    assert unpack(travelled) == given_results
    assert len(travelled) == len(given_results)
