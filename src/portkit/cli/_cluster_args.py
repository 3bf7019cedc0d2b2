"""The cluster options of ``portkit scan``, kept apart so ``--help`` imports nothing heavy.

The options are read by :func:`portkit.scan._cluster.cluster_options_from_args`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_cluster_arguments"]


_EXAMPLES = """
cluster (pip install 'portkit[cluster]'; docs/cluster.md):
  portkit scan 10.0.0.0/24 -p 1-1024 --detect --workers 2   shards on 2 local processes
  portkit scan 10.0.0.0/16 --top 100 --cluster tcp://10.0.0.5:8786
  portkit scan 10.0.0.0/16 --top 100 --resume scan.state     after Ctrl-C: the same
                                                             command runs the rest
"""


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster``, ``--workers``, ``--resume`` and ``--shard-size`` to ``parser``.

    Their examples are appended to the parser's epilog.
    """
    parser.epilog = (parser.epilog or "") + _EXAMPLES
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
