"""Fast shares: the paper's ratios, labels and the case-study budgets."""

from __future__ import annotations

from fractions import Fraction

import pytest
from autotm_report import ratios
from autotm_schemas import BadInputError
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("ratio", "share"),
    [("8:1", 1 / 9), ("4:1", 0.2), ("1:1", 0.5), ("1:0", 0.0), ("0:1", 1.0), ("8:2", 0.2)],
)
def test_share_of_ratio(ratio: str, share: float) -> None:
    assert ratios.share_of_ratio(ratio) == pytest.approx(share)


@pytest.mark.parametrize(
    ("ratio", "normal"), [("4.0:1", "4:1"), ("1:1", "1:1"), ("0.5:1", "0.5:1")]
)
def test_normalize_ratio(ratio: str, normal: str) -> None:
    assert ratios.normalize_ratio(ratio) == normal


def test_bad_ratio_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="4-1"):
        ratios.share_of_ratio("4-1")


@pytest.mark.parametrize(
    ("share", "label", "ratio"),
    [
        (1.0, "1", "0:1"),
        (0.5, "1/2", "1:1"),
        (0.2, "1/5", "4:1"),
        (2 / 3, "2/3", "1:2"),
        (0.0, "0", "1:0"),
    ],
)
def test_labels(share: float, label: str, ratio: str) -> None:
    assert ratios.share_label(share) == label
    assert ratios.ratio_label(share) == ratio


def test_odd_share_label_is_decimal() -> None:
    assert ratios.share_label(0.137) == "0.137"
    assert ratios.ratio_label(0.137) == "6.299:1"


@given(st.integers(0, 150), st.integers(1, 150))
def test_ratio_label_round_trips(slow: int, fast: int) -> None:
    share = ratios.share_of_ratio(f"{slow}:{fast}")
    exact = slow + fast <= 200  # labels are exact fractions up to a denominator of 200
    tolerance = 1e-9 if exact else 1e-3
    assert ratios.share_of_ratio(ratios.ratio_label(share)) == pytest.approx(share, abs=tolerance)


def test_case_study_shares_are_the_papers() -> None:
    shares = ratios.CASE_STUDY_SHARES
    assert len(shares) == 18
    assert shares[0] == 1 and shares[-1] == 0
    assert Fraction(1, 100) in shares and Fraction(3, 4) in shares


@pytest.mark.parametrize(
    ("share", "common"), [(1 / 9, True), (0.2, True), (0.5, True), (0.25, False), (None, False)]
)
def test_is_common_ratio(share: float | None, common: bool) -> None:
    assert ratios.is_common_ratio(share) is common
