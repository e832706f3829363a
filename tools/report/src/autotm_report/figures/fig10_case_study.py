"""Fig. 10: the Inception case study, from all of DRAM down to none of it.

Three panels over the fast share of the footprint (1, 1/2 .. 1/10, 1/20 .. 1/100, 2/3, 3/4, 0
in the paper), for the ILP formulations:

- (a) performance = all-fast median / run median (runs); the median time itself when the
  inputs hold no all-fast run;
- (b) the share of kernel inputs and of kernel outputs the plan put in fast memory (plans:
  entries of ``kernels[].input_tiers`` / ``output_tiers`` equal to 'fast' over all non-empty
  entries);
- (c) bytes moved each way during one iteration (runs: ``moves``, sync plus async).

The case-study network is ``--case-study NETWORK``, or else the CPU network whose name
contains 'inception' with runs at the most budgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import altair as alt
import polars as pl

from .. import ratios
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
from ..records import Workload
from ..selection import baseline, by_workload, planned

ILP = ("static", "synchronous", "asynchronous")
WIDTH = 420


def case_study_workload(inputs: Inputs, options: Options) -> Workload | None:
    """The workload to study: the named network, else the likeliest Inception one."""
    candidates: dict[Workload, set[float | None]] = {}
    for run in planned(inputs.runs, ILP):
        candidates.setdefault(run.workload, set()).add(ratios.share_key(run.fast_share))
    for plan in inputs.plans:
        if plan.formulation in ILP:
            key = Workload("cpu", plan.network, plan.batch)
            candidates.setdefault(key, set()).add(ratios.share_key(plan.fast_share))

    def wanted(w: Workload) -> bool:
        if w.device != "cpu":
            return False
        if options.case_study is not None:
            return w.network == options.case_study
        return "inception" in w.network.lower()

    chosen = [(len(shares), w) for w, shares in candidates.items() if wanted(w)]
    if not chosen:
        return None
    return max(chosen, key=lambda pair: (pair[0], pair[1].network, pair[1].batch))[1]


def _share_axis(values: Iterable[float]) -> alt.X:
    """Ordinal fast shares, most DRAM first, labelled as fractions."""
    labels = [ratios.share_label(s) for s in sorted(set(values), reverse=True)]
    return alt.X(
        "share_label:N",
        sort=list(dict.fromkeys(labels)),
        title="fast (DRAM) share of the footprint",
        axis=alt.Axis(labelAngle=0),
    )


def _dashed_lines(
    df: pl.DataFrame, columns: dict[str, str], y: alt.Y, value_tooltip: alt.Tooltip
) -> alt.TopLevelMixin:
    """Two measures per formulation: colour = formulation, dash = measure, dots on top.

    The dots are a layer of their own so that the dash legend shows dashed lines, not dots.
    """
    rename = "datum.key"
    for key, title in columns.items():
        rename = f"datum.key == '{key}' ? '{title}' : ({rename})"
    order = formulation_order(df["formulation"])
    base = (
        alt.Chart(df)
        .transform_fold(list(columns), as_=["key", "value"])
        .transform_calculate(measure=rename)
        .encode(
            x=_share_axis(df["fast_share"]),
            y=y,
            color=formulation_color(order),
            tooltip=["formulation", "share_label", "measure:N", value_tooltip],
        )
    )
    lines = base.mark_line().encode(
        strokeDash=alt.StrokeDash("measure:N", title=None, sort=list(columns.values()))
    )
    dots = base.mark_point(filled=True, size=30).encode(detail="measure:N")
    return alt.layer(lines, dots)


def _needs(what: str) -> str:
    return (
        f"{what} of an Inception network (name containing 'inception', or --case-study NETWORK) "
        "for the static or synchronous formulation at several budgets"
    )


# (a) performance ---------------------------------------------------------------------------

PERFORMANCE_ID = "fig10a-case-study-performance"
PERFORMANCE_TITLE = "Fig. 10a: case study, performance relative to all-fast"
PERFORMANCE_NEEDS = _needs("CPU runs")
PERFORMANCE_SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "formulation": pl.String,
    "fast_share": pl.Float64,
    "share_label": pl.String,
    "median_s": pl.Float64,
    "all_fast_median_s": pl.Float64,
    "relative_performance": pl.Float64,
    "run_file": pl.String,
    "provenance": pl.String,
}


def performance_data(inputs: Inputs, workload: Workload) -> pl.DataFrame:
    group = by_workload(inputs.runs).get(workload, [])
    fast = baseline(group, "all-fast")
    rows = []
    for run in planned(group, ILP):
        if run.fast_share is None:
            continue
        rows.append(
            {
                "workload": workload.label,
                "formulation": run.formulation,
                "fast_share": run.fast_share,
                "share_label": ratios.share_label(run.fast_share),
                "median_s": run.median_s,
                "all_fast_median_s": None if fast is None else fast.median_s,
                "relative_performance": None if fast is None else fast.median_s / run.median_s,
                "run_file": run.file,
                "provenance": run.provenance,
            }
        )
    return frame(rows, PERFORMANCE_SCHEMA).sort("formulation", "fast_share")


def build_performance(inputs: Inputs, options: Options) -> Figure | None:
    workload = case_study_workload(inputs, options)
    df = performance_data(inputs, workload) if workload else frame([], PERFORMANCE_SCHEMA)
    if df.is_empty():
        return None
    relative = df["relative_performance"].null_count() == 0
    field = "relative_performance:Q" if relative else "median_s:Q"
    y_title = "performance vs all-fast" if relative else "median iteration time (s)"
    order = formulation_order(df["formulation"])
    provenance = provenance_phrases(df["provenance"])
    chart = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=_share_axis(df["fast_share"]),
            y=alt.Y(field, title=y_title),
            color=formulation_color(order),
            tooltip=["formulation", "share_label", "median_s", "relative_performance"],
        )
        .properties(
            width=WIDTH,
            height=PANEL_HEIGHT,
            title=chart_title(PERFORMANCE_TITLE, provenance, str(df["workload"][0])),
        )
    )
    caption = (
        "Performance = median iteration time of the all-fast run / median iteration time of "
        "the run, over the fast share of the all-fast footprint (1 = all DRAM)."
        if relative
        else "No all-fast run of this workload was given: the median iteration time is shown."
    )
    return Figure(PERFORMANCE_ID, PERFORMANCE_TITLE, caption, df, chart, provenance)


# (b) kernel inputs and outputs in fast memory ----------------------------------------------

TIERS_ID = "fig10b-case-study-fast-io"
TIERS_TITLE = "Fig. 10b: case study, kernel inputs and outputs in fast memory"
TIERS_NEEDS = _needs("plans")
TIERS_SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "formulation": pl.String,
    "fast_share": pl.Float64,
    "share_label": pl.String,
    "inputs_fast_share": pl.Float64,
    "outputs_fast_share": pl.Float64,
    "plan_file": pl.String,
    "provenance": pl.String,
}


def tiers_data(inputs: Inputs, workload: Workload) -> pl.DataFrame:
    rows = [
        {
            "workload": workload.label,
            "formulation": plan.formulation,
            "fast_share": plan.fast_share,
            "share_label": ratios.share_label(plan.fast_share),
            "inputs_fast_share": plan.inputs_fast_share,
            "outputs_fast_share": plan.outputs_fast_share,
            "plan_file": plan.file,
            "provenance": plan.provenance,
        }
        for plan in inputs.plans
        if (plan.network, plan.batch) == (workload.network, workload.batch)
        and plan.formulation in ILP
    ]
    return frame(rows, TIERS_SCHEMA).sort("formulation", "fast_share")


def build_tiers(inputs: Inputs, options: Options) -> Figure | None:
    workload = case_study_workload(inputs, options)
    df = tiers_data(inputs, workload) if workload else frame([], TIERS_SCHEMA)
    if df.is_empty():
        return None
    provenance = provenance_phrases(df["provenance"])
    chart = _dashed_lines(
        df,
        {"inputs_fast_share": "kernel inputs", "outputs_fast_share": "kernel outputs"},
        alt.Y("value:Q", title="share in fast memory", axis=alt.Axis(format="%")),
        alt.Tooltip("value:Q", format=".1%", title="share"),
    ).properties(
        width=WIDTH,
        height=PANEL_HEIGHT,
        title=chart_title(TIERS_TITLE, provenance, str(df["workload"][0])),
    )
    caption = (
        "Share of kernel inputs (and outputs) read from (written to) fast memory: entries of the "
        "plan's kernels[].input_tiers (output_tiers) equal to 'fast', over all non-empty entries."
    )
    return Figure(TIERS_ID, TIERS_TITLE, caption, df, chart, provenance)


# (c) bytes moved ---------------------------------------------------------------------------

MOVED_ID = "fig10c-case-study-bytes-moved"
MOVED_TITLE = "Fig. 10c: case study, bytes moved between tiers per iteration"
MOVED_NEEDS = _needs("CPU runs")
MOVED_SCHEMA: dict[str, Any] = {
    "workload": pl.String,
    "formulation": pl.String,
    "fast_share": pl.Float64,
    "share_label": pl.String,
    "slow_to_fast_bytes": pl.Int64,
    "fast_to_slow_bytes": pl.Int64,
    "slow_to_fast_sync_bytes": pl.Int64,
    "slow_to_fast_async_bytes": pl.Int64,
    "fast_to_slow_sync_bytes": pl.Int64,
    "fast_to_slow_async_bytes": pl.Int64,
    "run_file": pl.String,
    "provenance": pl.String,
}


def moved_data(inputs: Inputs, workload: Workload) -> pl.DataFrame:
    group = by_workload(inputs.runs).get(workload, [])
    rows = []
    for run in planned(group, ILP):
        if run.fast_share is None:
            continue
        m = run.moves
        rows.append(
            {
                "workload": workload.label,
                "formulation": run.formulation,
                "fast_share": run.fast_share,
                "share_label": ratios.share_label(run.fast_share),
                "slow_to_fast_bytes": m.slow_to_fast_bytes,
                "fast_to_slow_bytes": m.fast_to_slow_bytes,
                "slow_to_fast_sync_bytes": m.slow_to_fast_sync_bytes,
                "slow_to_fast_async_bytes": m.slow_to_fast_async_bytes,
                "fast_to_slow_sync_bytes": m.fast_to_slow_sync_bytes,
                "fast_to_slow_async_bytes": m.fast_to_slow_async_bytes,
                "run_file": run.file,
                "provenance": run.provenance,
            }
        )
    return frame(rows, MOVED_SCHEMA).sort("formulation", "fast_share")


def build_moved(inputs: Inputs, options: Options) -> Figure | None:
    workload = case_study_workload(inputs, options)
    df = moved_data(inputs, workload) if workload else frame([], MOVED_SCHEMA)
    if df.is_empty():
        return None
    provenance = provenance_phrases(df["provenance"])
    chart = _dashed_lines(
        df,
        {"slow_to_fast_bytes": "slow to fast", "fast_to_slow_bytes": "fast to slow"},
        alt.Y("value:Q", title="bytes moved per iteration", axis=alt.Axis(format="~s")),
        alt.Tooltip("value:Q", format=",", title="bytes"),
    ).properties(
        width=WIDTH,
        height=PANEL_HEIGHT,
        title=chart_title(MOVED_TITLE, provenance, str(df["workload"][0])),
    )
    caption = (
        "Bytes the run copied between tiers in one iteration, each way, synchronous and "
        "asynchronous moves together (run.json moves)."
    )
    return Figure(MOVED_ID, MOVED_TITLE, caption, df, chart, provenance)
