"""Fig. 9: performance per memory cost against all-fast, for any DRAM:PMM price ratio."""

from __future__ import annotations

import pytest
from autotm_report.figure import Options
from autotm_report.figures import fig09_cost
from autotm_report.inputs import Inputs
from hypothesis import given
from hypothesis import strategies as st

from .fixtures import median_of


@pytest.mark.parametrize("price", [2.1, 1.0, 5.0])
def test_performance_per_cost_from_records(inputs: Inputs, price: float) -> None:
    df = fig09_cost.data(inputs, price)
    assert df.height == 2 * (3 * 3 + 1)  # + all-slow
    for row in df.iter_rows(named=True):
        f = row["fast_share"]
        performance = median_of(row["all_fast_file"]) / median_of(row["run_file"])
        cost = (f * price + (1 - f)) / price
        assert row["performance_per_cost"] == pytest.approx(performance / cost, rel=1e-12)
        assert row["price_ratio"] == price


def test_all_slow_cost_is_one_over_price(inputs: Inputs) -> None:
    df = fig09_cost.data(inputs, 2.1)
    slow = df.filter(df["formulation"] == "all-slow")
    assert slow["relative_cost"].to_list() == pytest.approx([1 / 2.1] * slow.height)


@given(st.floats(0, 1), st.floats(1.0, 10.0))
def test_relative_cost_bounds(share: float, price: float) -> None:
    cost = fig09_cost.relative_cost(share, price)
    assert 1 / price - 1e-12 <= cost <= 1 + 1e-12


def test_caption_states_price(inputs: Inputs) -> None:
    figure = fig09_cost.build(inputs, Options(price_ratio=3.0))
    assert figure is not None
    assert "3" in figure.caption
    assert "DRAM costs 3x PMM per GB" in " ".join(figure.chart.to_dict()["title"]["subtitle"])
