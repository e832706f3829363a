"""`autotm-graph info`: what a graph costs in memory, read from its static shapes.

The numbers here are computed, not measured: node and op counts, parameter sizes, and the
peak of live bytes over the execution order when every tensor sits in one tier (the all-fast
footprint that ``--ratio`` divides). The peak excludes kernel scratch space (im2col buffers
and the like), which depends on the executor, not on the graph. Works on inference graphs
(from ``autotm-graph zoo`` or an exporter) and on training graphs alike.
"""

from __future__ import annotations

from typing import Any

from autotm_schemas.units import format_bytes

from .ir import TENSOR_KINDS, Graph

FOOTPRINT_NOTE = (
    "peak of live tensor bytes over the execution order, every tensor in one tier; "
    "excludes kernel scratch space"
)
SOURCE = "computed from the graph's static shapes"


def lifetimes(graph: Graph) -> list[dict[str, Any]]:
    """One row per tensor: kind, shape, bytes and the inclusive node range it is live."""
    rows = []
    for name, tensor in graph.tensors.items():
        first, last = graph.lifetime(name)
        rows.append(
            {
                "name": name,
                "kind": tensor.kind,
                "dtype": tensor.dtype.name,
                "shape": list(tensor.shape),
                "bytes": tensor.nbytes,
                "producer": tensor.producer,
                "first": first,
                "last": last,
            }
        )
    return rows


def describe(graph: Graph, with_lifetimes: bool = True) -> dict[str, Any]:
    """The summary `info` prints, as plain data (the ``--json`` output)."""
    live = graph.live_bytes_per_node()
    peak_index = int(live.argmax()) if len(live) else None
    by_kind: dict[str, dict[str, int]] = {}
    for tensor in graph.tensors.values():
        entry = by_kind.setdefault(tensor.kind, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += tensor.nbytes
    params = graph.parameters
    summary: dict[str, Any] = {
        "file": graph.path,
        "sha256": graph.sha256,
        "network": graph.network,
        "graph": "training" if graph.meta is not None else "inference",
        "batch": graph.meta.batch if graph.meta is not None else _inference_batch(graph),
        "source": SOURCE,
        "nodes": len(graph.nodes),
        "ops": graph.op_histogram(),
        "parameters": {
            "tensors": len(params),
            "elements": graph.parameter_count(trainable_only=False),
            "trainable_elements": graph.parameter_count(trainable_only=True),
            "bytes": graph.parameter_bytes(),
            "seeded": sum(1 for p in params if p.init is not None),
        },
        "tensors": {
            "count": len(graph.tensors),
            "by_kind": {k: by_kind[k] for k in TENSOR_KINDS if k in by_kind},
        },
        "peak_live_bytes": int(live[peak_index]) if peak_index is not None else 0,
        "peak_node": (
            {"index": peak_index, "name": graph.nodes[peak_index].name}
            if peak_index is not None
            else None
        ),
        "footprint_note": FOOTPRINT_NOTE,
    }
    if with_lifetimes:
        summary["lifetimes"] = lifetimes(graph)
    return summary


def _inference_batch(graph: Graph) -> int | None:
    """The leading dimension shared by the data inputs of an inference graph, if any."""
    batches = {t.shape[0] for t in graph.iter_tensors("input") if t.shape}
    return batches.pop() if len(batches) == 1 else None


def _bytes(count: int) -> str:
    return f"{format_bytes(count)} ({count:,} B)" if count >= 1024 else f"{count} B"


def render_text(summary: dict[str, Any], top: int = 10) -> str:
    """A short human-readable report: the summary, then the largest tensors' lifetimes."""
    params = summary["parameters"]
    batch = f", batch {summary['batch']}" if summary["batch"] is not None else ""
    ops = ", ".join(f"{op} {count}" for op, count in summary["ops"].items())
    lines = [
        f"file        {summary['file']} (sha256 {summary['sha256'][:12]})",
        f"network     {summary['network']} ({summary['graph']} graph{batch})",
        f"nodes       {summary['nodes']}",
        f"ops         {ops or '-'}",
        f"parameters  {params['tensors']} tensors, {params['elements']:,} elements "
        f"({params['trainable_elements']:,} trainable), {_bytes(params['bytes'])}"
        + (f"; {params['seeded']} seeded" if params["seeded"] else ""),
    ]
    kinds = ", ".join(
        f"{kind} {v['count']} ({format_bytes(v['bytes'])})"
        for kind, v in summary["tensors"]["by_kind"].items()
    )
    lines.append(f"tensors     {summary['tensors']['count']}: {kinds}")
    peak = summary["peak_node"]
    where = f" at node {peak['index']} {peak['name']!r}" if peak else ""
    lines.append(f"peak live   {_bytes(summary['peak_live_bytes'])}{where}")
    lines.append(f"            ({summary['footprint_note']}; {summary['source']})")
    rows = sorted(summary.get("lifetimes", []), key=lambda r: (-r["bytes"], r["name"]))[:top]
    if rows:
        lines.append("")
        lines.append(f"largest tensors (top {len(rows)} of {summary['tensors']['count']}):")
        header = ("name", "kind", "shape", "bytes", "live")
        table = [
            (
                r["name"],
                r["kind"],
                "x".join(map(str, r["shape"])) or "scalar",
                format_bytes(r["bytes"]),
                f"{r['first']}..{r['last']}",
            )
            for r in rows
        ]
        widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            lines.append(
                "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            )
    return "\n".join(lines) + "\n"
