"""The report folder is replaced whole or left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from autotm_report.output import MARKER, report_folder
from autotm_schemas import BadInputError


def test_new_folder(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report"
    with report_folder(target) as root:
        (root / "index.html").write_text("hi")
    assert (target / "index.html").read_text() == "hi"
    assert (target / MARKER).is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["report"]


def test_error_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with pytest.raises(RuntimeError), report_folder(target) as root:
        (root / "index.html").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_error_keeps_the_earlier_report(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with report_folder(target) as root:
        (root / "index.html").write_text("old")
    with pytest.raises(RuntimeError), report_folder(target) as root:
        raise RuntimeError("boom")
    assert (target / "index.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_replaces_an_earlier_report(tmp_path: Path) -> None:
    target = tmp_path / "report"
    for text in ("one", "two"):
        with report_folder(target) as root:
            (root / text).write_text(text)
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "two"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_empty_folder_is_fine(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    with report_folder(target) as root:
        (root / "a").write_text("a")
    assert (target / "a").is_file()


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_refuses_to_replace_other_things(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "report"
    if kind == "file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match=str(target)), report_folder(target):
        pass
    assert (target if kind == "file" else target / "notes.txt").read_text() == "mine"
