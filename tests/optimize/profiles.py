"""Hand-made tiny PROFILE_DIRs whose optimal plans can be worked out on paper.

A profile is described by its tensors (bytes, kind) and its nodes in execution order, each with
a cost function of the tiers of its distinct tensors; configurations the function returns None
for are left out of kernels.parquet, as if never profiled. Producers and users are derived from
the nodes, so a test states only what matters to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotm_optimize.synthetic import write_profile

PAGE = 4096
GB = 1e9
Tiers = Mapping[str, str]
Cost = float | Callable[[Tiers], float | None]


@dataclass
class N:
    """One node: its tensors, and its time (a constant, or a function of the tiers)."""

    name: str
    inputs: list[str]
    outputs: list[str]
    seconds: Cost = 0.001
    scratch: int = 0
    op_type: str = "Op"


@dataclass
class T:
    name: str
    pages: int
    kind: str = "activation"
    fixed_tier: str | None = None
    nbytes: int | None = None  # an exact size instead of whole pages (small tensors)

    @property
    def bytes(self) -> int:
        return self.pages * PAGE if self.nbytes is None else self.nbytes


@dataclass
class Copy:
    """Copy bandwidths in bytes per second."""

    s2f_sync: float = 1 * GB
    s2f_async: float = 0.5 * GB
    f2s_sync: float = 1 * GB
    f2s_async: float = 0.5 * GB

    def as_dict(self) -> dict[str, tuple[float, float]]:
        return {
            "slow_to_fast": (self.s2f_sync, self.s2f_async),
            "fast_to_slow": (self.f2s_sync, self.f2s_async),
        }


@dataclass
class Spec:
    tensors: list[T]
    nodes: list[N]
    copy: Copy = field(default_factory=Copy)
    network: str = "tiny"


def fast_only(seconds: float, *names: str) -> Callable[[Tiers], float | None]:
    """Profiled only with the named tensors (all, when none named) in fast memory."""

    def cost(tiers: Tiers) -> float | None:
        wanted = names or tuple(tiers)
        return seconds if all(tiers[n] == "fast" for n in wanted) else None

    return cost


def penalty(seconds: float, **slow_penalty: float) -> Callable[[Tiers], float]:
    """``seconds`` plus, for each named tensor in slow memory, its penalty."""

    def cost(tiers: Tiers) -> float:
        return seconds + sum(p for n, p in slow_penalty.items() if tiers.get(n) == "slow")

    return cost


def write(directory: Path, spec: Spec) -> Path:
    tensors: dict[str, dict[str, Any]] = {
        t.name: {
            "name": t.name,
            "bytes": t.bytes,
            "kind": t.kind,
            "producer": None,
            "users": [],
            "fixed_tier": t.fixed_tier,
        }
        for t in spec.tensors
    }
    nodes = []
    kernels = []
    for index, node in enumerate(spec.nodes):
        for name in node.outputs:
            tensors[name]["producer"] = index
        for name in dict.fromkeys(node.inputs):
            tensors[name]["users"].append(index)
        key = f"{node.op_type}:{node.name}"
        nodes.append(
            {
                "name": node.name,
                "op_type": node.op_type,
                "kernel_key": key,
                "inputs": node.inputs,
                "outputs": node.outputs,
                "scratch_bytes": node.scratch,
            }
        )
        distinct = list(dict.fromkeys([*node.inputs, *node.outputs]))
        free = [n for n in distinct if tensors[n]["fixed_tier"] is None]
        for choice in itertools.product(("fast", "slow"), repeat=len(free)):
            tiers = {n: tensors[n]["fixed_tier"] for n in distinct} | dict(
                zip(free, choice, strict=True)
            )
            seconds = node.seconds(tiers) if callable(node.seconds) else node.seconds
            if seconds is None:
                continue
            kernels.append(
                {
                    "kernel_key": key,
                    "op_type": node.op_type,
                    "input_tiers": [tiers[n] for n in node.inputs],
                    "output_tiers": [tiers[n] for n in node.outputs],
                    "median_s": seconds,
                }
            )
    return write_profile(
        directory,
        nodes,
        list(tensors.values()),
        kernels,
        network=spec.network,
        batch=1,
        copy=spec.copy.as_dict(),
    )


# ---------------------------------------------------------------------------------------------
# The golden profiles


def evict_and_fetch() -> Spec:
    """x is made at 0 and read at 3; y and w need the budget at 2.

    Every kernel runs only with its tensors fast. Budget 21 pages: at node 2, y and w take 20,
    so x (10) must leave after node 1 (the eviction copy runs just before node 1, which still
    holds it: 10 + 10 pages) and come back just before node 3 (10 + 10 + 1). Optimal: one
    write and one read of x, 2 x 40960 B / 1 GB/s on top of the four kernels' 4 ms.
    """
    return Spec(
        tensors=[T("x", 10), T("y", 10), T("w", 10), T("out", 1, "output")],
        nodes=[
            N("make_x", [], ["x"], fast_only(0.001)),
            N("make_y", [], ["y"], fast_only(0.001)),
            N("use_y", ["y"], ["w"], fast_only(0.001)),
            N("use_x", ["x", "w"], ["out"], fast_only(0.001)),
        ],
    )


def cheaper_slow() -> Spec:
    """x (100 pages) is made at 0 and read at 5; fillers crowd nodes 2 to 4 (budget 120).

    Swapping x out and back costs a write and a read: 2 x 409600 B / 1 GB/s = 0.8192 ms.
    Making it and reading it in slow memory costs 0.1 ms at each end: 0.2 ms. Optimal: x lives
    in slow memory and nothing moves; the plan costs the six kernels' 6 ms plus 0.2 ms.
    """
    return Spec(
        tensors=[
            T("x", 100),
            T("s", 1),
            T("f1", 60),
            T("f2", 60),
            T("f3", 10),
            T("out", 1, "output"),
        ],
        nodes=[
            N("make_x", [], ["x"], penalty(0.001, x=0.0001)),
            N("small", [], ["s"], fast_only(0.001)),
            N("f1", ["s"], ["f1"], fast_only(0.001)),
            N("f2", ["f1"], ["f2"], fast_only(0.001)),
            N("f3", ["f2"], ["f3"], fast_only(0.001)),
            N("use_x", ["x", "f3"], ["out"], penalty(0.001, x=0.0001, f3=1.0)),
        ],
    )


def hidden_async() -> Spec:
    """x is made at 0 and read at 5; node 2's y leaves no room for x at 2 and 3; node 4 is long.

    Budget 25 pages. x (10) must leave fast memory after node 1 and be fast at 5. Sync copies
    cost 40960 B / 1 GB/s = 40.96 us each. Asynchronously, x is written while node 1 runs
    (1 ms hides its 81.92 us) and read back while node 4 runs (10 ms hides it); at nodes 2
    and 3, y (20) leaves no room for x, so node 4 is the only place to read it. Optimal
    asynchronous plan: the kernels' 15 ms and nothing else; synchronous: plus two copies.
    """
    return Spec(
        tensors=[
            T("x", 10),
            T("a", 1),
            T("y", 20),
            T("w", 1),
            T("v", 1),
            T("out", 1, "output"),
        ],
        nodes=[
            N("make_x", [], ["x"], fast_only(0.001)),
            N("make_a", [], ["a"], fast_only(0.001)),
            N("make_y", ["a"], ["y"], fast_only(0.001)),
            N("use_y", ["y"], ["w"], fast_only(0.001)),
            N("long", ["w"], ["v"], fast_only(0.010)),
            N("use_x", ["x", "v"], ["out"], fast_only(0.001)),
        ],
    )


def small_network() -> Spec:
    """A little training-like graph with a parameter, an input and mixed costs, for smoke tests."""
    return Spec(
        tensors=[
            T("w", 8, "parameter"),
            T("img", 6, "input"),
            T("lr", 1, "constant", fixed_tier="fast"),
            T("h", 12),
            T("r", 12),
            T("loss", 1, "output"),
            T("gr", 12, "gradient"),
            T("gw", 8, "gradient"),
            T("w_new", 8, "updated_parameter"),
        ],
        nodes=[
            N(
                "conv",
                ["img", "w"],
                ["h"],
                penalty(0.004, img=0.001, w=0.002, h=0.003),
                scratch=4 * PAGE,
            ),
            N("relu", ["h"], ["r"], penalty(0.001, h=0.001, r=0.001)),
            N("loss", ["r"], ["loss"], penalty(0.001, r=0.0005)),
            N("relu_grad", ["r", "loss"], ["gr"], penalty(0.001, r=0.001, gr=0.001)),
            N(
                "conv_grad",
                ["gr", "img", "w"],
                ["gw"],
                penalty(0.004, gr=0.002, img=0.001, w=0.001),
            ),
            N(
                "sgd",
                ["lr", "w", "gw"],
                ["w_new"],
                penalty(0.0005, w=0.0005, gw=0.0005, w_new=0.0005),
            ),
        ],
    )


SMALL_TENSORS = 48
SMALL_BYTES = 512


def small_tensors() -> Spec:
    """A layer with 48 BatchNormalization-like statistics of 512 bytes, pinned fast as the
    profile pins tensors under a page, beside two activations of 10 pages.

    The statistics take 48 x 512 B = 6 pages if they share pages (the alignment rule), 48 if
    each took a page. At node 1, x, y and the statistics need 26 pages: a 27-page limit holds
    them only with shared pages.
    """
    stats = [f"bn{i}" for i in range(SMALL_TENSORS)]
    return Spec(
        tensors=[
            T("x", 10),
            T("y", 10),
            T("out", 1, "output"),
            *(T(n, 0, "parameter", fixed_tier="fast", nbytes=SMALL_BYTES) for n in stats),
        ],
        nodes=[
            N("make_x", [], ["x"], penalty(0.001, x=0.0005)),
            N("bn", ["x", *stats], ["y"], penalty(0.001, x=0.0005, y=0.0005)),
            N("use_y", ["y"], ["out"], penalty(0.001, y=0.0005)),
        ],
        network="small-tensors",
    )


def fragmenting() -> Spec:
    """Buffers whose peak (9 pages, at node 4) no fixed greedy order reaches: every order
    leaves a page-sized hole (10 pages), only a clever arrangement fits 9.

    a (3) lives 0..3 and f (2) 0..2; b (3) and c (2) are made at 3, d and e (2 each) at 4.
    Each kernel pays a little for a slow tensor, d the least: under a 9-page limit the
    all-fast plan is optimal but, arranged greedily, needs 10 pages; giving up d (or a
    headroom of a page) fits.
    """
    return Spec(
        tensors=[
            T("a", 3),
            T("f", 2),
            T("b", 3),
            T("c", 2),
            T("d", 2, "output"),
            T("e", 2, "output"),
        ],
        nodes=[
            N("make_af", [], ["a", "f"], penalty(0.001, a=0.0005, f=0.0005)),
            N("idle", [], [], 0.001),
            N("use_f", ["f"], [], penalty(0.001, f=0.0005)),
            N("make_bc", ["a"], ["b", "c"], penalty(0.001, a=0.0005, b=0.0005, c=0.0005)),
            N(
                "make_de",
                ["b", "c"],
                ["d", "e"],
                penalty(0.001, b=0.0005, c=0.0005, d=0.0001, e=0.0002),
            ),
        ],
    )
