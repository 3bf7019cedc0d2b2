"""``portkit scan``: which ports of these computers have an application listening."""

from __future__ import annotations

import argparse
import contextlib
import shlex

from portkit.cli._args import probe_seconds

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
  portkit scan 127.0.0.1 -p- --detect=light   identify with fewer probes (light, normal, all)
  sudo portkit scan 127.0.0.1 -p- --syn       raw SYN packets (root or CAP_NET_RAW)
  portkit scan 127.0.0.1 -sT -Pn -n -sV -oA base   nmap's flags: base.nmap, base.xml, base.gnmap
  portkit scan 127.0.0.1 --top-ports 100 -oX -     nmap's XML on stdout

states: open (an application accepted), closed (refused), filtered (no answer after
the retries), open|filtered (UDP: silence). Output formats: table (default), json
(one document), jsonl (one line per result, streamed), grep, xml (nmap's XML),
html (one self-contained page; also from a saved scan: portkit report scan.json -o html).
nmap's flags are accepted as aliases: see the table in docs/scan.md.
"""

# nmap's -T0 .. -T5 as (probe timeout in seconds, retries, probes per second, concurrency); None
# keeps portkit's default. -T0..-T2 send one probe at a time with nmap's fixed gaps
# between probes (5 min, 15 s, 0.4 s); -T4 and -T5 wait less for an answer, as nmap's
# aggressive templates lower their round-trip limits. --timeout, --retries, --rate and
# --concurrency given explicitly win over the template.
_TIMING: dict[int, tuple[float | None, int | None, float | None, int | None]] = {
    0: (None, None, 1 / 300, 1),
    1: (None, None, 1 / 15, 1),
    2: (None, None, 2.5, 1),
    3: (None, None, None, None),
    4: (0.5, None, None, None),
    5: (0.25, 1, None, None),
}

# nmap's -oN/-oX/-oG: the report format each writes.
_NMAP_OUTPUTS = {"oN": "table", "oX": "xml", "oG": "grep"}
# -oA BASE: BASE plus these, as nmap names them.
_ALL_OUTPUTS = (("table", ".nmap"), ("xml", ".xml"), ("grep", ".gnmap"))


_CLUSTER_OPTIONS = (
    "cluster",
    "workers",
    "resume",
    "shard_size",
    "rate_per_worker",
    "max_rate_total",
    "plan_only",
)


# portkit.scan._identify.DETECT_LEVELS (a test keeps them equal), written out so that
# configuring the parser does not import identification.
_DETECT_LEVELS = ("light", "normal", "all")


class _DetectLevel(argparse.Action):
    """``--detect=LEVEL``: detection on, at that level."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        namespace.detect = True
        namespace.detect_level = self.const


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
        "--top",
        "--top-ports",
        dest="top",
        type=int,
        metavar="N",
        help="the N most commonly open ports (see docs/scan.md)",
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
        "--syn",
        "-sS",
        action="store_true",
        help="TCP SYN scan with raw packets (root or CAP_NET_RAW)",
    )
    parser.add_argument(
        "--udp", "-sU", action="store_true", help="scan UDP ports (with -sT or --syn: TCP too)"
    )
    parser.add_argument(
        "-sT",
        dest="connect",
        action="store_true",
        help="TCP connect scan (the default; with -sU: TCP and UDP)",
    )
    parser.add_argument(
        "--rate",
        "--max-rate",
        dest="rate",
        type=float,
        metavar="PPS",
        help="at most PPS probes per second",
    )
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
        type=probe_seconds,
        metavar="SECONDS",
        help="seconds to wait for a probe's answer before re-sending (default 1; 0.25 for "
        "250 ms); TCP scans wait less, down to 0.1, where measured round trips are shorter",
    )
    parser.add_argument(
        "--retries",
        "--max-retries",
        dest="retries",
        type=int,
        metavar="N",
        help="re-sends of an unanswered probe (default 2)",
    )
    parser.add_argument(
        "-T",
        dest="timing",
        type=int,
        choices=range(6),
        metavar="0-5",
        help="nmap's timing templates -T0 (slowest) .. -T5 (fastest); see docs/scan.md",
    )
    parser.add_argument(
        "--min-rate",
        type=float,
        metavar="PPS",
        help="accepted for nmap's sake: portkit never slows below the rate it can reach",
    )
    parser.add_argument(
        "--host-timeout",
        metavar="TIME",
        help="stop the scan after TIME (900, 30s, 500ms, 15m, 1h) and report what was found",
    )
    parser.add_argument(
        "--detect",
        "-sV",
        action="store_true",
        help="identify what answers on each open TCP port and open or silent UDP port; "
        "--detect=LEVEL says how far down the probe ladder to go: light (the likely "
        "probe and TLS), normal (the default) or all (also the rare probes, in twice "
        "the time), like nmap's --version-intensity",
    )
    # "--detect=all" is an option string of its own: argparse takes an exact match
    # before splitting at "=", and --detect itself takes no value, so that
    # `portkit scan --detect HOST` (and nmap's -sV HOST) still scans HOST.
    for level in _DETECT_LEVELS:
        parser.add_argument(
            f"--detect={level}",
            action=_DetectLevel,
            nargs=0,
            const=level,
            dest="detect_level",
            help=argparse.SUPPRESS,
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
    for flag, fmt in _NMAP_OUTPUTS.items():
        parser.add_argument(
            f"-{flag}",
            dest=flag,
            metavar="FILE",
            help=f"also write the {fmt} report to FILE ('-': stdout, instead of the table)",
        )
    parser.add_argument(
        "-oA",
        dest="oA",
        metavar="BASE",
        help="also write BASE.nmap (table), BASE.xml and BASE.gnmap (grep), as nmap",
    )
    parser.add_argument(
        "--open", dest="open_only", action="store_true", help="list only open ports"
    )
    parser.add_argument("--reason", action="store_true", help="add a REASON column to the table")
    # Accepted so that nmap's habits work; each is what portkit does anyway.
    parser.add_argument(
        "-Pn", action="store_true", help="no host discovery (portkit never does any)"
    )
    parser.add_argument("-n", action="store_true", help="no reverse DNS (portkit never does any)")
    parser.add_argument(
        "-6",
        dest="ipv6",
        action="store_true",
        help="IPv6 (portkit scans IPv6 addresses without it)",
    )
    from portkit.cli._args import add_verbosity

    add_verbosity(parser, verbose_help="also print each open port on stderr as it is found")
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
        ("--timeout", args.timeout),
        ("--retries", args.retries),
        ("--host-timeout", args.host_timeout),
        ("--workers", args.workers),
        ("--cluster", args.cluster),
        ("-o", args.format if args.format != "table" else None),
        ("--output", args.output),
        ("-oN", args.oN),
        ("-oX", args.oX),
        ("-oG", args.oG),
        ("-oA", args.oA),
    ):
        if value is not None:
            words += [flag, str(value)]
    if args.timing is not None:
        words.append(f"-T{args.timing}")
    for ex in args.exclude:
        words += ["--exclude", ex]
    words += [
        f
        for f, on in (
            ("-sT", args.connect),
            ("--syn", args.syn),
            ("--udp", args.udp),
            (_detect_flag(args), args.detect),
            ("--open", args.open_only),
            ("--reason", args.reason),
        )
        if on
    ]
    return shlex.join(words)


def _detect_flag(args: argparse.Namespace) -> str:
    level = args.detect_level
    return "--detect" if level in (None, "normal") else f"--detect={level}"


def _outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """Every (format, file) the run writes; file None is stdout.

    The ``-o`` report goes to ``--output`` or stdout; nmap's -oN/-oX/-oG/-oA add files.
    As with nmap, an nmap output sent to stdout ('-') replaces the table there.
    """
    from portkit._errors import UsageError

    extra: list[tuple[str, str | None]] = []
    for flag, fmt in _NMAP_OUTPUTS.items():
        path = getattr(args, flag)
        if path is not None:
            extra.append((fmt, None if path == "-" else path))
    if args.oA is not None:
        if args.oA in ("", "-"):
            raise UsageError(f"-oA needs a file name base, not {args.oA!r}")
        extra += [(fmt, args.oA + suffix) for fmt, suffix in _ALL_OUTPUTS]
    to_stdout = [fmt for fmt, path in extra if path is None]
    if len(to_stdout) > 1:
        raise UsageError(
            f"only one report can go to stdout, not {len(to_stdout)} ('-' given twice)"
        )
    primary: list[tuple[str, str | None]] = [(args.format, args.output)]
    if args.output is None and to_stdout:
        if args.format != "table":
            raise UsageError(f"-o {args.format} and an nmap output to '-' both want stdout")
        primary = []
    outputs = primary + extra
    paths = [path for _fmt, path in outputs if path is not None]
    for path in paths:
        if paths.count(path) > 1:
            raise UsageError(f"two reports would write the same file {path!r}")
    return outputs


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """Seconds in nmap's time notation: ``900`` (seconds), ``500ms``, ``30s``, ``15m``, ``1h``."""
    import re

    from portkit._errors import UsageError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if match is None or float(match[1]) <= 0:
        raise UsageError(
            f"--host-timeout must be a positive time such as 900, 30s, 500ms or 15m, not {text!r}"
        )
    return float(match[1]) * _DURATION_UNITS[match[2] or "s"]


def quick_exit(args: argparse.Namespace) -> bool:
    """Whether the process may end without the interpreter's teardown (see
    ``portkit.cli.console_main``): yes, but after a cluster scan, whose Dask client
    leaves threads and exit handlers of its own. Every other scan has closed and renamed
    its files, reaped its processes and stopped its progress bar before ``run`` returns.
    """
    return not _cluster_asked(args)


def _cluster_asked(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in _CLUSTER_OPTIONS)


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
    from portkit.cli._args import verbosity
    from portkit.cli._scan_run import run_scan_command

    cluster = None
    if _cluster_asked(args):
        # Only then: the cluster module and its imports cost a scan's start-up ~20 ms.
        from portkit.cli._cluster_args import cluster_options

        cluster = cluster_options(args)

    targets = list(args.targets)
    if args.target_file:
        from portkit.scan._targets import read_target_file

        targets += read_target_file(args.target_file)
    exclude = [t for group in args.exclude for t in group.split(",") if t.strip()]
    outputs = _outputs(args)
    deadline = None if args.host_timeout is None else _duration(args.host_timeout)
    timeout, retries, rate, concurrency = _TIMING[3 if args.timing is None else args.timing]
    if args.timeout is not None:
        timeout = args.timeout
    if args.retries is not None:
        retries = args.retries
    if args.rate is not None:
        rate = args.rate
    if args.concurrency is not None:
        concurrency = args.concurrency
    if args.min_rate is not None and args.min_rate <= 0:
        from portkit._errors import UsageError

        raise UsageError(f"--min-rate must be positive, not {args.min_rate:g}")
    level: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.detect_level is not None:
        from portkit.scan._identify import detect_level

        # Every identification of this scan runs in a task of asyncio.run's, which
        # starts from this context.
        level = detect_level(args.detect_level)
    from portkit.scan._loopless import run_loopless
    from portkit.scan._scan import needs_event_loop, plan_scan

    # Planning needs no event loop (several host names are looked up in threads).
    plan = run_loopless(
        plan_scan(
            targets,
            args.ports,
            top=args.top,
            udp=args.udp,
            # --udp alone is a UDP scan (T: items in -p still go to TCP), as nmap -sU;
            # -sU -sT (or --syn) is both, as nmap.
            tcp=not args.udp or args.syn or args.connect,
            syn=args.syn,
            exclude=exclude,
            timeout=1.0 if timeout is None else timeout,
            retries=2 if retries is None else retries,
            rate=rate,
            concurrency=concurrency,
            processes=args.processes,
        )
    )
    # One process, nothing to identify: the engine's descriptors and its next deadline
    # are all the scan waits on, and asyncio (a fifth of a one-port scan's time, with the ssl and
    # concurrent.futures it imports) is not imported at all.
    loopless = (
        cluster is None and deadline is None and not needs_event_loop(plan, detect=args.detect)
    )
    command = run_scan_command(
        plan,
        detect=args.detect,
        outputs=outputs,
        open_only=args.open_only,
        reason=args.reason,
        verbosity=verbosity(args),
        deadline=deadline,
        command_line=_command_line(args),
        cluster=cluster,
    )
    with level:
        if loopless:
            return run_loopless(command)
        import asyncio

        return asyncio.run(command)
