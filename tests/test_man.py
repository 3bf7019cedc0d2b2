"""The manual pages: generated from the parser, in step with it, readable, installed."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from portkit.cli import full_parser

REPO = Path(__file__).resolve().parent.parent
MAN_DIR = REPO / "man"


def _build_man() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_man", REPO / "scripts" / "build-man.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_are_what_the_parser_gives() -> None:
    wanted: dict[str, str] = _build_man().pages()
    on_disk = {p.name: p.read_text() for p in MAN_DIR.glob("*.1")}
    assert sorted(on_disk) == sorted(wanted), "run scripts/build-man.py"
    for name, text in wanted.items():
        assert on_disk[name] == text, f"man/{name} is stale: run scripts/build-man.py"


def test_every_command_and_option_has_its_page() -> None:
    import argparse

    parser = full_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        page = (MAN_DIR / f"portkit-{name}.1").read_text()
        roff_name = f"portkit-{name}".replace("-", "\\-")
        assert f"{roff_name} \\- " in page  # the NAME line man-pages(7) asks for
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue  # -h/--help is left out of man pages, as usual
            for flag in action.option_strings:
                assert flag.replace("-", "\\-") in page, f"{flag} missing from portkit-{name}.1"


@pytest.mark.skipif(shutil.which("man") is None, reason="needs man (Debian package man-db)")
@pytest.mark.parametrize("page", sorted(p.name for p in MAN_DIR.glob("*.1")))
def test_page_renders_without_warnings(page: str) -> None:
    done = subprocess.run(
        ["man", "-l", str(MAN_DIR / page)],
        capture_output=True,
        text=True,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    title = page.removesuffix(".1").upper()
    assert done.stdout.startswith(f"{title}(1)")


def test_a_wheel_installs_the_pages(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("portkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    installed = {n.rsplit("/", 1)[1] for n in names if "/data/share/man/man1/" in n}
    assert installed == {p.name for p in MAN_DIR.glob("*.1")}
