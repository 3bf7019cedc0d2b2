"""Shards, their order, the result codec and the --resume journal (no cluster needed)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit._errors import UsageError
from portkit.scan._cluster import ClusterOptions
from portkit.scan._model import Identification, PortResult, PortState, TlsInfo
from portkit.scan._ports import PortSet
from portkit.scan._shards import (
    Layout,
    ShardJournal,
    choose_layout,
    make_shards,
    result_from_json,
    result_to_json,
)
from portkit.scan._targets import Target


def targets(n: int) -> list[Target]:
    return [Target(address=f"127.201.{i // 250}.{i % 250 + 1}") for i in range(n)]


def ports(tcp: int, udp: int = 0) -> PortSet:
    return PortSet(tcp=tuple(range(1, tcp + 1)), udp=tuple(range(1, udp + 1)))


@given(
    hosts=st.integers(1, 40),
    tcp=st.integers(0, 300),
    udp=st.integers(0, 40),
    host_block=st.integers(1, 12),
    port_block=st.integers(1, 400),
)
@settings(max_examples=150, deadline=None)
def test_shards_cover_every_probe_exactly_once(
    hosts: int, tcp: int, udp: int, host_block: int, port_block: int
) -> None:
    port_set = ports(tcp, udp)
    shards = make_shards(
        targets(hosts), port_set, Layout(host_block=host_block, port_block=port_block)
    )
    seen: list[tuple[str, str, int]] = []
    for shard in shards:
        for target in shard.targets:
            seen += [(target.address, "tcp", p) for p in shard.ports.tcp]
            seen += [(target.address, "udp", p) for p in shard.ports.udp]
        assert len(shard.targets) <= host_block
        assert len(shard.ports) <= port_block
    expected = {
        (t.address, tr, p)
        for t in targets(hosts)
        for tr in ("tcp", "udp")
        for p in port_set.for_transport(tr)
    }
    assert len(seen) == len(expected) == hosts * (tcp + udp)
    assert set(seen) == expected
    assert [s.index for s in shards] == list(range(len(shards)))
    assert sum(s.probe_count for s in shards) == len(expected)


def test_release_order_is_port_block_major_so_neighbours_are_different_hosts() -> None:
    shards = make_shards(targets(6), ports(3000), Layout(host_block=2, port_block=1000))
    assert [(s.port_block, s.host_block) for s in shards] == [
        (pb, hb) for pb in range(3) for hb in range(3)
    ]
    for before, after in itertools.pairwise(shards):
        assert before.host_block != after.host_block


def test_layout_cuts_a_full_sweep_into_port_blocks_of_one_host() -> None:
    layout = choose_layout(1, ports(65535), slots=2, shard_probes=4096)
    assert layout == Layout(host_block=1, port_block=4096)
    assert len(make_shards(targets(1), ports(65535), layout)) == 16


def test_layout_groups_hosts_but_leaves_a_host_block_per_worker() -> None:
    # 16 hosts x 1,000 ports: 4 hosts fit 4,096 probes, but 8 workers want 8 blocks.
    assert choose_layout(16, ports(1000), slots=2, shard_probes=4096) == Layout(
        host_block=4, port_block=1000
    )
    assert choose_layout(16, ports(1000), slots=8, shard_probes=4096) == Layout(
        host_block=2, port_block=1000
    )


def test_bad_sizes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="at least 1 probe, not 0"):
        choose_layout(1, ports(10), slots=1, shard_probes=0)
    with pytest.raises(UsageError, match="not 0x5"):
        Layout(host_block=0, port_block=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": "tcp://127.0.0.1:8786", "workers": 2}, "either --cluster or --workers"),
        ({"workers": 0}, "workers must be at least 1, not 0"),
        ({"address": "127.0.0.1:8786"}, "tcp://HOST:PORT, not '127.0.0.1:8786'"),
        ({"resume": "s", "shard_probes": -3}, "at least 1 probe, not -3"),
    ],
)
def test_cluster_options_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ClusterOptions(**kwargs)  # type: ignore[arg-type]


# --- the result codec --------------------------------------------------------------

_text = st.none() | st.text(max_size=12)
_tls = st.builds(
    TlsInfo,
    version=_text,
    cipher=_text,
    alpn=_text,
    subject=_text,
    issuer=_text,
    not_before=_text,
    not_after=_text,
    self_signed=st.none() | st.booleans(),
    subject_alt_names=st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
_ident = st.builds(
    Identification,
    service=_text,
    product=_text,
    version=_text,
    extra=_text,
    tls=st.none() | _tls,
    confidence=st.integers(0, 10),
    method=st.sampled_from(["probed", "table"]),
    probe=_text,
    evidence=st.binary(max_size=64),
)
_results = st.builds(
    PortResult,
    host=st.sampled_from(["127.0.0.1", "::1", "10.1.2.3"]),
    port=st.integers(0, 65535),
    transport=st.sampled_from(["tcp", "udp"]),
    state=st.sampled_from(list(PortState)),
    reason=st.sampled_from(["syn-ack", "conn-refused", "no-response"]),
    hostname=_text,
    expected=_text,
    rtt=st.none() | st.floats(0, 10, allow_nan=False),
    identified=st.none() | _ident,
)


@given(_results)
def test_results_survive_the_journal_codec(result: PortResult) -> None:
    encoded = json.loads(json.dumps(result_to_json(result)))
    assert result_from_json(encoded) == result


# --- the journal ------------------------------------------------------------------


def sample(port: int, state: PortState = PortState.CLOSED) -> PortResult:
    return PortResult(host="127.0.0.1", port=port, transport="tcp", state=state, reason="x")


def test_journal_records_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state"
    layout = Layout(host_block=2, port_block=100)
    assert ShardJournal.open_existing(path, fingerprint="f") is None
    with ShardJournal.create(path, fingerprint="f", layout=layout, shard_count=3) as journal:
        journal.record(2, [sample(1), sample(2, PortState.OPEN)])
        journal.record(0, [sample(3)])
        journal.record(2, [sample(99)])  # twice: counts once, the first one stays
    reopened = ShardJournal.open_existing(path, fingerprint="f")
    assert reopened is not None
    with reopened:
        assert reopened.layout == layout
        assert reopened.finished == {0, 2}
        assert reopened.results(2) == [sample(1), sample(2, PortState.OPEN)]
        assert reopened.results(0) == [sample(3)]
    assert not list(tmp_path.glob(".state.*"))  # nothing left aside


def test_a_record_cut_short_is_dropped_and_the_file_stays_appendable(tmp_path: Path) -> None:
    path = tmp_path / "state"
    with ShardJournal.create(
        path, fingerprint="f", layout=Layout(host_block=1, port_block=1), shard_count=4
    ) as journal:
        journal.record(0, [sample(1)])
        journal.record(1, [sample(2)])
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # a crash in the middle of shard 1's line
    journal2 = ShardJournal.open_existing(path, fingerprint="f")
    assert journal2 is not None
    with journal2:
        assert journal2.finished == {0}
        journal2.record(1, [sample(5)])
    journal3 = ShardJournal.open_existing(path, fingerprint="f")
    assert journal3 is not None
    with journal3:
        assert journal3.finished == {0, 1}
        assert journal3.results(1) == [sample(5)]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_state_file_of_another_scan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    ShardJournal.create(
        path, fingerprint="one", layout=Layout(host_block=1, port_block=1), shard_count=1
    ).close()
    before = path.read_bytes()
    with pytest.raises(UsageError, match="belongs to a different scan"):
        ShardJournal.open_existing(path, fingerprint="two")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello\n",
        b'{"portkit-scan-state": 99}\n',
        b"{",
        b'{"portkit-scan-state": 1, "fingerprint": "f"}\n',
        b'{"portkit-scan-state": 1, "fingerprint": "f", "host_block": 0, "port_block": 1}\n',
    ],
)
def test_a_file_that_is_no_state_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="is not a portkit scan state file"):
        ShardJournal.open_existing(path, fingerprint="f")
    assert path.read_bytes() == content


def _journal_bytes(path: Path, records: int) -> bytes:
    with ShardJournal.create(
        path, fingerprint="f", layout=Layout(host_block=1, port_block=1), shard_count=records
    ) as journal:
        for index in range(records):
            journal.record(index, [sample(index), sample(index + 100, PortState.OPEN)])
    return path.read_bytes()


@given(cut=st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_a_state_file_cut_anywhere_keeps_exactly_its_whole_records(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    path = tmp_path_factory.mktemp("cut") / "state"
    whole = _journal_bytes(path, 3)
    lines = whole.splitlines(keepends=True)
    cut %= len(whole) + 1
    path.write_bytes(whole[:cut])
    if cut < len(lines[0]):
        with pytest.raises(UsageError):
            ShardJournal.open_existing(path, fingerprint="f")
        return
    journal = ShardJournal.open_existing(path, fingerprint="f")
    assert journal is not None
    with journal:
        kept = sum(1 for i in range(1, 4) if len(b"".join(lines[: i + 1])) <= cut)
        assert journal.finished == set(range(kept))
        for index in journal:
            assert journal.results(index) == [sample(index), sample(index + 100, PortState.OPEN)]


@given(content=st.binary(max_size=300))
@settings(max_examples=100, deadline=None)
def test_arbitrary_bytes_as_a_state_file_are_refused_with_a_usage_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("junk") / "state"
    path.write_bytes(content)
    with pytest.raises(UsageError):
        ShardJournal.open_existing(path, fingerprint="f")


def test_a_record_damaged_by_hand_is_a_usage_error_on_replay(tmp_path: Path) -> None:
    path = tmp_path / "state"
    whole = _journal_bytes(path, 1)
    path.write_bytes(whole.replace(b'"state":"open"', b'"state":"sideways"'))
    journal = ShardJournal.open_existing(path, fingerprint="f")
    assert journal is not None
    with journal, pytest.raises(UsageError, match="is damaged at shard 0"):
        journal.results(0)
