"""Fig. 9: performance per memory cost, relative to all-fast (all DRAM).

With a fast share f of the all-fast footprint in DRAM and the rest in PMM, and DRAM costing
p times PMM per GB (``--price-ratio``, 2.1 in the paper), the memory costs
f * p + (1 - f) PMM-GB per footprint-GB against p for all DRAM. So

    relative performance = all-fast median / run median
    relative cost        = (f * p + (1 - f)) / p
    performance per cost = relative performance / relative cost

and all-fast scores 1 (the dashed line): above it, a configuration buys more speed per dollar.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from .. import ratios
from ..figure import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Figure,
    Options,
    budget_sort,
    chart_title,
    formulation_color,
    formulation_order,
    frame,
    provenance_phrases,
)
from ..inputs import Inputs
from ..selection import baseline, by_workload, planned

ID = "fig09-performance-per-cost"
TITLE = "Fig. 9: performance per memory cost, relative to all-fast"
NEEDS = (
    "CPU runs of an all-fast run and of numa, static or synchronous plans at 8:1, 4:1 or 1:1 "
    "(or all-slow) for the same network and batch"
)

SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "ratio": pl.String,
    "fast_share": pl.Float64,
    "median_s": pl.Float64,
    "all_fast_median_s": pl.Float64,
    "relative_performance": pl.Float64,
    "relative_cost": pl.Float64,
    "performance_per_cost": pl.Float64,
    "price_ratio": pl.Float64,
    "run_file": pl.String,
    "all_fast_file": pl.String,
    "provenance": pl.String,
}


def relative_cost(fast_share: float, price_ratio: float) -> float:
    """Memory cost of a configuration over the cost of holding everything in DRAM."""
    return (fast_share * price_ratio + (1 - fast_share)) / price_ratio


def data(inputs: Inputs, price_ratio: float) -> pl.DataFrame:
    rows = []
    cpu = [r for r in inputs.runs if r.workload.device == "cpu"]
    for workload, group in by_workload(cpu).items():
        fast = baseline(group, "all-fast")
        if fast is None:
            continue
        chosen = [r for r in planned(group) if ratios.is_common_ratio(r.fast_share)]
        chosen += [r for r in group if r.formulation == "all-slow"]
        for run in chosen:
            assert run.fast_share is not None
            performance = fast.median_s / run.median_s
            cost = relative_cost(run.fast_share, price_ratio)
            rows.append(
                {
                    "workload": workload.label,
                    "network": workload.network,
                    "batch": workload.batch,
                    "formulation": run.formulation,
                    "ratio": ratios.ratio_label(run.fast_share),
                    "fast_share": run.fast_share,
                    "median_s": run.median_s,
                    "all_fast_median_s": fast.median_s,
                    "relative_performance": performance,
                    "relative_cost": cost,
                    "performance_per_cost": performance / cost,
                    "price_ratio": price_ratio,
                    "run_file": run.file,
                    "all_fast_file": fast.file,
                    "provenance": run.provenance,
                }
            )
    return frame(rows, SCHEMA)


def build(inputs: Inputs, options: Options) -> Figure | None:
    df = data(inputs, options.price_ratio)
    if df.is_empty():
        return None
    order = formulation_order(df["formulation"])
    provenance = provenance_phrases(df["provenance"])
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=alt.X(
                "ratio:N",
                sort=budget_sort(df),
                title="PMM:DRAM (slow:fast)",
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset=alt.XOffset("formulation:N", sort=order),
            y=alt.Y("performance_per_cost:Q", title="performance per cost vs all-fast"),
            color=formulation_color(order),
            tooltip=[
                "workload",
                "formulation",
                "ratio",
                "relative_performance",
                "relative_cost",
                "performance_per_cost",
            ],
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    one = alt.Chart().mark_rule(strokeDash=[5, 3], color="#222222").encode(y=alt.datum(1.0))
    note = f"DRAM costs {options.price_ratio:g}x PMM per GB. Dashed line: all-fast."
    chart = (
        alt.layer(bars, one, data=df)
        .facet(facet=alt.Facet("workload:N", title=None), columns=4)
        .resolve_scale(y="independent")
        .properties(title=chart_title(TITLE, provenance, note))
    )
    caption = (
        "Performance per cost = (all-fast median / run median) / relative memory cost, where "
        f"relative cost = (f * {options.price_ratio:g} + (1 - f)) / {options.price_ratio:g} "
        "for a fast share f of the footprint. 1 means as cost-effective as all DRAM."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
