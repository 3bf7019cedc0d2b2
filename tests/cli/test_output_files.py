"""Output files: written aside and renamed into place, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portkit._errors import UsageError
from portkit.cli._output import open_outputs


def test_a_finished_report_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "scan.xml"
    target.write_text("old\n")
    with open_outputs([str(target), None]) as (out, _stdout):
        out.write("new, part one\n")
        out.flush()
        assert target.read_text() == "old\n"  # a reader still sees the old file
        out.write("part two\n")
    assert target.read_text() == "new, part one\npart two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.xml"]


def test_a_failed_report_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    target = tmp_path / "scan.json"
    target.write_text("old\n")

    def fail() -> None:
        with open_outputs([str(target)]) as (out,):
            out.write('{"hosts": [')
            raise RuntimeError("the scheduler is gone")

    with pytest.raises(RuntimeError):
        fail()
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.json"]


def test_a_link_replaces_its_target_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with open_outputs([str(link)]) as (out,):
        out.write("new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"


def test_a_device_is_written_directly() -> None:
    # Renaming a file over /dev/null would replace the device: it is written instead.
    with open_outputs([os.devnull]) as (out,):
        out.write("nothing\n")
    assert Path(os.devnull).is_char_device()


def test_unwritable_places_are_one_line_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="it is a directory"), open_outputs([str(tmp_path)]):
        pass
    missing = tmp_path / "no" / "such" / "dir" / "x.json"
    with (
        pytest.raises(UsageError, match=r"cannot write output file .*x\.json"),
        open_outputs([str(missing)]),
    ):
        pass
