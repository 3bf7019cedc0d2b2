"""``portkit serve``: host server applications on their ports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from portkit.cli._args import add_verbosity

SUMMARY = "run server applications (web, video, mail, forward, exec, echo) on their ports"

EPILOG = """\
examples:
  portkit serve .                       this directory over HTTP on port 8000 (or the next free)
  portkit serve public --port 9000 --tls   HTTPS, self-signed, on 127.0.0.1:9000
  portkit serve --mail                  a development mail sink: SMTP 2525, POP3 1110, IMAP 1143
  portkit serve --mail --maildir mail   ... keeping the mail across restarts
  portkit serve                         ./portkit.toml, else $XDG_CONFIG_HOME/portkit/serve.toml,
                                        else the demo computer: web, video, mail on their ports
  portkit serve --demo                  the demo computer, whatever configuration is found
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
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG|DIR",
        help="TOML configuration, or a directory to serve over HTTP "
        "(none: ./portkit.toml, then $XDG_CONFIG_HOME/portkit/serve.toml, then the demo)",
    )
    quick = parser.add_argument_group("one-line servers")
    quick.add_argument(
        "--port",
        type=_port,
        metavar="N",
        help=f"with DIR: this port only (default {DIRECTORY_PORT}, or the next free one)",
    )
    quick.add_argument(
        "--bind", metavar="ADDR", help="with DIR: the address (default 127.0.0.1; all: 0.0.0.0)"
    )
    quick.add_argument(
        "--tls", action="store_true", help="with DIR: HTTPS with a self-signed certificate"
    )
    quick.add_argument(
        "--mail",
        action="store_true",
        help="a development mail sink on 127.0.0.1: every recipient lands in one mailbox, "
        "which any login opens over POP3 or IMAP",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo computer (web, video, mail), even where a configuration would be found",
    )
    quick.add_argument(
        "--maildir",
        type=Path,
        metavar="PATH",
        help="with --mail: keep the mail here across restarts (default: a temporary store)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="validate the configuration and exit (0 if valid)"
    )
    mode.add_argument(
        "--status", action="store_true", help="show the applications of the running host"
    )
    parser.add_argument("--json", action="store_true", help="with --status/--check: JSON output")
    add_verbosity(parser)
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


DIRECTORY_PORT = 8000  # portkit.host._oneline.DIRECTORY_PORT, without importing the host
MAIL_USER = "dev"  # portkit.host._oneline.MAIL_USER


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {text!r}")
    return int(text)


def discover_config(cwd: Path | None = None, env: dict[str, str] | None = None) -> Path | None:
    """The configuration ``portkit serve`` uses when none is named.

    ``./portkit.toml`` first (a project's own), then ``$XDG_CONFIG_HOME/portkit/serve.toml``
    (``~/.config`` when the variable is unset or empty, as the XDG Base Directory
    Specification says); None when neither exists.
    """
    import os

    env = dict(os.environ) if env is None else env
    here = (cwd or Path.cwd()) / "portkit.toml"
    if here.is_file():
        return here
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    user = Path(xdg) / "portkit" / "serve.toml"
    return user if user.is_file() else None


def _config_argument(args: argparse.Namespace) -> None:
    """Sort the positional into ``args.config`` (a file) or ``args.directory``."""
    from portkit._errors import UsageError

    args.directory = None
    given = args.config
    if given is not None:
        path = Path(given)
        if path.is_dir():
            args.directory, args.config = path, None
        elif not path.exists():
            raise UsageError(f"no such configuration file or directory: {given!r}")
    quick = args.directory is not None or args.mail
    if args.maildir is not None and not args.mail:
        raise UsageError("--maildir goes with --mail: portkit serve --mail --maildir PATH")
    if not quick:
        for flag, value in (("--port", args.port), ("--bind", args.bind), ("--tls", args.tls)):
            if value not in (None, False):
                raise UsageError(f"{flag} is for serving a directory: portkit serve DIR {flag}")
    elif args.config is not None:
        raise UsageError("--mail runs without a configuration file; add mail apps to it instead")
    if quick and (args.check or args.status):
        raise UsageError("--check and --status read a configuration, not DIR or --mail")
    if args.demo:
        if given is not None or quick or args.check or args.status:
            raise UsageError("--demo runs the demo computer alone: portkit serve --demo")
        return
    if given is None and not quick:
        found = discover_config()
        if found is not None:
            args.config = str(found)


def run(args: argparse.Namespace) -> int:
    import logging

    from portkit._errors import UsageError
    from portkit.cli._args import verbosity
    from portkit.cli._output import print_json, print_table
    from portkit.host._config import load_config
    from portkit.host._host import default_status_path, read_status

    _config_argument(args)
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
            print(f"{args.config}: ok, {len(rows)} application{'' if len(rows) == 1 else 's'}")
        return 0

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_host_formatter())
    host_log = logging.getLogger("portkit.host")
    host_log.addHandler(handler)
    host_log.propagate = False
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity(args), logging.DEBUG)
    previous = host_log.level
    if previous == logging.NOTSET or verbosity(args) != 0:
        host_log.setLevel(level)
    if not getattr(args, "debug", False):
        # aiohttp logs a traceback per malformed request; the access log already records
        # each one (status 400, with the peer), so keep stderr for the host's own news.
        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    try:
        return _serve(args)
    finally:
        host_log.removeHandler(handler)
        host_log.setLevel(previous)


_APP_LOGGER = "portkit.host.app."


def _host_formatter() -> Any:
    """``portkit serve: [apps.NAME] ...`` for what an application logs, so every line of a
    host running several applications says whose it is (logging imported only here)."""
    import logging

    class HostFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = super().format(record)
            if record.name.startswith(_APP_LOGGER):
                return f"portkit serve: [apps.{record.name[len(_APP_LOGGER) :]}] {text}"
            return f"portkit serve: {text}"

    return HostFormatter("%(message)s")


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from portkit._rlimit import raise_fd_limit
    from portkit.host._config import load_config
    from portkit.host._host import Host
    from portkit.host._systemd import inherited_sockets

    cleanup: Path | None = None
    note = ""
    if args.directory is not None or args.mail:
        import tempfile

        from portkit.host._oneline import oneline_config

        maildir = args.maildir
        if args.mail and maildir is None:
            cleanup = Path(tempfile.mkdtemp(prefix="portkit-mail-"))
            maildir = cleanup
        try:
            config = oneline_config(
                directory=args.directory,
                port=args.port,
                bind=args.bind,
                tls=args.tls,
                mail=args.mail,
                maildir=maildir.resolve() if maildir is not None else None,
                log_requests=not args.quiet,
            )
        except BaseException:
            if cleanup is not None:
                import shutil

                shutil.rmtree(cleanup, ignore_errors=True)
            raise
        path = None
        if args.mail:
            kept = "kept" if args.maildir is not None else "deleted on exit"
            note = (
                f"mail sink: every recipient lands in one mailbox; any POP3/IMAP login "
                f"opens it (e.g. {MAIL_USER}/{MAIL_USER}); store {maildir} ({kept})"
            )
    elif args.config:
        config, path = load_config(args.config), args.config
        logging.getLogger("portkit.host").info("configuration: %s", args.config)
    else:
        from portkit.host._default import default_config

        config, path = default_config(), None
        cleanup = Path(config.source).parent  # the generated demo content
    raise_fd_limit(warn=True)
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
        quiet = getattr(args, "quiet", False)
        started = asyncio.create_task(_print_when_started(host, note, quiet=quiet))
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


async def _print_when_started(host: Any, note: str = "", *, quiet: bool = False) -> None:
    """Print the table of what listens where, once the host is serving (not with -q)."""
    from portkit.cli._output import print_table

    await host.ready.wait()
    if quiet:
        return
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
    if note:
        print(note)
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
                len(app.get("workers", ())) or 1,
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
        [
            "APP",
            "KIND",
            "LISTEN",
            "PROCS",
            "OPEN",
            "TOTAL",
            "BYTES-IN",
            "BYTES-OUT",
            "ERRORS",
            "REJECTED",
        ],
        rows,
    )
