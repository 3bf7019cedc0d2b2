"""The cluster options of ``portkit scan``, kept apart so ``--help`` imports nothing heavy.

The options are read by :func:`portkit.scan._cluster.cluster_options_from_args`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_cluster_arguments"]


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster``, ``--workers``, ``--resume`` and ``--shard-size`` to ``parser``."""
    group = parser.add_argument_group("cluster (needs portkit[cluster]; see docs/cluster.md)")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster", metavar="ADDRESS", help="run shards on this Dask scheduler (tcp://HOST:PORT)"
    )
    where.add_argument(
        "--workers", type=int, metavar="N", help="run shards on a local cluster of N processes"
    )
    group.add_argument(
        "--resume",
        metavar="STATE",
        help="record finished shards in STATE; continue from it when it exists",
    )
    group.add_argument(
        "--shard-size",
        type=int,
        metavar="PROBES",
        help="probes per shard (default 4096)",
    )
