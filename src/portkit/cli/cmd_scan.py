"""``portkit scan``: which ports of these computers have an application listening."""

from __future__ import annotations

import argparse
import shlex

SUMMARY = "scan computers for listening applications: which ports are open (like nmap)"

_EPILOG = """\
examples:
  portkit scan 127.0.0.1                      the first 1,000 ports of the --top ordering
  portkit scan 127.0.0.1 -p-                  every port, 1-65535
  portkit scan 127.0.0.1-20 ::1 -p 22,80,443  several hosts, a few ports
  portkit scan localhost -p http,ssh,imaps    service names from the registry
  portkit scan 10.0.0.0/28 --exclude 10.0.0.1 -p 1-1024 -o xml --output scan.xml
  portkit scan 127.0.0.1 -p T:80,U:53 --udp   TCP 80 and UDP 53
  portkit scan 127.0.0.1 --top 100 --detect   and identify what answers
  sudo portkit scan 127.0.0.1 -p- --syn       raw SYN packets (root or CAP_NET_RAW)

states: open (an application accepted), closed (refused), filtered (no answer after
the retries), open|filtered (UDP: silence). Output formats: table (default), json
(one document), jsonl (one line per result, streamed), grep, xml (nmap's XML),
html (one self-contained page; also from a saved scan: portkit report scan.json -o html).
"""


_CLUSTER_OPTIONS = (
    "cluster",
    "workers",
    "resume",
    "shard_size",
    "rate_per_worker",
    "max_rate_total",
    "plan_only",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="address, CIDR block, range (127.0.0.1-20) or host name",
    )
    ports = parser.add_mutually_exclusive_group()
    ports.add_argument(
        "-p",
        "--ports",
        metavar="SPEC",
        help="ports: 22,80,1000-2000, '-' for all, names (http,ssh), T:/U: prefixes",
    )
    ports.add_argument(
        "--top", type=int, metavar="N", help="the N most commonly open ports (see docs/scan.md)"
    )
    parser.add_argument(
        "-iL", dest="target_file", metavar="FILE", help="read targets from FILE ('-': stdin)"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="TARGETS",
        help="skip these targets (comma-separated; repeatable)",
    )
    parser.add_argument(
        "--syn", action="store_true", help="TCP SYN scan with raw packets (root or CAP_NET_RAW)"
    )
    parser.add_argument(
        "--udp", action="store_true", help="scan UDP ports too (unprefixed ports go to both)"
    )
    parser.add_argument("--rate", type=float, metavar="PPS", help="at most PPS probes per second")
    parser.add_argument("--concurrency", type=int, metavar="N", help="at most N probes in flight")
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="processes on this machine for large TCP scans (default: one per idle core, at "
        "most one per 6,000 probes); --workers runs shards on a Dask cluster instead",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1000.0,
        metavar="MS",
        help="wait per probe before re-sending (default 1000)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="re-sends of an unanswered probe (default 2)",
    )
    parser.add_argument(
        "--detect",
        action="store_true",
        help="identify what answers on each open TCP port and open or silent UDP port",
    )
    parser.add_argument(
        "-o",
        "--format",
        # The names of portkit.report.FORMATS (a test keeps them equal), written out so
        # that configuring the parser does not import every report.
        choices=("table", "json", "jsonl", "grep", "xml", "html"),
        default="table",
        help="output format (default table)",
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write the report to FILE instead of stdout"
    )
    from portkit.cli._cluster_args import add_cluster_arguments

    add_cluster_arguments(parser)


def _command_line(args: argparse.Namespace) -> str:
    words = ["portkit", "scan", *args.targets]
    for flag, value in (
        ("-p", args.ports),
        ("--top", args.top),
        ("-iL", args.target_file),
        ("--rate", args.rate),
        ("--concurrency", args.concurrency),
        ("--processes", args.processes),
        ("--workers", args.workers),
        ("--cluster", args.cluster),
        ("-o", args.format if args.format != "table" else None),
        ("--output", args.output),
    ):
        if value is not None:
            words += [flag, str(value)]
    for ex in args.exclude:
        words += ["--exclude", ex]
    words += [
        f for f, on in (("--syn", args.syn), ("--udp", args.udp), ("--detect", args.detect)) if on
    ]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    import gc

    # A scan makes an object per port and keeps few; the cyclic collector's passes over
    # everything imported so far are pure cost to this short-lived process. Set what
    # exists aside and collect young objects less often (still every 50,000 objects).
    # Both are undone afterwards (main() may be called in a longer-lived process).
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        return _run(args)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from portkit.cli._scan_run import run_scan_command

    cluster = None
    if any(getattr(args, name, None) is not None for name in _CLUSTER_OPTIONS):
        # Only then: the cluster module and its imports cost a scan's start-up ~20 ms.
        from portkit.cli._cluster_args import cluster_options

        cluster = cluster_options(args)

    targets = list(args.targets)
    if args.target_file:
        from portkit.scan._targets import read_target_file

        targets += read_target_file(args.target_file)
    exclude = [t for group in args.exclude for t in group.split(",") if t.strip()]
    return asyncio.run(
        run_scan_command(
            targets=targets,
            ports=args.ports,
            top=args.top,
            syn=args.syn,
            udp=args.udp,
            # --udp alone is a UDP scan (T: items in -p still go to TCP), as nmap -sU.
            tcp=not args.udp or args.syn,
            exclude=exclude,
            timeout=args.timeout / 1000,
            retries=args.retries,
            rate=args.rate,
            concurrency=args.concurrency,
            processes=args.processes,
            detect=args.detect,
            fmt=args.format,
            output=args.output,
            command_line=_command_line(args),
            cluster=cluster,
        )
    )
