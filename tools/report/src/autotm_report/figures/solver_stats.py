"""ILP solve time and size per network and formulation, from the plans' solver statistics.

Doing this fast with an open-source solver is one of this reimplementation's own goals (the
original needed Gurobi), so the report shows the model size (variables, constraints) next to
the time it took to build and solve. Heuristic plans (numa, all-fast, all-slow) have no model
and are left out.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from ..figure import (
    Figure,
    Options,
    chart_title,
    formulation_color,
    formulation_order,
    frame,
    provenance_phrases,
)
from ..inputs import Inputs
from ..ratios import ratio_label

ID = "ilp-solve-time-and-size"
TITLE = "ILP solve time and size"
NEEDS = "plans of the static, synchronous or asynchronous formulations (solver statistics)"

SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "ratio": pl.String,
    "fast_share": pl.Float64,
    "solver": pl.String,
    "status": pl.String,
    "variables": pl.Int64,
    "constraints": pl.Int64,
    "build_s": pl.Float64,
    "solve_s": pl.Float64,
    "gap": pl.Float64,
    "plan_file": pl.String,
    "provenance": pl.String,
}
MEASURES = ("solve_s", "build_s", "variables", "constraints")
MEASURE_TITLES = {
    "solve_s": "solve time (s)",
    "build_s": "build time (s)",
    "variables": "variables",
    "constraints": "constraints",
}


def _measure_title_expression() -> str:
    """A Vega expression renaming the folded column names to axis titles."""
    expression = "datum.measure"
    for key, title in reversed(MEASURE_TITLES.items()):
        expression = f"datum.measure == '{key}' ? '{title}' : ({expression})"
    return expression


def data(inputs: Inputs) -> pl.DataFrame:
    rows = [
        {
            "workload": f"{plan.network} b={plan.batch}",
            "network": plan.network,
            "batch": plan.batch,
            "formulation": plan.formulation,
            "ratio": plan.ratio or ratio_label(plan.fast_share),
            "fast_share": plan.fast_share,
            "solver": plan.solver,
            "status": plan.status,
            "variables": plan.variables,
            "constraints": plan.constraints,
            "build_s": plan.build_s,
            "solve_s": plan.solve_s,
            "gap": plan.gap,
            "plan_file": plan.file,
            "provenance": plan.provenance,
        }
        for plan in inputs.plans
        if plan.is_ilp
    ]
    return frame(rows, SCHEMA).sort("network", "batch", "formulation", "fast_share")


def build(inputs: Inputs, options: Options) -> Figure | None:
    df = data(inputs)
    if df.is_empty():
        return None
    order = formulation_order(df["formulation"])
    provenance = provenance_phrases(df["provenance"])
    chart = (
        alt.Chart(df)
        .transform_fold(list(MEASURES), as_=["measure", "value"])
        .transform_calculate(measure=_measure_title_expression())
        .mark_point(filled=True, size=60, opacity=0.8)
        .encode(
            x=alt.X("workload:N", title=None, axis=alt.Axis(labelAngle=-30)),
            xOffset=alt.XOffset("formulation:N", sort=order),
            y=alt.Y("value:Q", title=None),
            color=formulation_color(order),
            shape=alt.Shape("status:N", title="solver status"),
            column=alt.Column("measure:N", sort=[MEASURE_TITLES[m] for m in MEASURES], title=None),
            tooltip=[
                "workload",
                "formulation",
                "ratio",
                "solver",
                "status",
                "measure:N",
                alt.Tooltip("value:Q", format=",.4~g"),
            ],
        )
        .properties(width=max(160, 70 * df["workload"].n_unique()), height=200)
        .resolve_scale(y="independent")
        .properties(
            title=chart_title(
                TITLE,
                ("solver times measured on the machine that solved", *provenance),
                "One point per plan (each budget); heuristic plans are left out.",
            )
        )
    )
    caption = (
        "Per plan: the solver's model size (variables, constraints) and its build and solve "
        "times, as autotm-optimize recorded them in plan.json's solver section. The plans' "
        "kernel times come from the profile whose provenance is given."
    )
    return Figure(ID, TITLE, caption, df, chart, provenance)
