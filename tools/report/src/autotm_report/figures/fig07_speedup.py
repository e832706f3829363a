"""Fig. 7: speedup over all-slow at 8:1, 4:1 and 1:1, one panel per network.

speedup = all-slow median iteration time / run median iteration time, both runs of the same
network, batch and device (CPU). The dashed line is the all-fast run's speedup: the most any
placement can gain.
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

ID = "fig07-speedup-over-all-slow"
TITLE = "Fig. 7: speedup over all-slow"
NEEDS = (
    "CPU runs of an all-slow plan and of numa, static or synchronous plans at 8:1, 4:1 or 1:1 "
    "for the same network and batch (an all-fast run adds the dashed line)"
)

SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "ratio": pl.String,
    "fast_share": pl.Float64,
    "median_s": pl.Float64,
    "all_slow_median_s": pl.Float64,
    "speedup": pl.Float64,
    "run_file": pl.String,
    "all_slow_file": pl.String,
    "provenance": pl.String,
}


def data(inputs: Inputs) -> pl.DataFrame:
    rows = []
    cpu = [r for r in inputs.runs if r.workload.device == "cpu"]
    for workload, group in by_workload(cpu).items():
        slow = baseline(group, "all-slow")
        chosen = [r for r in planned(group) if ratios.is_common_ratio(r.fast_share)]
        if slow is None or not chosen:
            continue
        fast = baseline(group, "all-fast")
        for run in chosen + ([fast] if fast else []):
            assert run.fast_share is not None
            rows.append(
                {
                    "workload": workload.label,
                    "network": workload.network,
                    "batch": workload.batch,
                    "formulation": run.formulation,
                    "ratio": ratios.ratio_label(run.fast_share),
                    "fast_share": run.fast_share,
                    "median_s": run.median_s,
                    "all_slow_median_s": slow.median_s,
                    "speedup": slow.median_s / run.median_s,
                    "run_file": run.file,
                    "all_slow_file": slow.file,
                    "provenance": run.provenance,
                }
            )
    return frame(rows, SCHEMA)


def build(inputs: Inputs, options: Options) -> Figure | None:
    df = data(inputs)
    if df.is_empty():
        return None
    bars_df = df.filter(pl.col("formulation") != "all-fast")
    order = formulation_order(bars_df["formulation"])
    provenance = provenance_phrases(df["provenance"])
    tooltip = ["workload", "formulation", "ratio", "median_s", "all_slow_median_s", "speedup"]
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=alt.X(
                "ratio:N",
                sort=budget_sort(bars_df),
                title="PMM:DRAM (slow:fast)",
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset=alt.XOffset("formulation:N", sort=order),
            y=alt.Y("speedup:Q", title="speedup over all-slow"),
            color=formulation_color(order),
            tooltip=tooltip,
        )
        .transform_filter(alt.datum.formulation != "all-fast")
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    line = (
        alt.Chart()
        .mark_rule(strokeDash=[5, 3], color="#222222")
        .encode(y="speedup:Q", tooltip=tooltip)
        .transform_filter(alt.datum.formulation == "all-fast")
    )
    chart = (
        alt.layer(bars, line, data=df)
        .facet(facet=alt.Facet("workload:N", title=None), columns=4)
        .resolve_scale(y="independent")
        .properties(title=chart_title(TITLE, provenance, "Dashed line: all-fast (all DRAM)."))
    )
    caption = (
        "Speedup = median iteration time of the all-slow run / median iteration time of the run, "
        "same network, batch and CPU. Bars: the placements at the paper's PMM:DRAM ratios; "
        "dashed line: the all-fast run."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
