"""PROFILE_DIR: the three tables and two documents, each validated, the folder written atomically.

Everything is written into a temporary folder beside PROFILE_DIR, validated by autotm_schemas
as it is written, then renamed into place; an existing profile there is swapped out and
removed only after the new one is in. A crash or an error at any point leaves either the old
profile or the new one, never a mixture or a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotm_graph.ir import Graph, canonical_attributes
from autotm_schemas import BadInputError, write_document, write_table

from .configs import Config, UniqueKernel
from .timing import Stats

PROFILE_FILES = (
    "kernels.parquet",
    "nodes.parquet",
    "tensors.parquet",
    "machine.json",
    "profile.json",
)


@dataclass(frozen=True)
class KernelRow:
    """One timed configuration of one kernel, with its final numbers."""

    kernel: UniqueKernel
    config: Config
    stats: Stats
    provenance: str


def kernels_table(graph: Graph, rows: Sequence[KernelRow]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        name: []
        for name in [
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
        ]
    }
    for row in rows:
        node = row.kernel.node

        def shapes(names: Sequence[str]) -> list[list[int]]:
            return [list(graph.tensors[n].shape) if n else [] for n in names]

        def sizes(names: Sequence[str]) -> list[int]:
            return [graph.tensors[n].nbytes if n else 0 for n in names]

        columns["kernel_key"].append(row.kernel.key)
        columns["op_type"].append(node.op_type)
        columns["domain"].append(node.domain)
        columns["attributes"].append(canonical_attributes(node))
        columns["input_shapes"].append(shapes(node.inputs))
        columns["input_bytes"].append(sizes(node.inputs))
        columns["output_shapes"].append(shapes(node.outputs))
        columns["output_bytes"].append(sizes(node.outputs))
        columns["input_tiers"].append(list(row.config.input_tiers))
        columns["output_tiers"].append(list(row.config.output_tiers))
        columns["median_s"].append(row.stats.median_s)
        columns["min_s"].append(row.stats.min_s)
        columns["max_s"].append(row.stats.max_s)
        columns["samples"].append(row.stats.samples)
        columns["provenance"].append(row.provenance)
    return columns


def nodes_table(
    graph: Graph, keys: Sequence[str], scratch: Mapping[str, int]
) -> dict[str, list[Any]]:
    """One row per node in execution order; ``scratch`` is by kernel key (graph batch)."""
    return {
        "index": [n.index for n in graph.nodes],
        "name": [n.name for n in graph.nodes],
        "op_type": [n.op_type for n in graph.nodes],
        "domain": [n.domain for n in graph.nodes],
        "kernel_key": list(keys),
        "inputs": [list(n.inputs) for n in graph.nodes],
        "outputs": [list(n.outputs) for n in graph.nodes],
        "scratch_bytes": [int(scratch[k]) for k in keys],
    }


def tensors_table(graph: Graph, fixed: Mapping[str, str | None]) -> dict[str, list[Any]]:
    tensors = list(graph.tensors.values())
    return {
        "name": [t.name for t in tensors],
        "bytes": [t.nbytes for t in tensors],
        "dtype": [t.dtype.name for t in tensors],
        "shape": [list(t.shape) for t in tensors],
        "kind": [t.kind for t in tensors],
        "producer": [t.producer for t in tensors],
        "users": [sorted(set(t.users)) for t in tensors],
        "fixed_tier": [fixed.get(t.name) for t in tensors],
    }


def check_target(target: Path) -> None:
    """Refuse to replace a folder that holds anything but a profile (it would be deleted)."""
    if target.exists() and not target.is_dir():
        raise BadInputError(f"-o {target}: expected a folder (or a new name), got a file")
    if target.is_dir():
        others = sorted(p.name for p in target.iterdir() if p.name not in PROFILE_FILES)
        if others:
            raise BadInputError(
                f"-o {target}: expected a new folder or an earlier profile; it holds "
                f"{others[0]!r}, which is not part of a profile"
            )


def write_profile_dir(
    target: Path,
    kernels: Mapping[str, list[Any]],
    nodes: Mapping[str, list[Any]],
    tensors: Mapping[str, list[Any]],
    machine: Mapping[str, Any],
    manifest: Mapping[str, Any],
) -> None:
    """Write every file into a temporary folder, then swap it in (see the module docstring)."""
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write_table(staging / "kernels.parquet", dict(kernels), "kernels")
        write_table(staging / "nodes.parquet", dict(nodes), "nodes")
        write_table(staging / "tensors.parquet", dict(tensors), "tensors")
        write_document(staging / "machine.json", dict(machine), "machine")
        write_document(staging / "profile.json", dict(manifest), "profile")
        # mkstemp/mkdtemp create private files; a profile is as readable as any other output.
        mask = _umask()
        for name in PROFILE_FILES:
            os.chmod(staging / name, 0o644 & ~mask)
        os.chmod(staging, 0o755 & ~mask)
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            old.rmdir()
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
