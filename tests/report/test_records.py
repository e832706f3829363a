"""Typed records: formulations from modes, shares from ratios or footprints, plan I/O shares."""

from __future__ import annotations

from fractions import Fraction

import pytest
from autotm_report.records import plan_from_document, run_from_document
from autotm_schemas import SchemaError

from .fixtures import KERNELS, Config, plan_document, run_document


@pytest.mark.parametrize(
    ("formulation", "mode", "share"),
    [
        ("static", "plan", 0.2),
        ("numa", "plan", 0.2),
        ("all-slow", "plan", 0.0),
        ("all-fast", "all-fast", 1.0),
    ],
)
def test_run_formulation_and_share(formulation: str, mode: str, share: float) -> None:
    fraction = Fraction(0) if formulation == "all-slow" else Fraction(1, 5)
    config = Config("net", 4, formulation, Fraction(1) if mode == "all-fast" else fraction)
    run = run_from_document(run_document(config, "p.json"), "r.json", footprint=None)
    assert (run.mode, run.formulation) == (mode, formulation)
    assert run.fast_share == pytest.approx(share)
    assert run.median_s == config.median_s()
    assert run.workload.label == "net b=4"


@pytest.mark.parametrize("formulation", ["2lm", "unified"])
def test_baseline_modes_take_their_share_from_the_footprint(formulation: str) -> None:
    config = Config(
        "net", 4, formulation, None, device="cuda" if formulation == "unified" else "cpu"
    )
    doc = run_document(config, None)
    assert run_from_document(doc, "r.json", footprint=None).fast_share is None
    run = run_from_document(doc, "r.json", footprint=config.footprint)
    assert run.formulation == formulation
    assert run.fast_share == pytest.approx(config.fast_limit / config.footprint)
    assert run.predicted_s is None


def test_plan_run_with_null_plan_is_all_fast() -> None:
    doc = run_document(Config("net", 4, "all-fast", Fraction(1)), None)
    doc["mode"] = "plan"
    assert run_from_document(doc, "r.json", None).formulation == "all-fast"


def test_run_moves_add_sync_and_async() -> None:
    config = Config("net", 4, "synchronous", Fraction(1, 2))
    doc = run_document(config, "p.json")
    doc["moves"]["slow_to_fast"]["async"] = {"count": 3, "bytes": 1000}
    run = run_from_document(doc, "r.json", None)
    assert run.moves.slow_to_fast_bytes == config.moved()[0] + 1000
    assert run.moves.fast_to_slow_bytes == config.moved()[1]
    assert run.moves.slow_to_fast_count == 2 + 3


def test_plan_fast_shares_of_kernel_inputs_and_outputs() -> None:
    config = Config("net", 4, "synchronous", Fraction(1, 2))
    plan = plan_from_document(plan_document(config), "p.json")
    fast_inputs = round(0.5 * KERNELS * 2)
    assert plan.inputs_fast_share == pytest.approx(fast_inputs / (KERNELS * 2))
    assert plan.outputs_fast_share == pytest.approx(round(0.5 * KERNELS) / KERNELS)
    assert plan.is_ilp and plan.fast_share == 0.5


def test_plan_without_ratio_takes_share_from_limit() -> None:
    config = Config("net", 4, "static", None)
    plan = plan_from_document(plan_document(config), "p.json")
    assert plan.ratio is None
    assert plan.fast_share == pytest.approx(0.25)


def test_empty_tier_entries_are_not_counted() -> None:
    doc = plan_document(Config("net", 4, "numa", Fraction(1, 2)))
    doc["kernels"] = [
        {
            "node": 0,
            "kernel_key": "k",
            "input_tiers": ["fast", ""],
            "output_tiers": [""],
            "predicted_s": 0.1,
        }
    ]
    plan = plan_from_document(doc, "p.json")
    assert plan.inputs_fast_share == 1.0
    assert plan.outputs_fast_share is None
    assert not plan.is_ilp


def test_zero_median_is_bad_input() -> None:
    doc = run_document(Config("net", 4, "static", Fraction(1, 2)), "p.json")
    doc["iterations"]["median_s"] = 0
    with pytest.raises(SchemaError, match=r"r\.json: iterations\.median_s: expected a positive"):
        run_from_document(doc, "r.json", None)


def test_bad_ratio_names_file_and_field() -> None:
    doc = run_document(Config("net", 4, "static", Fraction(1, 2)), "p.json")
    doc["plan"]["ratio"] = "half"
    with pytest.raises(SchemaError, match=r"r\.json: plan\.ratio: expected a slow:fast ratio"):
        run_from_document(doc, "r.json", None)
