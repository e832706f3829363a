"""Synthetic PROFILE_DIRs: hand-made tiny profiles for tests, generated networks for benchmarks.

SYNTHETIC DATA. Nothing here is measured: kernel times come from a roofline model (compute at a
fixed rate, memory traffic at per-tier bandwidths) and carry the provenance ``simulated``. They
exist so the optimizer can be exercised and timed before real profiles exist; a real PROFILE_DIR
comes from autotm-profile.

:func:`write_profile` writes the five files of a PROFILE_DIR from plain Python rows.
:func:`synthetic_network` builds a training iteration (forward, backward, one SGD update per
parameter right after its gradient) of a chain (VGG-like), residual (ResNet-like) or dense
(DenseNet-like) convolutional network with realistic tensor sizes, hundreds to thousands of
nodes, and every tier configuration of each kernel timed by the model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotm_schemas import write_document, write_table

GB = 1e9
# Roofline of the simulated machine: bytes per second by tier and access, flops per second.
FAST_BW = 100 * GB
SLOW_READ_BW = 30 * GB
SLOW_WRITE_BW = 10 * GB
FLOPS = 2e12
# Copy bandwidths as the original AutoTM's model used (GB/s): 29 / 2 async slow->fast,
# 12 / 2.5 async fast->slow.
COPY = {"slow_to_fast": (29 * GB, 2 * GB), "fast_to_slow": (12 * GB, 2.5 * GB)}
FIXED_BELOW = 4096
MAX_VARIED = 6


def write_profile(
    directory: str | os.PathLike[str],
    nodes: list[dict[str, Any]],
    tensors: list[dict[str, Any]],
    kernels: list[dict[str, Any]],
    *,
    network: str = "synthetic",
    batch: int = 1,
    copy: dict[str, tuple[float, float]] | None = None,
    provenance: str = "simulated",
) -> Path:
    """Write a PROFILE_DIR from rows; missing table columns get neutral defaults.

    nodes: name, op_type, kernel_key, inputs, outputs, [scratch_bytes];
    tensors: name, bytes, kind, producer, users, [fixed_tier];
    kernels: kernel_key, input_tiers, output_tiers, median_s, [op_type].
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    write_table(
        root / "nodes.parquet",
        {
            "index": list(range(len(nodes))),
            "name": [n["name"] for n in nodes],
            "op_type": [n["op_type"] for n in nodes],
            "domain": [n.get("domain", "") for n in nodes],
            "kernel_key": [n["kernel_key"] for n in nodes],
            "inputs": [list(n["inputs"]) for n in nodes],
            "outputs": [list(n["outputs"]) for n in nodes],
            "scratch_bytes": [int(n.get("scratch_bytes", 0)) for n in nodes],
        },
        "nodes",
    )
    write_table(
        root / "tensors.parquet",
        {
            "name": [t["name"] for t in tensors],
            "bytes": [int(t["bytes"]) for t in tensors],
            "dtype": [t.get("dtype", "float32") for t in tensors],
            "shape": [list(t.get("shape", [max(1, int(t["bytes"]) // 4)])) for t in tensors],
            "kind": [t["kind"] for t in tensors],
            "producer": [t["producer"] for t in tensors],
            "users": [list(t["users"]) for t in tensors],
            "fixed_tier": [t.get("fixed_tier") for t in tensors],
        },
        "tensors",
    )
    write_table(
        root / "kernels.parquet",
        {
            "kernel_key": [k["kernel_key"] for k in kernels],
            "op_type": [k.get("op_type", "Op") for k in kernels],
            "domain": [k.get("domain", "") for k in kernels],
            "attributes": [k.get("attributes", "{}") for k in kernels],
            "input_shapes": [
                k.get("input_shapes", [[] for _ in k["input_tiers"]]) for k in kernels
            ],
            "input_bytes": [k.get("input_bytes", [0 for _ in k["input_tiers"]]) for k in kernels],
            "output_shapes": [
                k.get("output_shapes", [[] for _ in k["output_tiers"]]) for k in kernels
            ],
            "output_bytes": [
                k.get("output_bytes", [0 for _ in k["output_tiers"]]) for k in kernels
            ],
            "input_tiers": [list(k["input_tiers"]) for k in kernels],
            "output_tiers": [list(k["output_tiers"]) for k in kernels],
            "median_s": [float(k["median_s"]) for k in kernels],
            "min_s": [float(k.get("min_s", k["median_s"])) for k in kernels],
            "max_s": [float(k.get("max_s", k["median_s"])) for k in kernels],
            "samples": [int(k.get("samples", 1)) for k in kernels],
            "provenance": [k.get("provenance", provenance) for k in kernels],
        },
        "kernels",
    )
    rates = copy or COPY
    write_document(
        root / "machine.json",
        {
            "format": "autotm.machine/1",
            "fingerprint": "synthetic-roofline-machine",
            "device": "cpu",
            "cpu": {"model": "synthetic roofline model", "cores": 2},
            "memory_bytes": 0,
            "tiers": {
                "fast": {"kind": "dram", "description": "simulated fast tier"},
                "slow": {"kind": "emulated", "description": "simulated slow tier"},
            },
            "device_model": None,
            "copy_bandwidth": {
                direction: {"sync_bytes_per_s": sync, "async_bytes_per_s": asynchronous}
                for direction, (sync, asynchronous) in rates.items()
            },
            "provenance": "simulated",
        },
        "machine",
    )
    digest = hashlib.sha256(
        json.dumps([nodes, [t["name"] for t in tensors]], sort_keys=True, default=str).encode()
    ).hexdigest()
    write_document(
        root / "profile.json",
        {
            "format": "autotm.profile/1",
            "graph": {
                "path": f"{network}.onnx",
                "sha256": digest,
                "batch": batch,
                "network": network,
            },
            "measure_batch": None,
            "tools": [{"name": "autotm-optimize synthetic", "version": "0.1.0"}],
            "options": {"synthetic": True},
            "started": "2024-01-01T00:00:00Z",
            "finished": "2024-01-01T00:00:00Z",
            "counts": {
                "nodes": len(nodes),
                "tensors": len(tensors),
                "unique_kernels": len({k["kernel_key"] for k in kernels}),
                "configurations": len(kernels),
                "timed": 0,
                "from_cache": 0,
            },
            "provenance": provenance,
        },
        "profile",
    )
    return root


# ---------------------------------------------------------------------------------------------
# Generated networks


@dataclass
class _Graph:
    """A training iteration under construction: tensors by name, nodes in execution order."""

    batch: int
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)

    def tensor(self, name: str, nbytes: int, kind: str) -> str:
        self.tensors[name] = {
            "name": name,
            "bytes": int(nbytes),
            "kind": kind,
            "producer": None,
            "users": [],
        }
        return name

    def node(
        self,
        op: str,
        inputs: list[str],
        outputs: list[tuple[str, int, str]],
        flops: float = 0.0,
        scratch: int = 0,
    ) -> list[str]:
        index = len(self.nodes)
        names = []
        for name, nbytes, kind in outputs:
            self.tensor(name, nbytes, kind)
            self.tensors[name]["producer"] = index
            names.append(name)
        for name in dict.fromkeys(inputs):
            self.tensors[name]["users"].append(index)
        shapes = ",".join(str(self.tensors[n]["bytes"]) for n in (*inputs, *names))
        self.nodes.append(
            {
                "index": index,
                "name": f"{op.lower()}_{index}",
                "op_type": op,
                "kernel_key": f"{op}({shapes})",
                "inputs": list(inputs),
                "outputs": names,
                "scratch_bytes": scratch,
            }
        )
        self.flops.append(flops)
        return names


def _forward(
    family: str, g: _Graph, layers: int, width: int, image: int, batchnorm: bool
) -> tuple[str, list[tuple[str, str, str]]]:
    """Build the forward pass; returns the logits and, per conv, (input, weight, output)."""
    b = g.batch
    x = g.tensor("images", b * 3 * image * image * 4, "input")
    channels, size = 3, image
    convs: list[tuple[str, str, str]] = []
    block: list[str] = []
    skip = x
    for i in range(layers):
        if i and i % max(1, layers // 5) == 0 and size > 7:  # downsample five times
            size //= 2
            width = min(width * 2, 2048)
            (x,) = g.node(
                "MaxPool",
                [x],
                [(f"pool{i}", b * channels * size * size * 4, "activation")],
                flops=b * channels * size * size * 4,
            )
            block, skip = [], x
        in_channels = channels
        if family == "dense" and len(block) > 1:
            parts = [x, *block[-3:-1]]
            total = sum(g.tensors[n]["bytes"] for n in parts)
            (x,) = g.node("Concat", parts, [(f"cat{i}", total, "activation")])
            in_channels = total // (b * size * size * 4)
        inputs = [x]
        out_channels = width if family != "dense" else max(32, width // 4)
        w = g.tensor(f"w{i}", out_channels * in_channels * 9 * 4, "parameter")
        out = b * out_channels * size * size * 4
        flops = 2.0 * b * out_channels * size * size * in_channels * 9
        (c,) = g.node(
            "Conv",
            [*inputs, w],
            [(f"conv{i}", out, "activation")],
            flops=flops,
            scratch=min(out // 4, 256 * 2**20),
        )
        convs.append((inputs[0], w, c))
        if batchnorm:
            gamma = g.tensor(f"gamma{i}", out_channels * 4, "parameter")
            beta = g.tensor(f"beta{i}", out_channels * 4, "parameter")
            (c,) = g.node(
                "BatchNormalization",
                [c, gamma, beta],
                [(f"bn{i}", out, "activation")],
                flops=out * 2,
            )
        (y,) = g.node("Relu", [c], [(f"relu{i}", out, "activation")], flops=out / 4)
        if family == "residual" and i % 2 == 1 and g.tensors[skip]["bytes"] == out:
            (y,) = g.node("Add", [y, skip], [(f"add{i}", out, "activation")], flops=out / 4)
            skip = y
        block.append(y)
        x, channels = y, out_channels
    (pooled,) = g.node("GlobalAveragePool", [x], [("gap", b * channels * 4, "activation")])
    fc = g.tensor("w_fc", channels * 1000 * 4, "parameter")
    (logits,) = g.node(
        "Gemm",
        [pooled, fc],
        [("logits", b * 1000 * 4, "activation")],
        flops=2.0 * b * channels * 1000,
    )
    convs.append((pooled, fc, logits))
    return logits, convs


def _backward(g: _Graph, logits: str) -> None:
    """Reverse-mode pass over the forward nodes, with an SGD update after each weight gradient."""
    labels = g.tensor("labels", g.batch * 8, "input")
    (_loss,) = g.node("SoftmaxCrossEntropyLoss", [logits, labels], [("loss", 4, "output")])
    (grad_logits,) = g.node(
        "SoftmaxCrossEntropyLossGrad",
        [logits, labels],
        [("grad_logits", g.tensors[logits]["bytes"], "gradient")],
    )
    grads: dict[str, list[str]] = {logits: [grad_logits]}
    lr = g.tensor("learning_rate", 4, "constant")
    forward = [
        n
        for n in g.nodes
        if n["op_type"] not in ("SoftmaxCrossEntropyLoss", "SoftmaxCrossEntropyLossGrad")
    ]
    for node in reversed(forward):
        (out,) = node["outputs"]
        pending = grads.pop(out, [])
        if not pending:
            continue
        grad = pending[0]
        if len(pending) > 1:  # a tensor read by several nodes: its gradient is the sum
            (grad,) = g.node(
                "Sum",
                pending,
                [(f"grad_sum_{out}", g.tensors[out]["bytes"], "gradient")],
                flops=len(pending) * g.tensors[out]["bytes"] / 4,
            )
        op = node["op_type"]
        inputs = list(dict.fromkeys(node["inputs"]))
        data = [t for t in inputs if g.tensors[t]["kind"] != "parameter"]
        weights = [t for t in inputs if g.tensors[t]["kind"] == "parameter"]
        if op in ("Conv", "Gemm", "BatchNormalization"):
            saved = [*data, *weights]
        else:
            saved = [out] if op == "Relu" else data
        outs = [
            (f"grad_{t}_{len(g.nodes)}", g.tensors[t]["bytes"], "gradient")
            for t in [*data, *weights]
        ]
        flops = 2.0 * g.flops[node["index"]]
        produced = g.node(
            f"{op}Grad", [grad, *saved], outs, flops=flops, scratch=node.get("scratch_bytes", 0)
        )
        for t, gt in zip([*data, *weights], produced, strict=True):
            if g.tensors[t]["kind"] == "parameter":
                g.node(
                    "SGDOptimizer",
                    [lr, t, gt],
                    [(f"{t}_updated", g.tensors[t]["bytes"], "updated_parameter")],
                    flops=2 * g.tensors[t]["bytes"] / 4,
                )
            elif g.tensors[t]["kind"] != "input":
                grads.setdefault(t, []).append(gt)


def _tier_configs(g: _Graph, node: dict[str, Any]) -> list[dict[str, str]]:
    names = list(dict.fromkeys([*node["inputs"], *node["outputs"]]))
    varied = [n for n in names if g.tensors[n].get("fixed_tier") is None]
    varied.sort(key=lambda n: -g.tensors[n]["bytes"])
    groups = [[n] for n in varied[: MAX_VARIED - 1]]
    if len(varied) >= MAX_VARIED:
        groups.append(varied[MAX_VARIED - 1 :])
    configs = []
    for choice in itertools.product(("fast", "slow"), repeat=len(groups)):
        tier = {n: g.tensors[n].get("fixed_tier") or "fast" for n in names}
        for group, t in zip(groups, choice, strict=True):
            for n in group:
                tier[n] = t
        configs.append(tier)
    return configs


def _roofline(g: _Graph, node: dict[str, Any], flops: float, tier: dict[str, str]) -> float:
    moved = 0.0
    for n in node["inputs"]:
        moved += g.tensors[n]["bytes"] / (FAST_BW if tier[n] == "fast" else SLOW_READ_BW)
    for n in node["outputs"]:
        moved += g.tensors[n]["bytes"] / (FAST_BW if tier[n] == "fast" else SLOW_WRITE_BW)
    return max(flops / FLOPS, moved) + 5e-6


def synthetic_network(
    family: str = "chain",
    layers: int = 16,
    batch: int = 64,
    width: int = 64,
    image: int = 224,
    batchnorm: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Nodes, tensors and kernel rows of a generated training iteration (see the module doc)."""
    if family not in ("chain", "residual", "dense"):
        raise ValueError(f"unknown family {family!r}; known: chain, residual, dense")
    g = _Graph(batch)
    logits, _ = _forward(family, g, layers, width, image, batchnorm)
    _backward(g, logits)
    for t in g.tensors.values():
        if t["kind"] == "constant" or t["bytes"] < FIXED_BELOW:
            t["fixed_tier"] = "fast"
    kernels: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, Any]] = {}
    for node, flops in zip(g.nodes, g.flops, strict=True):
        for tier in _tier_configs(g, node):
            ins = tuple(tier[n] for n in node["inputs"])
            outs = tuple(tier[n] for n in node["outputs"])
            key = (node["kernel_key"], ins, outs)
            if key not in kernels:
                kernels[key] = {
                    "kernel_key": node["kernel_key"],
                    "op_type": node["op_type"],
                    "input_tiers": list(ins),
                    "output_tiers": list(outs),
                    "median_s": _roofline(g, node, flops, tier),
                }
    tensors = list(g.tensors.values())
    return g.nodes, tensors, list(kernels.values())
