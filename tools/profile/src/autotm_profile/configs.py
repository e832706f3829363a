"""Which kernels to time, and under which tier configurations.

A *configuration* gives every input and output position of a kernel a tier (``fast`` or
``slow``; ``""`` for an omitted optional tensor). The optimizer picks, for every node, one of the
configurations listed in kernels.parquet, so the rows written are exactly the placements a plan
may use at that node.

Three rules keep the number of configurations finite and honest:

1. **Fixed tiers.** Constants (shape tensors, the learning rate, ...) stay in the fast tier: the
   runtime keeps them there. So does every tensor smaller than ``fixed_below`` bytes (default one
   4 KiB page: smaller tensors share pages under the pools' alignment rule,
   ``autotm_schemas.alignment``, so moving one frees a few cache lines at most). These are the
   ``fixed_tier`` column of tensors.parquet; a plan must keep them where they are.
2. **Aliases.** A tensor read at two positions of one node (``Mul(x, x)``) has one tier there;
   configurations are over a node's *distinct* tensors.
3. **Ties.** A kernel with more than ``max_varied`` varied tensors (a DenseNet ``Concat`` of
   sixty inputs would have 2^61 configurations) keeps its ``max_varied - 1`` largest tensors
   independent and ties the rest into one group that is fast or slow together. The plan can
   still put any of them anywhere: a configuration the table lacks is simply one the
   optimizer cannot choose at that node.

On a GPU every input and output of a kernel must be in device memory (the original's GPU
rule), so each kernel has the single all-fast configuration.

Identical kernels (equal :func:`autotm_graph.ir.kernel_key`) are timed once, under the union of
the configurations their nodes need.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from autotm_graph.ir import Graph, Node, kernel_key

FAST = "fast"
SLOW = "slow"
TIERS = (FAST, SLOW)
DEFAULT_FIXED_BELOW = 4096
DEFAULT_MAX_VARIED = 6


@dataclass(frozen=True, order=True)
class Config:
    """The tier of each input and output position of one kernel."""

    input_tiers: tuple[str, ...]
    output_tiers: tuple[str, ...]

    @property
    def text(self) -> str:
        """A compact, stable spelling, used as the cache key: ``fast,slow|fast``."""
        return ",".join(self.input_tiers) + "|" + ",".join(self.output_tiers)

    @classmethod
    def parse(cls, text: str) -> Config:
        inputs, _, outputs = text.partition("|")
        return cls(
            tuple(inputs.split(",")) if inputs else (), tuple(outputs.split(",")) if outputs else ()
        )

    @property
    def slow_positions(self) -> int:
        return sum(t == SLOW for t in (*self.input_tiers, *self.output_tiers))


def all_fast(node: Node) -> Config:
    return Config(
        tuple(FAST if n else "" for n in node.inputs),
        tuple(FAST if n else "" for n in node.outputs),
    )


@dataclass(frozen=True)
class UniqueKernel:
    """One kernel key: the node it is timed as, every node that runs it, its configurations."""

    key: str
    node: Node  # the representative: the first node in execution order with this key
    nodes: tuple[int, ...]
    configs: tuple[Config, ...]


def fixed_tiers(graph: Graph, fixed_below: int = DEFAULT_FIXED_BELOW) -> dict[str, str | None]:
    """The tier each tensor must stay in (rule 1), or None when a plan chooses."""
    fixed: dict[str, str | None] = {}
    for name, tensor in graph.tensors.items():
        if tensor.kind == "constant" or tensor.nbytes < fixed_below:
            fixed[name] = FAST
        else:
            fixed[name] = None
    return fixed


def node_configs(
    graph: Graph,
    node: Node,
    fixed: Mapping[str, str | None],
    max_varied: int = DEFAULT_MAX_VARIED,
) -> list[Config]:
    """Every configuration of one node under rules 1 to 3, all-fast first."""
    names = [n for n in dict.fromkeys((*node.inputs, *node.outputs)) if n]
    varied = [n for n in names if fixed.get(n) is None]
    # Largest first; ties in size keep position order so the choice is stable.
    order = {n: i for i, n in enumerate(names)}
    varied.sort(key=lambda n: (-graph.tensors[n].nbytes, order[n]))
    if len(varied) > max_varied:
        groups = [[n] for n in varied[: max_varied - 1]] + [varied[max_varied - 1 :]]
    else:
        groups = [[n] for n in varied]
    configs = []
    for choice in itertools.product(TIERS, repeat=len(groups)):
        tier_of: dict[str, str] = {n: fixed[n] or FAST for n in names}
        for group, tier in zip(groups, choice, strict=True):
            for n in group:
                tier_of[n] = tier
        configs.append(
            Config(
                tuple(tier_of[n] if n else "" for n in node.inputs),
                tuple(tier_of[n] if n else "" for n in node.outputs),
            )
        )
    return configs


def unique_kernels(
    graph: Graph,
    fixed: Mapping[str, str | None],
    max_varied: int = DEFAULT_MAX_VARIED,
    single_config: bool = False,
    keys: Sequence[str] | None = None,
) -> list[UniqueKernel]:
    """Group the nodes by kernel key, in order of first use, with their configurations.

    ``single_config`` (the GPU rule) gives each kernel only its all-fast configuration.
    ``keys`` are precomputed kernel keys by node index (they cost a hash each).
    """
    node_keys = list(keys) if keys is not None else [kernel_key(graph, n) for n in graph.nodes]
    members: dict[str, list[int]] = {}
    for node, key in zip(graph.nodes, node_keys, strict=True):
        members.setdefault(key, []).append(node.index)
    kernels = []
    for key, indices in members.items():
        first = graph.nodes[indices[0]]
        if single_config:
            configs: Iterable[Config] = [all_fast(first)]
        else:
            seen: dict[Config, None] = {}
            for index in indices:
                for config in node_configs(graph, graph.nodes[index], fixed, max_varied):
                    seen.setdefault(config, None)
            configs = seen
        ordered = sorted(configs, key=lambda c: (c.slow_positions, c.text))
        kernels.append(UniqueKernel(key, first, tuple(indices), tuple(ordered)))
    return kernels
