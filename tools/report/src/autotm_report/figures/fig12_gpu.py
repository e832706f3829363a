"""Fig. 12: GPU, speedup of planned movement over CUDA unified memory.

speedup = unified-memory median iteration time / run median iteration time, same network and
batch on the GPU, for the synchronous and asynchronous formulations (and any other planned
placement given). The dashed line at 1 is the unified-memory baseline.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from ..figure import (
    PANEL_HEIGHT,
    Figure,
    Options,
    chart_title,
    formulation_color,
    formulation_order,
    frame,
    provenance_phrases,
)
from ..inputs import Inputs
from ..selection import baseline, by_workload, planned

ID = "fig12-gpu-speedup-over-unified"
TITLE = "Fig. 12: GPU, speedup over CUDA unified memory"
NEEDS = (
    "GPU (device cuda) runs in unified mode and synchronous or asynchronous plan runs of the "
    "same network and batch"
)

SCHEMA: dict[str, Any] = {
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "median_s": pl.Float64,
    "unified_median_s": pl.Float64,
    "speedup": pl.Float64,
    "run_file": pl.String,
    "unified_file": pl.String,
    "provenance": pl.String,
}


def data(inputs: Inputs) -> pl.DataFrame:
    rows = []
    gpu = [r for r in inputs.runs if r.workload.device == "cuda"]
    for workload, group in by_workload(gpu).items():
        unified = baseline(group, "unified")
        if unified is None:
            continue
        for run in planned(group) + [r for r in group if r.formulation == "all-fast"]:
            rows.append(
                {
                    "network": workload.network,
                    "batch": workload.batch,
                    "formulation": run.formulation,
                    "median_s": run.median_s,
                    "unified_median_s": unified.median_s,
                    "speedup": unified.median_s / run.median_s,
                    "run_file": run.file,
                    "unified_file": unified.file,
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
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=alt.X("batch:O", title="batch", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("formulation:N", sort=order),
            y=alt.Y("speedup:Q", title="speedup over unified memory"),
            color=formulation_color(order),
            tooltip=["network", "batch", "formulation", "median_s", "unified_median_s", "speedup"],
        )
        .properties(width=160, height=PANEL_HEIGHT)
    )
    one = alt.Chart().mark_rule(strokeDash=[5, 3], color="#222222").encode(y=alt.datum(1.0))
    chart = (
        alt.layer(bars, one, data=df)
        .facet(facet=alt.Facet("network:N", title=None), columns=4)
        .resolve_scale(x="independent", xOffset="independent")
        .properties(title=chart_title(TITLE, provenance, "Dashed line: CUDA unified memory."))
    )
    caption = (
        "Speedup = median iteration time with CUDA unified memory / median iteration time of "
        "the planned run, same network and batch on the GPU."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
