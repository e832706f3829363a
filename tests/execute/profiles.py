"""A hand-made PROFILE_DIR for --simulate tests: kernel times chosen, not measured.

Every node's kernel gets an all-fast time and an all-slow time (twice as long); placements in
between are left out on purpose, so the simulator's fallback (all-fast time plus the device
model's penalty) is exercised too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotm_execute.device_model import DeviceModel
from autotm_graph.ir import Graph, canonical_attributes, kernel_key
from autotm_schemas import write_document, write_table

COPY = {
    "slow_to_fast": {"sync_bytes_per_s": 1e6, "async_bytes_per_s": 1e4},
    "fast_to_slow": {"sync_bytes_per_s": 5e5, "async_bytes_per_s": 2e4},
}


def fast_time(index: int) -> float:
    return 1e-3 * (1 + index % 4)


def make_profile(graph: Graph, folder: Path, provenance: str = "emulated:optane-dc-2019") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kernels: dict[str, list[Any]] = {
        k: []
        for k in (
            "kernel_key",
            "op_type",
            "domain",
            "attributes",
            "input_shapes",
            "input_bytes",
            "output_shapes",
            "output_bytes",
            "input_tiers",
            "output_tiers",
            "median_s",
            "min_s",
            "max_s",
            "samples",
            "provenance",
        )
    }
    seen: set[str] = set()
    for node in graph.nodes:
        key = kernel_key(graph, node)
        if key in seen:
            continue
        seen.add(key)
        for tier, scale in (("fast", 1.0), ("slow", 2.0)):
            t = fast_time(node.index) * scale
            kernels["kernel_key"].append(key)
            kernels["op_type"].append(node.op_type)
            kernels["domain"].append(node.domain)
            kernels["attributes"].append(canonical_attributes(node))
            kernels["input_shapes"].append(
                [list(graph.tensors[n].shape) if n else [] for n in node.inputs]
            )
            kernels["input_bytes"].append(
                [graph.tensors[n].nbytes if n else 0 for n in node.inputs]
            )
            kernels["output_shapes"].append(
                [list(graph.tensors[n].shape) if n else [] for n in node.outputs]
            )
            kernels["output_bytes"].append(
                [graph.tensors[n].nbytes if n else 0 for n in node.outputs]
            )
            kernels["input_tiers"].append([tier if n else "" for n in node.inputs])
            kernels["output_tiers"].append([tier if n else "" for n in node.outputs])
            kernels["median_s"].append(t)
            kernels["min_s"].append(t * 0.9)
            kernels["max_s"].append(t * 1.1)
            kernels["samples"].append(3)
            kernels["provenance"].append(provenance)
    write_table(folder / "kernels.parquet", kernels, "kernels")
    write_table(
        folder / "nodes.parquet",
        {
            "index": [n.index for n in graph.nodes],
            "name": [n.name for n in graph.nodes],
            "op_type": [n.op_type for n in graph.nodes],
            "domain": [n.domain for n in graph.nodes],
            "kernel_key": [kernel_key(graph, n) for n in graph.nodes],
            "inputs": [list(n.inputs) for n in graph.nodes],
            "outputs": [list(n.outputs) for n in graph.nodes],
            "scratch_bytes": [0 for _ in graph.nodes],
        },
        "nodes",
    )
    model = DeviceModel.load("optane-dc-2019").to_json()
    write_document(
        folder / "machine.json",
        {
            "format": "autotm.machine/1",
            "fingerprint": "0123456789abcdef",
            "device": "cpu",
            "cpu": {"model": "hand-made", "cores": 1},
            "memory_bytes": 1 << 30,
            "tiers": {
                "fast": {"kind": "dram", "description": "DRAM"},
                "slow": {"kind": "emulated", "description": "emulated"},
            },
            "device_model": model,
            "copy_bandwidth": COPY,
            "provenance": provenance,
        },
        "machine",
    )
    write_document(
        folder / "profile.json",
        {
            "format": "autotm.profile/1",
            "graph": {
                "path": graph.path,
                "sha256": graph.sha256,
                "batch": graph.meta.batch if graph.meta else 1,
                "network": graph.network,
            },
            "tools": [{"name": "hand", "version": "0"}],
            "options": {},
            "started": "2020-01-01T00:00:00Z",
            "finished": "2020-01-01T00:00:01Z",
            "counts": {
                "nodes": len(graph.nodes),
                "tensors": len(graph.tensors),
                "unique_kernels": len(seen),
                "configurations": 2 * len(seen),
                "timed": 2 * len(seen),
                "from_cache": 0,
            },
            "provenance": provenance,
        },
        "profile",
    )
    return folder
