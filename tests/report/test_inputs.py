"""Reading inputs: files, folders, globs, standard input; bad files named in one line."""

from __future__ import annotations

import io
import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from autotm_report.inputs import load_inputs
from autotm_schemas import BadInputError

from .fixtures import Config, Suite, write_suite


@pytest.fixture
def small(tmp_path: Path) -> Suite:
    configs = [
        Config("net", 4, "all-slow", Fraction(0)),
        Config("net", 4, "static", Fraction(1, 5)),
        Config("net", 4, "2lm", None),
    ]
    return write_suite(tmp_path, configs)


def test_files_folders_and_globs_agree(small: Suite) -> None:
    by_file = load_inputs([str(p) for p in small.runs], [str(p) for p in small.plans])
    by_folder = load_inputs([str(small.root / "runs")], [str(small.root / "plans")])
    by_glob = load_inputs(
        [str(small.root / "runs" / "*.run.json")], [str(small.root / "**/*.plan.json")]
    )
    for loaded in (by_file, by_folder, by_glob):
        assert len(loaded.runs) == 3 and len(loaded.plans) == 2
    assert {r.file for r in by_file.runs} == {r.file for r in by_folder.runs}


def test_same_file_twice_is_read_once(small: Suite) -> None:
    loaded = load_inputs([str(small.runs[0]), str(small.runs[0]), str(small.root / "runs")])
    assert len(loaded.runs) == 3


def test_stdin_document(small: Suite) -> None:
    text = small.runs[1].read_text()
    loaded = load_inputs(["-"], [str(small.root / "plans")], stdin=io.StringIO(text))
    assert [r.file for r in loaded.runs] == ["-"]
    assert loaded.runs[0].formulation == "static"


def test_stdin_list_of_paths(small: Suite) -> None:
    listing = "\n".join(str(p) for p in small.plans) + "\n\n"
    loaded = load_inputs([str(small.root / "runs")], ["-"], stdin=io.StringIO(listing))
    assert len(loaded.plans) == 2


def test_profile_folder_or_manifest(small: Suite) -> None:
    folder = small.profiles[0]
    for arg in (folder, folder / "profile.json", small.root / "profiles"):
        loaded = load_inputs([], [], [str(arg)])
        assert [p.network for p in loaded.profiles] == ["net"]
        assert loaded.profiles[0].device_model == "optane-dc-2019"


def test_share_of_a_2lm_run_comes_from_its_graphs_plan(small: Suite) -> None:
    loaded = load_inputs([str(small.root / "runs")], [str(small.root / "plans")])
    two_lm = next(r for r in loaded.runs if r.formulation == "2lm")
    assert two_lm.fast_share == pytest.approx(0.25)


def test_bad_field_names_file_and_field(small: Suite) -> None:
    doc = json.loads(small.runs[1].read_text())
    doc["iterations"]["median_s"] = -1
    bad = small.root / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(BadInputError) as info:
        load_inputs([str(bad)])
    message = str(info.value)
    assert str(bad) in message and "iterations.median_s" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nowhere/*.json"], "no file matches"),
        (["missing.json"], "missing.json"),
    ],
)
def test_missing_inputs(args: list[str], expected: str) -> None:
    with pytest.raises(BadInputError, match=expected):
        load_inputs(args)


def test_a_plan_given_as_a_run_is_refused(small: Suite) -> None:
    with pytest.raises(BadInputError, match=r"format.*autotm\.run/1"):
        load_inputs([str(small.plans[0])])


def test_folder_without_documents(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no run documents"):
        load_inputs([str(tmp_path)])
    with pytest.raises(BadInputError, match="no profile folder"):
        load_inputs([], [], [str(tmp_path)])


def test_profile_without_machine(small: Suite, tmp_path: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(small.profiles[0], folder)
    (folder / "machine.json").unlink()
    with pytest.raises(BadInputError, match=r"machine\.json"):
        load_inputs([], [], [str(folder)])


def test_stdin_once_only(small: Suite) -> None:
    with pytest.raises(BadInputError, match="standard input"):
        load_inputs(["-"], ["-"], stdin=io.StringIO(""))


def test_repeated_configuration_keeps_the_later_run(small: Suite) -> None:
    doc = json.loads(small.runs[1].read_text())
    doc["finished"] = "2027-01-01T00:00:00Z"
    doc["iterations"]["median_s"] = 9.0
    again = small.root / "again.json"
    again.write_text(json.dumps(doc))
    loaded = load_inputs([str(small.root / "runs"), str(again)])
    static = [r for r in loaded.runs if r.formulation == "static"]
    assert [r.median_s for r in static] == [9.0]
    assert len(loaded.warnings) == 1 and str(again) in loaded.warnings[0]
