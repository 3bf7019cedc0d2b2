"""Big plans: targets by index, the permuted host order, lazy shards, --plan-only, and
the per-worker rate ceilings (no cluster and no traffic needed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.cli import main
from portkit.scan._cluster import ClusterOptions
from portkit.scan._engine import EngineOptions
from portkit.scan._ports import PortSet
from portkit.scan._shards import Layout, Order, ShardJournal, make_shards
from portkit.scan._targets import TargetTable, iter_targets, parse_targets


@pytest.mark.parametrize(
    "texts",
    [
        ["127.0.0.0/30", "127.3-4.1-2.7-9"],
        ["::1", "127.0.0.1"],
        ["127.0.0.0/15"],  # past the listing limit: computed, not listed
        ["127.9.0.0/16", "127.9.0.0/16"],  # named twice, large: scanned twice, as nmap
    ],
)
def test_a_target_table_gives_the_addresses_in_scan_order(texts: list[str]) -> None:
    specs = parse_targets(texts)
    table = TargetTable(specs)
    listed = list(iter_targets(specs))
    assert len(table) == len(listed)
    for index in [*range(min(600, len(listed))), len(listed) - 1, len(listed) // 2]:
        assert table.at(index) == listed[index]


def test_an_excluded_address_keeps_its_index_in_a_large_table() -> None:
    table = TargetTable(parse_targets(["127.0.0.0/15"]), exclude=parse_targets(["127.0.1.0/24"]))
    assert len(table) == 1 << 17
    addresses = [None if (t := table.at(i)) is None else t.address for i in (255, 256, 511, 512)]
    assert addresses == ["127.0.0.255", None, None, "127.0.2.0"]


@given(n=st.integers(1, 3000), seed=st.integers(0, 2**64))
@settings(max_examples=200, deadline=None)
def test_the_walk_is_a_permutation_of_every_host(n: int, seed: int) -> None:
    order = Order.for_count(n, seed)
    assert order.prime > n
    walked = list(order.hosts(0, order.positions, n))
    assert sorted(walked) == list(range(n))
    # Any stretch of the walk, computed from its start alone, is that part of the walk.
    cut = order.positions // 3
    pieces = list(order.hosts(0, cut, n)) + list(order.hosts(cut, order.positions, n))
    assert pieces == walked
    assert Order.for_count(n, seed) == order  # the seed fixes the walk


def test_the_walk_spreads_neighbouring_hosts_apart() -> None:
    order = Order.for_count(65536, seed=7)
    first = list(itertools.islice(order.hosts(0, order.positions, 65536), 256))
    assert first != sorted(first)
    # The first 256 hosts come from many /24s, not a burst into one.
    assert len({h // 256 for h in first}) > 128


@given(
    hosts=st.integers(1, 60),
    tcp=st.integers(1, 50),
    block=st.integers(1, 9),
    seed=st.integers(0, 99),
)
@settings(max_examples=100, deadline=None)
def test_permuted_shards_cover_every_probe_exactly_once(
    hosts: int, tcp: int, block: int, seed: int
) -> None:
    table = TargetTable(parse_targets([f"127.77.0.1-{hosts}"]))
    ports = PortSet(tcp=tuple(range(1, tcp + 1)))
    layout = Layout(host_block=block, port_block=7, order=Order.for_count(hosts, seed))
    shards = make_shards(table, ports, layout)
    probes = [(t.address, p) for s in shards for t in s.targets for p in s.ports.tcp]
    assert len(probes) == len(set(probes)) == hosts * tcp
    assert [s.index for s in shards] == list(range(len(shards)))


def test_the_journal_keeps_the_walk(tmp_path: Path) -> None:
    path = tmp_path / "state"
    layout = Layout(host_block=3, port_block=5, order=Order.for_count(1000, seed=3))
    with ShardJournal.create(path, fingerprint="f", layout=layout, shard_count=2):
        pass
    reopened = ShardJournal.open_existing(path, fingerprint="f")
    assert reopened is not None
    with reopened:
        assert reopened.layout == layout


def test_rate_ceilings_take_the_lowest_and_split_per_slot() -> None:
    options = EngineOptions(rate=50_000.0)
    per_worker = ClusterOptions(workers=3, rate_per_worker=8000.0)
    # 3 machines x 8,000 = 24,000 under --rate 50,000; 6 slots (2 threads a worker).
    assert per_worker.ceilings(options, machines=3).share(6).rate == 4000.0
    assert per_worker.ceilings(EngineOptions(), machines=3).rate == 24_000.0
    total = ClusterOptions(workers=3, rate_per_worker=8000.0, max_rate_total=9000.0)
    assert total.ceilings(EngineOptions(), machines=3).share(3).rate == 3000.0
    assert ClusterOptions(workers=3).ceilings(EngineOptions(), machines=3).rate is None


def test_plan_only_shards_a_slash_8_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Loopback on purpose: were anything sent by mistake, it would stay on this machine.
    code = main(["scan", "127.0.0.0/12", "-p", "9", "--plan-only", "--workers", "3", "-o", "jsonl"])
    assert code == 0
    out, err = capsys.readouterr()
    assert '"type":"port"' not in out.replace(" ", "")  # no result: nothing was probed
    line = next(x for x in err.splitlines() if x.startswith("plan:"))
    assert "1,048,576 probes (1,048,576 hosts)" in line
    assert "257 shards on 3 slots" in line  # 4,096 walk positions a shard
    assert "nothing sent" in line


def test_plan_only_applies_the_per_worker_rate(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["scan", "127.0.0.1", "-p", "1-100", "--plan-only", "--workers", "2",
         "--rate-per-worker", "500", "--rate", "600"]
    )  # fmt: skip
    assert code == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("plan:"))
    assert "300 probes/s each" in line  # --rate 600 is below 2 x 500: 600 split in two
