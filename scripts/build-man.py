#!/usr/bin/env python3
"""Write portkit's manual pages (man/portkit.1, man/portkit-COMMAND.1) from its parser.

The pages are generated from the same argparse parser the commands use (argparse-manpage
formats it as roff), so they cannot describe options that do not exist. They are kept in
the repository so that installing portkit installs them (pyproject's data-files put them
in share/man/man1, where `man` finds them beside the virtualenv's bin/ directory).

    scripts/build-man.py            write the pages
    scripts/build-man.py --check    exit 1 if a page differs from what the parser gives
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

import portkit
from portkit.cli import full_parser

SUMMARY = "the port layer of networked software: registry, endpoints, host, clients, discovery"
MAN_DIR = Path(__file__).resolve().parent.parent / "man"


def pages() -> dict[str, str]:
    """File name -> roff text, for portkit itself and each of its commands."""
    # The date field of .TH names the version instead of a day, so that the pages are the
    # same whenever and wherever they are generated (the --check below relies on it).
    data = {
        "date": f"portkit {portkit.__version__}",
        "project_name": "portkit",
        "manual_title": "portkit manual",
    }
    parser = full_parser()
    out = {"portkit.1": _named(str(Manpage(parser, _data=dict(data))), "portkit", SUMMARY)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in sorted(action.choices.items()):
                # The epilog (examples, laid out by hand) becomes its own unfilled section:
                # argparse-manpage would fill and justify it like prose.
                epilog, sub.epilog = sub.epilog, None
                page = str(Manpage(sub, _data=dict(data)))
                sub.epilog = epilog
                page = _named(page, f"portkit-{name}", summaries[name])
                out[f"portkit-{name}.1"] = page + _unfilled("EXAMPLES AND NOTES", epilog)
    return out


def _roff(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-")


def _unfilled(title: str, text: str | None) -> str:
    """A section whose lines are kept as written (.nf ... .fi), or nothing."""
    if not text:
        return ""
    lines = []
    for line in text.strip("\n").splitlines():
        line = _roff(line)
        # A line starting with a period or apostrophe would be read as a request.
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    body = "\n".join(lines)
    return f'.SH "{title}"\n.nf\n{body}\n.fi\n'


def _named(page: str, name: str, summary: str) -> str:
    """Give ``page`` a one-word title and a NAME line as man-pages(7) asks: name \\- summary.

    argparse-manpage titles a subcommand's page with its program name, two words
    ("portkit scan"), which roff reads as a title and a section.
    """
    head, _, rest = page.partition("\n")
    fields = head.split('"')  # .TH TITLE "section" "date" "source" "manual"
    fields[0] = ".TH " + _roff(name.upper()) + " "
    head = '"'.join(fields)
    first, sep, after = rest.partition(".SH NAME\n")
    _, _, after = after.partition("\n")  # the generated NAME line
    return f"{head}\n{first}{sep}{_roff(name)} \\- {_roff(summary)}\n{after}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    wanted = pages()
    if args.check:
        stale = sorted(
            name
            for name, text in wanted.items()
            if not (MAN_DIR / name).exists() or (MAN_DIR / name).read_text() != text
        )
        extra = sorted(p.name for p in MAN_DIR.glob("*.1") if p.name not in wanted)
        for name in stale:
            print(f"build-man: man/{name} is out of date (run scripts/build-man.py)")
        for name in extra:
            print(f"build-man: man/{name} names no command (run scripts/build-man.py)")
        return 1 if stale or extra else 0
    MAN_DIR.mkdir(exist_ok=True)
    for old in MAN_DIR.glob("*.1"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (MAN_DIR / name).write_text(text)
    print(f"build-man: wrote {len(wanted)} pages in {MAN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
