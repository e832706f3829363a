"""The claims table: numbers with their definitions, and honest 'cannot check' verdicts."""

from __future__ import annotations

import dataclasses
import math

import pytest
from autotm_report import claims
from autotm_report.inputs import Inputs
from hypothesis import given
from hypothesis import strategies as st

from .fixtures import SLOWDOWN, TWO_LM_FACTOR, UNIFIED_FACTOR


@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=20))
def test_geomean_between_min_and_max(values: list[float]) -> None:
    mean = claims.geomean(values)
    assert min(values) * (1 - 1e-9) <= mean <= max(values) * (1 + 1e-9)


def test_geomean_refuses_nonpositive() -> None:
    with pytest.raises(ValueError):
        claims.geomean([1.0, 0.0])


def test_loss_claim_by_hand(inputs: Inputs) -> None:
    claim = claims.loss_claim(inputs)
    # Toy model: relative performance 1 / (1 + s * (1 - f)). vgg19 has f = 1/5 and 1/2 for
    # every formulation; the Inception case study adds 1/4 and 1/3 for static and synchronous.
    shares = {
        "numa": [1 / 5, 1 / 2] * 2,
        "synchronous": [1 / 5, 1 / 2] * 2 + [1 / 4, 1 / 3],
    }
    for formulation, fs in shares.items():
        s = SLOWDOWN[formulation]
        log_mean = sum(math.log(1 / (1 + s * (1 - f))) for f in fs) / len(fs)
        loss = 1 - math.exp(log_mean)
        assert f"{formulation} {100 * loss:.1f} % (n={len(fs)})" in claim.measured
    assert claim.verdict.startswith("consistent")
    assert "27.7" in claim.paper and "71.9" in claim.paper
    assert "1/5 and 1/2" in claim.definition
    assert "device model" in claim.note  # emulated runs are flagged
    assert claim.runs == 4 + 6 + 6


def test_loss_claim_cannot_check_without_numa(inputs: Inputs) -> None:
    runs = tuple(r for r in inputs.runs if r.formulation != "numa")
    claim = claims.loss_claim(dataclasses.replace(inputs, runs=runs))
    assert claim.verdict.startswith("cannot check") and "numa" in claim.verdict


def test_two_lm_claim(inputs: Inputs) -> None:
    claim = claims.two_lm_claim(inputs)
    expected = (1 + SLOWDOWN["all-slow"]) / TWO_LM_FACTOR / (1 + SLOWDOWN["synchronous"] * 0.75)
    assert f"synchronous {expected:.2f}x (n=1)" in claim.measured
    assert claim.verdict.startswith("consistent")


def test_gpu_claim_measured_has_no_caution(inputs: Inputs) -> None:
    claim = claims.gpu_claim(inputs)
    expected = UNIFIED_FACTOR / (1 + SLOWDOWN["asynchronous"] * 0.75)
    assert f"asynchronous {expected:.2f}x (n=2)" in claim.measured
    assert claim.verdict.startswith("consistent")
    assert claim.note == ""
    assert claim.provenance == "measured on real tiers"


def test_empty_inputs_cannot_check_anything(inputs: Inputs) -> None:
    empty = dataclasses.replace(inputs, runs=())
    found = claims.claims(empty)
    assert [c.verdict.split(":")[0] for c in found] == ["cannot check"] * 3
    assert all(c.measured == "-" for c in found)
    df = claims.claims_frame(found)
    assert df.height == 3 and df["runs"].to_list() == [0, 0, 0]
