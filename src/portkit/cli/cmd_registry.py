"""``portkit registry``: where the registry data comes from, and bringing it up to date."""

from __future__ import annotations

import argparse
from pathlib import Path

from portkit._errors import EXIT_OK

SUMMARY = "show or update the registry data (update from IANA, --from a local CSV, info, reset)"

EPILOG = """\
examples:
  portkit registry info                     source, date and number of entries
  portkit registry update                   download the live IANA CSV into the user cache
  portkit registry update --from FILE.csv   import a local copy of the IANA CSV
  portkit registry reset                    forget the cached copy, use the shipped data

The cached copy (in the user cache directory, or $PORTKIT_CACHE_DIR) takes precedence over
the data shipped with portkit. An update is validated in full before it replaces anything.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from portkit.registry import IANA_CSV_URL

    parser.epilog = EPILOG
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    update = actions.add_parser("update", help="fetch the live IANA registry into the cache")
    update.add_argument("--from", dest="from_file", type=Path, metavar="FILE", help="local CSV")
    update.add_argument("--url", default=IANA_CSV_URL, help="where to download from")
    info = actions.add_parser("info", help="where the data comes from, its date and size")
    info.add_argument("--json", action="store_true", help="print JSON")
    actions.add_parser("reset", help="remove the cached copy; use the shipped data")


def run(args: argparse.Namespace) -> int:
    from portkit.cli._output import print_json, print_table
    from portkit.registry import (
        RegistryInfo,
        default_registry,
        import_file,
        reset_cache,
        update_from_url,
    )

    info: RegistryInfo
    if args.action == "update":
        info = import_file(args.from_file) if args.from_file else update_from_url(args.url)
        print(f"registry updated: {info.entries} entries from {info.source}, saved to {info.path}")
        return EXIT_OK
    if args.action == "reset":
        had = reset_cache()
        print("cached registry removed" if had else "no cached registry; using the shipped data")
        return EXIT_OK
    info = default_registry().info
    if getattr(args, "json", False):
        print_json(
            {"source": info.source, "date": info.date, "path": info.path, "entries": info.entries}
        )
    else:
        print_table(
            ["FIELD", "VALUE"],
            [
                ["source", info.source],
                ["date", info.date],
                ["entries", info.entries],
                ["path", info.path],
            ],
        )
    return EXIT_OK
