"""The optimizer's view of a PROFILE_DIR: nodes, tensors with lifetimes, kernel configurations.

Everything the planners need is read here once, checked against the contracts and against itself
(a node naming a tensor the tensor table lacks, a tensor whose users do not read it), and frozen
into dataclasses. The optimizer never opens ONNX: the three Parquet tables, machine.json and
profile.json are its whole input.

Lifetimes follow the plan contract: a tensor lives from its producer (node 0 for parameters,
inputs and constants, which exist before the first kernel) to its last user; parameters,
updated parameters and graph outputs live to the end of the iteration. Sizes are counted as the
pools count them (:mod:`autotm_schemas.alignment`, shared with the executor and the verifier): a
tensor of a page or more takes whole 4 KiB pages, a smaller one whole 64-byte cache lines, so
the thousands of BatchNormalization statistics and biases of a CNN share pages instead of
taking one each, and the budget the ILP keeps is the one the address assignment can honour.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from autotm_schemas import BadInputError, read_document, read_table
from autotm_schemas.alignment import PAGE_BYTES, padded_size
from autotm_schemas.provenance import combine

PAGE = PAGE_BYTES
FAST = "fast"
SLOW = "slow"
# Kinds that exist before kernel 0; kinds that must survive to the end of the iteration.
PRE_EXISTING = frozenset({"parameter", "input", "constant"})
LIVE_TO_END = frozenset({"parameter", "updated_parameter", "output"})


def tensor_pool_bytes(nbytes: int) -> int:
    """Bytes a tensor of ``nbytes`` occupies in a pool (its size padded to its alignment)."""
    return padded_size(int(nbytes))


def scratch_pool_bytes(nbytes: int) -> int:
    """Bytes a kernel's scratch occupies in the fast pool; no scratch takes no space."""
    return padded_size(int(nbytes)) if nbytes > 0 else 0


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    bytes: int
    kind: str
    producer: int | None
    users: tuple[int, ...]
    fixed_tier: str | None
    birth: int  # first node it exists at (its producer, or 0)
    death: int  # last node it must still exist at

    @property
    def pool_bytes(self) -> int:
        """Its size in a pool, padded to its alignment."""
        return tensor_pool_bytes(self.bytes)

    @property
    def pre_existing(self) -> bool:
        return self.producer is None


@dataclass(frozen=True)
class KernelConfig:
    """One profiled configuration: the tier of every input and output position, and its time."""

    input_tiers: tuple[str, ...]
    output_tiers: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class Node:
    index: int
    name: str
    op_type: str
    kernel_key: str
    inputs: tuple[int | None, ...]  # tensor index by position, None for an omitted input
    outputs: tuple[int | None, ...]
    scratch_bytes: int
    configs: tuple[KernelConfig, ...]

    @property
    def tensors(self) -> tuple[int, ...]:
        """Distinct tensors this kernel reads or writes, inputs first."""
        return tuple(dict.fromkeys(t for t in (*self.inputs, *self.outputs) if t is not None))


@dataclass(frozen=True)
class CopyRates:
    """Measured copy bandwidths in bytes per second (machine.json copy_bandwidth)."""

    slow_to_fast_sync: float
    slow_to_fast_async: float
    fast_to_slow_sync: float
    fast_to_slow_async: float

    def seconds(self, nbytes: int, direction: str, kind: str) -> float:
        rate = {
            ("slow_to_fast", "sync"): self.slow_to_fast_sync,
            ("slow_to_fast", "async"): self.slow_to_fast_async,
            ("fast_to_slow", "sync"): self.fast_to_slow_sync,
            ("fast_to_slow", "async"): self.fast_to_slow_async,
        }[(direction, kind)]
        return nbytes / rate


@dataclass(frozen=True)
class Problem:
    network: str
    batch: int
    graph_sha256: str
    profile_path: str | None
    machine_fingerprint: str | None
    provenance: str
    nodes: tuple[Node, ...]
    tensors: tuple[Tensor, ...]
    copy: CopyRates

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def live_bytes(self, tier_fast: Sequence[bool] | None = None) -> np.ndarray:
        """Pool bytes of tensors alive at each node (only those flagged, when flags are given)."""
        delta = np.zeros(self.n_nodes + 1, dtype=np.int64)
        for t in self.tensors:
            if tier_fast is None or tier_fast[t.index]:
                delta[t.birth] += t.pool_bytes
                delta[t.death + 1] -= t.pool_bytes
        return np.cumsum(delta[:-1])

    def scratch_bytes(self) -> np.ndarray:
        """Pool bytes of each node's scratch."""
        return np.array([scratch_pool_bytes(n.scratch_bytes) for n in self.nodes], dtype=np.int64)

    def footprint_bytes(self) -> int:
        """All-fast peak: the pool bytes of every tensor alive at a node plus that node's
        scratch, at the busiest node (a lower bound on the all-fast pool)."""
        if not self.nodes:
            return 0
        return int((self.live_bytes() + self.scratch_bytes()).max())

    def config_seconds(
        self, node: Node, input_tiers: Sequence[str], output_tiers: Sequence[str]
    ) -> float | None:
        """Profiled time of one configuration of a node, or None when it was not profiled."""
        want = (tuple(input_tiers), tuple(output_tiers))
        for config in node.configs:
            if (config.input_tiers, config.output_tiers) == want:
                return config.seconds
        return None


# ---------------------------------------------------------------------------------------------
# Reading a PROFILE_DIR


def _tier_list(
    values: Sequence[str], names: Sequence[str], file: str, field: str, what: str
) -> tuple[str, ...]:
    if len(values) != len(names):
        raise BadInputError(
            f"{file}: {field}: expected {len(names)} tiers for {what}, got {len(values)}"
        )
    for value, name in zip(values, names, strict=True):
        if (value == "") != (name == ""):
            raise BadInputError(
                f"{file}: {field}: expected '' exactly at omitted positions of {what}, got {list(values)}"
            )
        if value not in ("", FAST, SLOW):
            raise BadInputError(f"{file}: {field}: expected fast, slow or '', got {value!r}")
    return tuple(values)


def _columns(table: Any) -> dict[str, list[Any]]:
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _read_tensors(path: Path, n_nodes: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    cols = _columns(read_table(path, "tensors"))
    file = str(path)
    rows = []
    index: dict[str, int] = {}
    for i, name in enumerate(cols["name"]):
        if name in index:
            raise BadInputError(f"{file}: name: expected unique tensor names, got {name!r} twice")
        index[name] = i
        producer = cols["producer"][i]
        users = list(cols["users"][i])
        if producer is not None and not 0 <= producer < n_nodes:
            raise BadInputError(
                f"{file}: producer of tensor {name!r}: expected a node index in 0..{n_nodes - 1}, got {producer}"
            )
        if any(u < 0 or u >= n_nodes for u in users) or users != sorted(set(users)):
            raise BadInputError(
                f"{file}: users of tensor {name!r}: expected ascending distinct node indices in 0..{n_nodes - 1}, got {users}"
            )
        if cols["bytes"][i] < 0:
            raise BadInputError(f"{file}: bytes of tensor {name!r}: expected >= 0")
        rows.append(
            {
                "name": name,
                "bytes": int(cols["bytes"][i]),
                "kind": cols["kind"][i],
                "producer": producer,
                "users": tuple(users),
                "fixed_tier": cols["fixed_tier"][i],
            }
        )
    return rows, index


def _read_kernels(path: Path) -> tuple[dict[str, list[KernelConfig]], dict[str, str]]:
    cols = _columns(read_table(path, "kernels"))
    file = str(path)
    by_key: dict[str, list[KernelConfig]] = {}
    provenance: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    for i, key in enumerate(cols["kernel_key"]):
        seconds = cols["median_s"][i]
        if not math.isfinite(seconds) or seconds < 0:
            raise BadInputError(
                f"{file}: median_s of kernel {key!r}: expected a finite time >= 0, got {seconds}"
            )
        ins = tuple(cols["input_tiers"][i])
        outs = tuple(cols["output_tiers"][i])
        if (key, ins, outs) in seen:
            raise BadInputError(
                f"{file}: input_tiers/output_tiers: expected one row per kernel and configuration, "
                f"got kernel {key!r} with {list(ins)}|{list(outs)} twice"
            )
        seen.add((key, ins, outs))
        by_key.setdefault(key, []).append(KernelConfig(ins, outs, float(seconds)))
        provenance.setdefault(key, cols["provenance"][i])
    return by_key, provenance


def _lifetime(row: dict[str, Any], n_nodes: int) -> tuple[int, int]:
    birth = row["producer"] if row["producer"] is not None else 0
    users = row["users"]
    death = n_nodes - 1 if row["kind"] in LIVE_TO_END else max(users) if users else birth
    return birth, max(birth, death)


def load_problem(profile_dir: str | os.PathLike[str]) -> Problem:
    """Read and cross-check a PROFILE_DIR written by autotm-profile."""
    root = Path(profile_dir)
    if not root.is_dir():
        raise BadInputError(
            f"{root}: (directory): expected a PROFILE_DIR written by autotm-profile"
        )
    profile = read_document(root / "profile.json", "profile")
    machine = read_document(root / "machine.json", "machine")
    node_cols = _columns(read_table(root / "nodes.parquet", "nodes"))
    n_nodes = len(node_cols["index"])
    nodes_file = str(root / "nodes.parquet")
    if node_cols["index"] != list(range(n_nodes)):
        raise BadInputError(f"{nodes_file}: index: expected 0..{n_nodes - 1} in order")
    tensor_rows, tensor_index = _read_tensors(root / "tensors.parquet", n_nodes)
    kernels, kernel_provenance = _read_kernels(root / "kernels.parquet")

    nodes = []
    used_provenance: set[str] = set()
    for i in range(n_nodes):
        name = node_cols["name"][i]
        in_names = list(node_cols["inputs"][i])
        out_names = list(node_cols["outputs"][i])
        for field, names in (("inputs", in_names), ("outputs", out_names)):
            for tname in names:
                if tname and tname not in tensor_index:
                    raise BadInputError(
                        f"{nodes_file}: {field} of node {name!r}: expected a tensor of tensors.parquet, got {tname!r}"
                    )
        key = node_cols["kernel_key"][i]
        if key not in kernels:
            raise BadInputError(
                f"{root / 'kernels.parquet'}: kernel_key: expected a row for kernel {key!r} of node {name!r}"
            )
        what = f"node {name!r}"
        configs = tuple(
            KernelConfig(
                _tier_list(
                    c.input_tiers, in_names, str(root / "kernels.parquet"), "input_tiers", what
                ),
                _tier_list(
                    c.output_tiers, out_names, str(root / "kernels.parquet"), "output_tiers", what
                ),
                c.seconds,
            )
            for c in kernels[key]
        )
        used_provenance.add(kernel_provenance[key])
        nodes.append(
            Node(
                index=i,
                name=name,
                op_type=node_cols["op_type"][i],
                kernel_key=key,
                inputs=tuple(tensor_index[t] if t else None for t in in_names),
                outputs=tuple(tensor_index[t] if t else None for t in out_names),
                scratch_bytes=max(0, int(node_cols["scratch_bytes"][i])),
                configs=configs,
            )
        )

    tensors_file = str(root / "tensors.parquet")
    tensors = []
    for i, row in enumerate(tensor_rows):
        producer = row["producer"]
        if producer is not None and i not in nodes[producer].outputs:
            raise BadInputError(
                f"{tensors_file}: producer of tensor {row['name']!r}: expected node {producer} to list it among its outputs"
            )
        for user in row["users"]:
            if i not in nodes[user].inputs:
                raise BadInputError(
                    f"{tensors_file}: users of tensor {row['name']!r}: expected node {user} to list it among its inputs"
                )
            if producer is not None and user <= producer:
                raise BadInputError(
                    f"{tensors_file}: users of tensor {row['name']!r}: expected users after its producer {producer}, got {user}"
                )
        birth, death = _lifetime(row, n_nodes)
        tensors.append(
            Tensor(
                index=i,
                name=row["name"],
                bytes=row["bytes"],
                kind=row["kind"],
                producer=producer,
                users=row["users"],
                fixed_tier=row["fixed_tier"],
                birth=birth,
                death=death,
            )
        )
    for node in nodes:
        for t in node.inputs:
            if t is not None and node.index not in tensors[t].users:
                raise BadInputError(
                    f"{tensors_file}: users of tensor {tensors[t].name!r}: expected node {node.index} ({node.name!r}), which reads it"
                )
        for t in node.outputs:
            if t is not None and tensors[t].producer != node.index:
                raise BadInputError(
                    f"{tensors_file}: producer of tensor {tensors[t].name!r}: expected node {node.index} ({node.name!r}), which writes it"
                )

    bandwidth = machine["copy_bandwidth"]
    copy = CopyRates(
        slow_to_fast_sync=float(bandwidth["slow_to_fast"]["sync_bytes_per_s"]),
        slow_to_fast_async=float(bandwidth["slow_to_fast"]["async_bytes_per_s"]),
        fast_to_slow_sync=float(bandwidth["fast_to_slow"]["sync_bytes_per_s"]),
        fast_to_slow_async=float(bandwidth["fast_to_slow"]["async_bytes_per_s"]),
    )
    graph = profile["graph"]
    return Problem(
        network=graph["network"],
        batch=int(graph["batch"]),
        graph_sha256=graph["sha256"],
        profile_path=str(root.resolve()),
        machine_fingerprint=machine.get("fingerprint"),
        provenance=combine(*sorted(used_provenance)) if used_provenance else profile["provenance"],
        nodes=tuple(nodes),
        tensors=tuple(tensors),
        copy=copy,
    )
