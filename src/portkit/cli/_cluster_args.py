"""The cluster options of ``portkit scan``, kept apart so ``--help`` imports nothing heavy.

:func:`cluster_options` reads them into the library's ``ClusterOptions``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portkit.scan._cluster import ClusterOptions

__all__ = ["add_cluster_arguments", "cluster_options"]


_EXAMPLES = """
cluster (pip install 'portkit[cluster]'; docs/cluster.md):
  portkit scan 10.0.0.0/24 -p 1-1024 --detect --workers 2   shards on 2 local processes
  portkit scan 10.0.0.0/16 --top 100 --cluster tcp://10.0.0.5:8786 --rate-per-worker 8000
                                                             each worker machine 8,000 probes/s
  portkit scan 10.0.0.0/8 -p 443 --workers 3 --plan-only     shard and count; send nothing
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
    # Absent options stay None (not False): the scan command loads the cluster code only
    # when one of these is given.
    group.add_argument(
        "--rate-per-worker",
        type=float,
        metavar="N",
        help="probes per second each worker sends at most (beside --rate, the whole scan's)",
    )
    group.add_argument(
        "--max-rate-total",
        type=float,
        metavar="N",
        help="probes per second all workers together send at most",
    )
    group.add_argument(
        "--plan-only",
        action="store_true",
        default=None,
        help="plan and shard the scan, print probes, shards and memory; send nothing",
    )


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The :class:`ClusterOptions` the command line asked for, or ``None`` (a local scan).

    The library takes :class:`ClusterOptions`; only the command line knows ``args``.
    """
    from portkit._errors import UsageError
    from portkit.scan._cluster import ClusterOptions
    from portkit.scan._shards import DEFAULT_SHARD_PROBES

    address = getattr(args, "cluster", None)
    workers = getattr(args, "workers", None)
    resume = getattr(args, "resume", None)
    shard_size = getattr(args, "shard_size", None)
    per_worker = getattr(args, "rate_per_worker", None)
    total = getattr(args, "max_rate_total", None)
    plan_only = bool(getattr(args, "plan_only", None))
    if address is None and workers is None and resume is None and not plan_only:
        for flag, value in (
            ("--shard-size", shard_size),
            ("--rate-per-worker", per_worker),
            ("--max-rate-total", total),
        ):
            if value is not None:
                raise UsageError(f"{flag} needs --workers, --cluster or --resume")
        return None
    return ClusterOptions(
        address=address,
        workers=workers,
        resume=resume,
        shard_probes=DEFAULT_SHARD_PROBES if shard_size is None else shard_size,
        quiet=not getattr(args, "debug", False),
        rate_per_worker=per_worker,
        max_rate_total=total,
        plan_only=plan_only,
    )
