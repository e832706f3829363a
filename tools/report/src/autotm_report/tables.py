"""The report's summary tables: every run, plan and profile given, one row each.

They are written to Parquet beside the figures' data and shown on the page, so a reader can
trace any bar back to the file it came from.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .inputs import Inputs

RUNS_SCHEMA: dict[str, Any] = {
    "network": pl.String,
    "batch": pl.Int64,
    "device": pl.String,
    "mode": pl.String,
    "formulation": pl.String,
    "budget": pl.String,
    "fast_share": pl.Float64,
    "fast_limit_bytes": pl.Int64,
    "median_s": pl.Float64,
    "predicted_s": pl.Float64,
    "slow_to_fast_bytes": pl.Int64,
    "fast_to_slow_bytes": pl.Int64,
    "provenance": pl.String,
    "file": pl.String,
}

PLANS_SCHEMA: dict[str, Any] = {
    "network": pl.String,
    "batch": pl.Int64,
    "formulation": pl.String,
    "ratio": pl.String,
    "fast_share": pl.Float64,
    "fast_limit_bytes": pl.Int64,
    "footprint_bytes": pl.Int64,
    "predicted_s": pl.Float64,
    "moved_bytes": pl.Int64,
    "solver": pl.String,
    "status": pl.String,
    "solve_s": pl.Float64,
    "provenance": pl.String,
    "file": pl.String,
}

PROFILES_SCHEMA: dict[str, Any] = {
    "network": pl.String,
    "batch": pl.Int64,
    "measure_batch": pl.Int64,
    "nodes": pl.Int64,
    "tensors": pl.Int64,
    "unique_kernels": pl.Int64,
    "configurations": pl.Int64,
    "device": pl.String,
    "cpu": pl.String,
    "fast_tier": pl.String,
    "slow_tier": pl.String,
    "device_model": pl.String,
    "provenance": pl.String,
    "folder": pl.String,
}


def runs_table(inputs: Inputs) -> pl.DataFrame:
    rows = [
        {
            "network": r.workload.network,
            "batch": r.workload.batch,
            "device": r.workload.device,
            "mode": r.mode,
            "formulation": r.formulation,
            "budget": r.budget_label,
            "fast_share": r.fast_share,
            "fast_limit_bytes": r.fast_limit_bytes,
            "median_s": r.median_s,
            "predicted_s": r.predicted_s,
            "slow_to_fast_bytes": r.moves.slow_to_fast_bytes,
            "fast_to_slow_bytes": r.moves.fast_to_slow_bytes,
            "provenance": r.provenance,
            "file": r.file,
        }
        for r in inputs.runs
    ]
    df = pl.DataFrame(rows, schema=RUNS_SCHEMA, orient="row")
    return df.sort("device", "network", "batch", "formulation", "fast_share", nulls_last=True)


def plans_table(inputs: Inputs) -> pl.DataFrame:
    rows = [
        {
            "network": p.network,
            "batch": p.batch,
            "formulation": p.formulation,
            "ratio": p.ratio,
            "fast_share": p.fast_share,
            "fast_limit_bytes": p.fast_limit_bytes,
            "footprint_bytes": p.footprint_bytes,
            "predicted_s": p.predicted_s,
            "moved_bytes": p.moved_bytes,
            "solver": p.solver,
            "status": p.status,
            "solve_s": p.solve_s,
            "provenance": p.provenance,
            "file": p.file,
        }
        for p in inputs.plans
    ]
    df = pl.DataFrame(rows, schema=PLANS_SCHEMA, orient="row")
    return df.sort("network", "batch", "formulation", "fast_share")


def profiles_table(inputs: Inputs) -> pl.DataFrame:
    rows = [
        {
            "network": p.network,
            "batch": p.batch,
            "measure_batch": p.measure_batch,
            "nodes": p.nodes,
            "tensors": p.tensors,
            "unique_kernels": p.unique_kernels,
            "configurations": p.configurations,
            "device": p.device,
            "cpu": p.cpu,
            "fast_tier": p.fast_tier,
            "slow_tier": p.slow_tier,
            "device_model": p.device_model,
            "provenance": p.provenance,
            "folder": p.folder,
        }
        for p in inputs.profiles
    ]
    return pl.DataFrame(rows, schema=PROFILES_SCHEMA, orient="row").sort("network", "batch")
