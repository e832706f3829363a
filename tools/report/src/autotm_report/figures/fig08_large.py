"""Fig. 8: large networks, speedup of static and synchronous over hardware-managed 2LM.

speedup = 2LM median iteration time / run median iteration time, same network, batch and
device, where the plan's fast budget equals the 2LM run's DRAM cache size (within 2 %). In the
paper these networks need about 650 GB, far more than the 185 GB of DRAM; runs scaled from a
smaller batch or simulated say so in the provenance line.
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
from ..selection import by_workload, planned, same_budget

ID = "fig08-large-speedup-over-2lm"
TITLE = "Fig. 8: large networks, speedup over 2LM"
NEEDS = (
    "a 2lm run (autotm-execute in 2lm mode) and static or synchronous plan runs with the same "
    "fast budget, for the same network and batch"
)

SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "fast_limit_bytes": pl.Int64,
    "median_s": pl.Float64,
    "two_lm_median_s": pl.Float64,
    "speedup": pl.Float64,
    "run_file": pl.String,
    "two_lm_file": pl.String,
    "provenance": pl.String,
}


def data(inputs: Inputs) -> pl.DataFrame:
    rows = []
    for workload, group in by_workload(inputs.runs).items():
        caches = [r for r in group if r.formulation == "2lm"]
        for cache in caches:
            label = workload.label
            if len(caches) > 1 and cache.fast_limit_bytes is not None:
                label += f" @ {cache.fast_limit_bytes / 1e9:.3g} GB"
            for run in planned(group, ("static", "synchronous", "asynchronous")):
                if not same_budget(run, cache.fast_limit_bytes):
                    continue
                rows.append(
                    {
                        "workload": label,
                        "network": workload.network,
                        "batch": workload.batch,
                        "formulation": run.formulation,
                        "fast_limit_bytes": run.fast_limit_bytes,
                        "median_s": run.median_s,
                        "two_lm_median_s": cache.median_s,
                        "speedup": cache.median_s / run.median_s,
                        "run_file": run.file,
                        "two_lm_file": cache.file,
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
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("workload:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("formulation:N", sort=order),
            y=alt.Y("speedup:Q", title="speedup over 2LM"),
            color=formulation_color(order),
            tooltip=["workload", "formulation", "median_s", "two_lm_median_s", "speedup"],
        )
    )
    one = alt.Chart(df).mark_rule(strokeDash=[5, 3], color="#222222").encode(y=alt.datum(1.0))
    chart = alt.layer(bars, one).properties(
        width=max(200, 110 * df["workload"].n_unique()),
        height=PANEL_HEIGHT,
        title=chart_title(TITLE, provenance, "Dashed line: 2LM (DRAM as a cache of PMM)."),
    )
    caption = (
        "Speedup = median iteration time of the 2LM run / median iteration time of the plan run, "
        "same network, batch and fast budget (the 2LM run's DRAM cache size)."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
