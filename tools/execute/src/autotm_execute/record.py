"""The run record: run.json (run.schema.json) and its per-kernel table (run-kernels.json).

Both are assembled here from plain numbers and validated before anything is written; the
table is written first and run.json last, each atomically, so a reader that finds run.json
finds its table beside it.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from autotm_graph.ir import Graph
from autotm_schemas import (
    BadInputError,
    table_schema,
    validate_document,
    validate_table,
    write_document,
    write_table,
)

from . import __version__
from .schedule import Schedule

TOOL = {"name": "autotm-execute", "version": __version__}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def kernels_table_path(run_path: str | Path) -> Path:
    """``out/run.json`` -> ``out/run.kernels.parquet``."""
    path = Path(run_path)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    return path.with_name(f"{stem}.kernels.parquet")


@dataclass(frozen=True)
class KernelStats:
    """Per-node statistics over the measured iterations."""

    median_s: np.ndarray
    min_s: np.ndarray
    max_s: np.ndarray
    sync_move_s: np.ndarray
    async_wait_s: np.ndarray

    @classmethod
    def from_samples(
        cls, kernel_s: np.ndarray, sync_s: np.ndarray, wait_s: np.ndarray, warmup: int
    ) -> KernelStats:
        """``*_s`` are [iterations, nodes]; warm-up rows are dropped."""
        measured = slice(warmup, None) if kernel_s.shape[0] > warmup else slice(None)
        k, s, w = kernel_s[measured], sync_s[measured], wait_s[measured]
        return cls(
            median_s=np.median(k, axis=0),
            min_s=k.min(axis=0),
            max_s=k.max(axis=0),
            sync_move_s=np.median(s, axis=0),
            async_wait_s=np.median(w, axis=0),
        )


def kernels_table(
    graph: Graph, schedule: Schedule, stats: KernelStats, provenance: Sequence[str]
) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {
        name: []
        for name in (
            "index",
            "name",
            "op_type",
            "kernel_key",
            "input_tiers",
            "output_tiers",
            "median_s",
            "min_s",
            "max_s",
            "sync_move_s",
            "async_wait_s",
            "provenance",
        )
    }
    for placement in schedule.kernels:
        k = placement.node
        node = graph.nodes[k]
        rows["index"].append(k)
        rows["name"].append(node.name)
        rows["op_type"].append(node.op_type)
        rows["kernel_key"].append(placement.kernel_key)
        rows["input_tiers"].append(placement.input_tiers)
        rows["output_tiers"].append(placement.output_tiers)
        rows["median_s"].append(float(stats.median_s[k]))
        rows["min_s"].append(float(stats.min_s[k]))
        rows["max_s"].append(float(stats.max_s[k]))
        rows["sync_move_s"].append(float(stats.sync_move_s[k]))
        rows["async_wait_s"].append(float(stats.async_wait_s[k]))
        rows["provenance"].append(provenance[k])
    return rows


def pools_record(schedule: Schedule, sizes: Mapping[str, int]) -> dict[str, dict[str, int]]:
    return {
        tier: {"size_bytes": int(sizes[tier]), "high_water_bytes": schedule.high_water(tier)}
        for tier in ("fast", "slow")
    }


def iterations_record(seconds: Sequence[float], warmup: int) -> dict[str, Any]:
    measured = list(seconds[warmup:]) or list(seconds)
    return {
        "count": len(seconds),
        "warmup": warmup,
        "seconds": [float(s) for s in seconds],
        "median_s": float(np.median(measured)),
    }


def graph_record(graph: Graph) -> dict[str, Any]:
    batch = graph.meta.batch if graph.meta is not None else 1
    return {"path": graph.path, "sha256": graph.sha256, "network": graph.network, "batch": batch}


def write_run(run_path: str | Path, doc: dict[str, Any], table: dict[str, list[Any]]) -> None:
    """Validate both, then write the table and run.json atomically (the table first)."""
    if str(run_path) == "-":
        raise BadInputError("-o: expected a file path (run.json has a kernel table beside it)")
    table_path = kernels_table_path(run_path)
    doc["kernels_table"] = table_path.name
    validate_document(doc, "run", str(run_path))
    arrow = validate_table(
        pa.Table.from_pydict(table, schema=table_schema("run-kernels")),
        "run-kernels",
        str(table_path),
    )
    write_table(table_path, arrow, "run-kernels")
    write_document(run_path, doc, "run")
