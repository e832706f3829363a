"""A node's configuration choice, as the ILP sees it: options over the tensors whose tier is free.

kernels.parquet lists configurations by input and output *position*; a plan decides tiers per
*tensor*. This module turns the first into the second for one node: positions that alias one
tensor must agree, tensors with a fixed tier filter the rows, and what is left is a list of
options (a tier for each free tensor, and the profiled time).

It also holds reduction 2 of :mod:`autotm_optimize.reductions`:

- a free tensor whose tier never changes the node's time (every option has a twin with that
  tensor flipped and the same time, within a tolerance) is *collapsed*: the ILP need not link it
  to this node at all; a node left with one option costs a constant and gets no variables;
- a node whose options cost the all-fast time plus a fixed penalty for each tensor placed slow
  (memory-bound kernels: each slow operand adds its own traffic), within a tolerance, is
  *linear*: its time is an affine function of the tensors' tiers and needs no option variables.
  Tensors the profile ties together (always in the same tier at this node) count as one.

Both are exact on profiles whose slow configurations are derived from the all-fast time plus a
per-tensor penalty (autotm-profile on an emulated slow tier), and approximate within their
tolerances on measured ones; each node records the largest difference between its model and
its profiled times (``error_s``), which :mod:`autotm_optimize.reductions` keeps within a share
of the optimality gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .problem import FAST, SLOW, Node, Problem


@dataclass(frozen=True)
class Option:
    fast: tuple[bool, ...]  # by position in NodeChoices.tensors
    seconds: float


@dataclass(frozen=True)
class Linear:
    """time = base + sum of penalty[i] over the tensors (by position) placed slow."""

    base: float
    penalty: tuple[float, ...]  # by position in NodeChoices.tensors; 0 for tied members
    tied: tuple[tuple[int, int], ...]  # (tensor, the tensor it is tied to) at this node


@dataclass(frozen=True)
class NodeChoices:
    node: int
    tensors: tuple[int, ...]  # free tensors whose tier decides the option, in a stable order
    options: tuple[Option, ...]
    collapsed: tuple[int, ...]  # free tensors whose tier does not matter here
    linear: Linear | None = None
    error_s: float = 0.0  # largest |model time - profiled time| over the profiled options

    def model_seconds(self, fast: tuple[bool, ...]) -> float:
        """The model's time for the tiers of :attr:`tensors` (by position)."""
        if self.linear is not None:
            return self.linear.base + sum(
                p for p, f in zip(self.linear.penalty, fast, strict=True) if not f
            )
        for option in self.options:
            if option.fast == fast:
                return option.seconds
        raise KeyError(fast)

    @property
    def constant(self) -> float | None:
        """The node's time when it has a single option."""
        return self.options[0].seconds if len(self.options) == 1 else None


class NoConfigurationError(ValueError):
    """No profiled configuration agrees with the fixed tiers and aliases of a node."""


def _options_by_tensor(
    node: Node, fixed: Mapping[int, str]
) -> tuple[tuple[int, ...], dict[tuple[bool, ...], float]]:
    free = tuple(t for t in node.tensors if t not in fixed)
    options: dict[tuple[bool, ...], float] = {}
    for config in node.configs:
        tier_of: dict[int, str] = {}
        consistent = True
        for tensor, tier in zip(
            (*node.inputs, *node.outputs), (*config.input_tiers, *config.output_tiers), strict=True
        ):
            if tensor is None:
                continue
            if tier_of.setdefault(tensor, tier) != tier or fixed.get(tensor, tier) != tier:
                consistent = False
                break
        if not consistent:
            continue
        key = tuple(tier_of[t] == FAST for t in free)
        # Two rows can only map to one option through aliasing; keep the slower, to be safe.
        options[key] = max(options.get(key, 0.0), config.seconds)
    return free, options


def _same(a: float, b: float, rel_tol: float) -> bool:
    return abs(a - b) <= rel_tol * max(a, b, 1e-12)


def _irrelevant(options: dict[tuple[bool, ...], float], position: int, rel_tol: float) -> bool:
    for key, seconds in options.items():
        twin = (*key[:position], not key[position], *key[position + 1 :])
        if twin not in options or not _same(seconds, options[twin], rel_tol):
            return False
    return True


def _linear(options: dict[tuple[bool, ...], float], rel_tol: float) -> Linear | None:
    """The affine form of a node's time over its options, if it has one (see module doc)."""
    width = len(next(iter(options)))
    keys = list(options)
    tied_to = list(range(width))
    for i in range(width):
        for j in range(i):
            if tied_to[j] == j and all(k[i] == k[j] for k in keys):
                tied_to[i] = j
                break
    reps = [i for i in range(width) if tied_to[i] == i]
    if len(options) != 2 ** len(reps):
        return None  # not every combination was profiled: the options must stay
    all_fast = tuple(True for _ in range(width))
    base = options.get(all_fast)
    if base is None:
        return None
    penalty = [0.0] * width
    for r in reps:
        key = tuple(tied_to[i] != r for i in range(width))
        penalty[r] = options[key] - base
    for key, seconds in options.items():
        model = base + sum(penalty[r] for r in reps if not key[r])
        if not _same(seconds, model, rel_tol):
            return None
    return Linear(base, tuple(penalty), ())


def node_choices(
    node: Node,
    fixed: Mapping[int, str],
    collapse_rel_tol: float | None = 0.002,
    linear_rel_tol: float | None = 0.005,
) -> NodeChoices:
    """The options of one node given the tensors whose tier is fixed (tensor index -> tier).

    ``collapse_rel_tol`` and ``linear_rel_tol`` None switch the two parts of reduction 2 off.
    """
    free, options = _options_by_tensor(node, fixed)
    original = dict(options)
    if not options:
        raise NoConfigurationError(
            f"no profiled configuration of kernel {node.kernel_key!r} at node {node.name!r} "
            f"agrees with its fixed tiers ({ {t: fixed[t] for t in node.tensors if t in fixed} })"
        )
    kept = list(free)
    collapsed: list[int] = []
    if collapse_rel_tol is not None:
        position = 0
        while position < len(kept):
            if _irrelevant(options, position, collapse_rel_tol):
                merged: dict[tuple[bool, ...], list[float]] = {}
                for key, seconds in options.items():
                    merged.setdefault(key[:position] + key[position + 1 :], []).append(seconds)
                options = {key: sum(v) / len(v) for key, v in merged.items()}
                collapsed.append(kept.pop(position))
            else:
                position += 1
    ordered = sorted(options.items(), key=lambda item: (-sum(item[0]), item[0]))
    linear = None
    if linear_rel_tol is not None and len(options) > 1:
        linear = _linear(options, linear_rel_tol)
        if linear is not None:
            # Name the ties by tensor: every tied member follows its representative.
            width = len(kept)
            keys = list(options)
            ties = []
            for i in range(width):
                for j in range(i):
                    if all(k[i] == k[j] for k in keys):
                        ties.append((kept[i], kept[j]))
                        break
            linear = Linear(linear.base, linear.penalty, tuple(ties))
    choices = NodeChoices(
        node=node.index,
        tensors=tuple(kept),
        options=tuple(Option(key, seconds) for key, seconds in ordered),
        collapsed=tuple(collapsed),
        linear=linear,
    )
    return replace(choices, error_s=_model_error(choices, free, original))


def _model_error(
    choices: NodeChoices, free: tuple[int, ...], original: dict[tuple[bool, ...], float]
) -> float:
    """Largest gap between the reduced model and the profile over the profiled options: what
    collapsing (averaging near-equal twins) and the affine form (within a tolerance) cost in
    exactness at this node."""
    position = {t: i for i, t in enumerate(free)}
    keep = [position[t] for t in choices.tensors]
    worst = 0.0
    for key, seconds in original.items():
        model = choices.model_seconds(tuple(key[i] for i in keep))
        worst = max(worst, abs(model - seconds))
    return worst


def tiers_at(node: Node, fast: Mapping[int, bool]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input and output tier lists of a node given each tensor's tier there."""

    def tier(t: int | None) -> str:
        return "" if t is None else (FAST if fast[t] else SLOW)

    return tuple(tier(t) for t in node.inputs), tuple(tier(t) for t in node.outputs)


def estimate_seconds(
    problem: Problem, node: Node, inputs: tuple[str, ...], outputs: tuple[str, ...]
) -> tuple[float, bool]:
    """Profiled time of a configuration; when it was not profiled, the slowest nearest one.

    Returns (seconds, estimated). Only the baselines can ask for an unprofiled configuration
    (the ILP picks among profiled rows); the plan records how many kernels were estimated.
    """
    exact = problem.config_seconds(node, inputs, outputs)
    if exact is not None:
        return exact, False
    want = (*inputs, *outputs)
    best: tuple[int, float] | None = None
    for config in node.configs:
        have = (*config.input_tiers, *config.output_tiers)
        distance = sum(a != b for a, b in zip(want, have, strict=True))
        if best is None or distance < best[0] or (distance == best[0] and config.seconds > best[1]):
            best = (distance, config.seconds)
    assert best is not None
    return best[1], True
