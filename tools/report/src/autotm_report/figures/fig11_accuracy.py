"""Fig. 11: predicted against measured iteration time, per network, ratio and formulation.

error = (predicted - measured) / measured, in percent, where predicted is the plan's
``predicted.total_s`` as the run recorded it (``run.plan.predicted_s``) and measured is the
run's median iteration time. Positive: the ILP's cost model was pessimistic.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

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
from ..selection import by_workload

ID = "fig11-prediction-error"
TITLE = "Fig. 11: predicted vs measured iteration time"
NEEDS = "plan runs (run.json with a plan and its predicted_s)"

SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "network": pl.String,
    "batch": pl.Int64,
    "device": pl.String,
    "formulation": pl.String,
    "ratio": pl.String,
    "fast_share": pl.Float64,
    "predicted_s": pl.Float64,
    "median_s": pl.Float64,
    "error_pct": pl.Float64,
    "run_file": pl.String,
    "provenance": pl.String,
}


def data(inputs: Inputs) -> pl.DataFrame:
    rows = []
    for workload, group in by_workload(inputs.runs).items():
        for run in group:
            if run.predicted_s is None or run.median_s <= 0:
                continue
            rows.append(
                {
                    "workload": workload.label,
                    "network": workload.network,
                    "batch": workload.batch,
                    "device": workload.device,
                    "formulation": run.formulation,
                    "ratio": run.budget_label,
                    "fast_share": run.fast_share,
                    "predicted_s": run.predicted_s,
                    "median_s": run.median_s,
                    "error_pct": 100.0 * (run.predicted_s - run.median_s) / run.median_s,
                    "run_file": run.file,
                    "provenance": run.provenance,
                }
            )
    return frame(rows, SCHEMA)


def build(inputs: Inputs, options: Options) -> Figure | None:
    df = data(inputs)
    if df.is_empty():
        return None
    order = formulation_order(df["formulation"])
    provenance = provenance_phrases(df["provenance"])
    points = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(filled=True, size=50), strokeWidth=1)
        .encode(
            x=alt.X(
                "ratio:N",
                sort=budget_sort(df.with_columns(pl.col("fast_share").fill_null(-1.0))),
                title="PMM:DRAM (slow:fast)",
                axis=alt.Axis(labelAngle=-45),
            ),
            y=alt.Y("error_pct:Q", title="prediction error (%)"),
            color=formulation_color(order),
            tooltip=["workload", "formulation", "ratio", "predicted_s", "median_s", "error_pct"],
        )
        .properties(width=PANEL_WIDTH * 1.5, height=PANEL_HEIGHT)
    )
    zero = alt.Chart().mark_rule(color="#222222").encode(y=alt.datum(0.0))
    chart = (
        alt.layer(zero, points, data=df)
        .facet(facet=alt.Facet("workload:N", title=None), columns=3)
        .resolve_scale(x="independent", y="independent")
        .properties(title=chart_title(TITLE, provenance, "Above zero: predicted slower."))
    )
    caption = (
        "Error = (predicted - measured) / measured, where predicted is the plan's total "
        "(run.plan.predicted_s) and measured the run's median iteration time."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
