"""JSON document contracts: every schema is valid 2020-12; errors name file, field, expectation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from autotm_schemas import (
    DOCUMENT_KINDS,
    SchemaError,
    document_schema,
    read_document,
    write_document,
)


def minimal_plan() -> dict[str, Any]:
    return {
        "format": "autotm.plan/1",
        "graph_sha256": "0" * 64,
        "network": "tiny",
        "batch": 2,
        "formulation": "static",
        "ratio": "4:1",
        "fast_limit_bytes": 8192,
        "footprint_bytes": 40960,
        "tensors": [
            {
                "name": "x",
                "bytes": 16,
                "residencies": [{"tier": "slow", "offset": 0, "from_node": 0, "to_node": 1}],
            }
        ],
        "moves": [],
        "kernels": [
            {
                "node": 0,
                "kernel_key": "k",
                "input_tiers": ["slow"],
                "output_tiers": ["fast"],
                "predicted_s": 0.5,
            }
        ],
        "predicted": {
            "kernel_s": 0.5,
            "sync_move_s": 0,
            "async_move_s": 0,
            "async_overlap_s": 0,
            "total_s": 0.5,
        },
        "pools": {"fast_bytes": 0, "slow_bytes": 4096},
        "solver": {
            "name": "cp-sat",
            "status": "optimal",
            "variables": 3,
            "constraints": 2,
            "build_s": 0.1,
            "solve_s": 0.2,
        },
        "provenance": "emulated:optane-dc-2019",
    }


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_schemas_are_valid_draft_2020_12(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(document_schema(kind))


def test_plan_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_document(path, minimal_plan(), "plan")
    assert read_document(path, "plan") == minimal_plan()


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda p: p.pop("solver"), "(document)", "'solver' (a required field)"),
        (
            lambda p: p["tensors"][0]["residencies"][0].update(tier="warm"),
            "tensors[0].residencies[0].tier",
            "enum",
        ),
        (lambda p: p.update(formulation="greedy"), "formulation", "enum"),
        (lambda p: p.update(provenance="guessed"), "provenance", "pattern"),
        (lambda p: p["pools"].update(fast_bytes=-1), "pools.fast_bytes", "minimum"),
    ],
)
def test_bad_plan_names_the_field(tmp_path: Path, mutate: Any, field: str, expected: str) -> None:
    plan = minimal_plan()
    mutate(plan)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(SchemaError) as info:
        read_document(path, "plan")
    assert info.value.file == str(path)
    assert info.value.field == field
    assert expected in info.value.expected


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"format": \n oops}')
    with pytest.raises(SchemaError, match=r"run.json: line 2 column 2: expected valid JSON"):
        read_document(path, "run")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="expected an existing machine JSON file"):
        read_document(tmp_path / "nope.json", "machine")


def test_invalid_document_is_not_written(tmp_path: Path) -> None:
    plan = minimal_plan()
    plan["batch"] = 0
    with pytest.raises(SchemaError):
        write_document(tmp_path / "plan.json", plan, "plan")
    assert list(tmp_path.iterdir()) == []
