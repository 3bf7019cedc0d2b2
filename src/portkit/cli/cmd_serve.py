"""``portkit serve``: host server applications on their ports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SUMMARY = "run server applications (web, video, mail, forward, exec, echo) on their ports"

EPILOG = """\
examples:
  portkit serve                         the demo computer: web, video, mail on their ports
  portkit serve serve.toml              host the applications of serve.toml
  portkit serve --check serve.toml      validate the configuration, start nothing
  portkit serve --status                show what a running host serves, with counters
  portkit serve serve.toml --ready-file /run/pk.ready

signals: TERM stops gracefully (in-flight connections get [host] grace seconds),
HUP reloads the configuration (a bad one is rejected; the old one keeps running).
configuration reference: docs/serve.md
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("config", nargs="?", help="TOML configuration (none: the demo computer)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="validate the configuration and exit (0 if valid)"
    )
    mode.add_argument(
        "--status", action="store_true", help="show the applications of the running host"
    )
    parser.add_argument("--json", action="store_true", help="with --status/--check: JSON output")
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="write the status (JSON) here once every listener is bound and serving",
    )
    parser.add_argument(
        "--status-file",
        type=Path,
        metavar="PATH",
        help="status file to write (serving) or read (--status); default: [host] status_file",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from portkit._errors import UsageError
    from portkit.cli._output import print_json, print_table
    from portkit.host._config import load_config
    from portkit.host._host import default_status_path, read_status

    if args.status:
        path = args.status_file
        if path is None and args.config:
            path = load_config(args.config).host.status_file
        doc = read_status(path or default_status_path())
        if args.json:
            print_json(doc)
        else:
            _print_status(doc, print_table)
        return 0
    if args.check:
        if not args.config:
            raise UsageError("--check needs a configuration file")
        config = load_config(args.config)
        rows = [(a.name, a.kind, " ".join(str(x) for x in a.listen)) for a in config.apps]
        if args.json:
            print_json([{"name": n, "kind": k, "listen": ls.split()} for n, k, ls in rows])
        else:
            print_table(["APP", "KIND", "LISTEN"], rows)
            print(f"{args.config}: ok, {len(rows)} applications")
        return 0

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("portkit serve: %(message)s"))
    host_log = logging.getLogger("portkit.host")
    host_log.addHandler(handler)
    host_log.propagate = False
    if host_log.level == logging.NOTSET:
        host_log.setLevel(logging.INFO)
    if not getattr(args, "debug", False):
        # aiohttp logs a traceback per malformed request; the access log already records
        # each one (status 400, with the peer), so keep stderr for the host's own news.
        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    try:
        return _serve(args)
    finally:
        host_log.removeHandler(handler)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from portkit.host._config import load_config
    from portkit.host._host import Host, raise_fd_limit
    from portkit.host._systemd import inherited_sockets

    cleanup: Path | None = None
    if args.config:
        config, path = load_config(args.config), args.config
    else:
        from portkit.host._demo import demo_config

        config, path = demo_config(), None
        cleanup = Path(config.source).parent  # the generated demo content
    raise_fd_limit()
    inherited = inherited_sockets()

    async def main() -> None:
        host = Host(
            config,
            config_path=path,
            ready_file=args.ready_file,
            status_file=args.status_file,
            inherited=inherited,
        )
        run = asyncio.create_task(host.run())
        started = asyncio.create_task(_print_when_started(host))
        try:
            await run
        finally:
            started.cancel()

    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(main())
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main())
    finally:
        if cleanup is not None:
            import shutil

            shutil.rmtree(cleanup, ignore_errors=True)
    return 0


async def _print_when_started(host: Any) -> None:
    """Print the table of what listens where, once the host is serving."""
    from portkit.cli._output import print_table

    await host.ready.wait()
    # URL schemes as curl and portkit connect spell them; the TLS form when the app is TLS.
    schemes = {
        "web": ("http", "https"),
        "video": ("http", "https"),
        "console": ("http", "https"),
        "smtp": ("smtp", "smtps"),
        "pop3": ("pop3", "pop3s"),
        "imap": ("imap", "imaps"),
    }
    rows = []
    for app in host.status()["apps"]:
        plain, secure = schemes.get(app["kind"], (None, None))
        tls = getattr(host.config.app(app["name"]).options, "tls", False)
        # web/video: tls is a flag; mail: "none", "starttls" or "implicit".
        scheme = secure if tls is True or tls == "implicit" else plain
        for address in app["listen"]:
            url = f"{scheme}://{address}/" if scheme else ""
            rows.append((app["name"], app["kind"], address, url))
    print_table(["APP", "KIND", "LISTEN", "URL"], rows)
    sys.stdout.flush()


def _print_status(doc: dict[str, Any], print_table: Any) -> None:
    rows = []
    for app in doc["apps"]:
        c = app["counters"]
        rows.append(
            (
                app["name"],
                app["kind"],
                " ".join(app["listen"]),
                c["connections_open"],
                c["connections_total"],
                c["bytes_in"],
                c["bytes_out"],
                c["errors"],
                c["rejected"],
            )
        )
    print(f"portkit serve, pid {doc['pid']}, {doc['config']}, {doc['reloads']} reloads")
    print_table(
        ["APP", "KIND", "LISTEN", "OPEN", "TOTAL", "BYTES-IN", "BYTES-OUT", "ERRORS", "REJECTED"],
        rows,
    )
