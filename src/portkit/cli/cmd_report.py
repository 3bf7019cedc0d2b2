"""``portkit report``: a saved JSON scan written in another format (an HTML page, ...)."""

from __future__ import annotations

import argparse

SUMMARY = "write a saved scan (portkit scan -o json) as a table, HTML page, nmap XML or grep lines"

_EPILOG = """\
examples:
  portkit scan 127.0.0.1 --detect -o json --output scan.json
  portkit report scan.json                       the table, as the scan printed it
  portkit report scan.json -o html --output scan.html
  portkit report scan.json -o xml > scan.xml     nmap's XML, for tools that read it

The output is what 'portkit scan ... -o FORMAT' writes for the same scan. jsonl is
written while a scan runs and is not offered here.
"""

# Every format of portkit.report.FORMATS but jsonl (a stream of a scan as it runs); a
# test keeps the two lists in step. Written out so --help imports no report.
FORMATS = ("table", "json", "grep", "xml", "html")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.add_argument("file", metavar="FILE.json", help="a scan saved with -o json")
    parser.add_argument(
        "-o",
        "--format",
        choices=FORMATS,
        default="table",
        help="output format (default table)",
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write the report to FILE instead of stdout"
    )


def run(args: argparse.Namespace) -> int:
    from portkit._errors import UsageError
    from portkit.cli._output import open_outputs
    from portkit.report import make_report
    from portkit.report._read import read_scan, replay

    saved = read_scan(args.file)
    try:
        # A file is written aside and renamed into place: whole, or the old one kept.
        with open_outputs([args.output]) as (out,):
            replay(saved, make_report(args.format, out))
    except OSError as exc:
        raise UsageError(f"cannot write output file {args.output!r}: {exc.strerror}") from None
    return 0
