"""Between a built model and plans: warm starts in, solutions out.

A warm start is a full assignment of the model's variables: the tensor variables follow from a
placement (where each tensor is at each of its points), the rest (options, running sums, async
times) from those. A solution read back is traced, tensor by tensor, along the edges its unit of
flow takes, into spans and moves (:class:`autotm_optimize.placement.Placement`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .formulation import Formulation, TensorNet
from .placement import Placement, PlannedMove, Span
from .problem import FAST, SLOW, Tensor


def hint_from_tiers(model: Formulation, fast: Sequence[bool]) -> np.ndarray:
    """Variable values for a placement where nothing moves (the NUMA baseline)."""
    values = np.zeros(model.milp.n_vars)
    for t, var in model.static_var.items():
        values[var] = float(fast[t])
    for t, net in model.nets.items():
        state = "F" if fast[t] else "S"
        values[net.points[0].entry[state]] = 1.0
        for edges in net.segments:
            stay = [
                e
                for e in edges
                if e.src == state and e.dst in (state, "") and e.keep == (state == "F")
            ]
            stay = [e for e in stay if not (e.read or e.write or e.evict)]
            values[stay[0].var] = 1.0
    return complete(model, values)


def hint_from_placement(model: Formulation, placement: Placement) -> np.ndarray | None:
    """Variable values reproducing another plan's placement, if this model can express it.

    A static plan fits every formulation and a synchronous plan fits the asynchronous one (its
    moves happen at uses, which are points of every network), so a solved smaller formulation
    warm-starts a larger one. None when a tensor's states cannot be followed along the edges.
    """
    values = np.zeros(model.milp.n_vars)
    for t, var in model.static_var.items():
        spans = placement.spans[t]
        if len(spans) != 1:
            return None
        values[var] = float(spans[0].tier == FAST)
    for t, net in model.nets.items():
        if not _follow(model.problem.tensors[t], net, placement.spans[t], values):
            return None
    return complete(model, values)


def _state(spans: tuple[Span, ...], node: int) -> str:
    fast = any(s.tier == FAST and s.covers(node) for s in spans)
    slow = any(s.tier == SLOW and s.covers(node) for s in spans)
    return "B" if fast and slow else ("F" if fast else "S")


def _follow(t: Tensor, net: TensorNet, spans: tuple[Span, ...], values: np.ndarray) -> bool:
    """Set the edges one tensor's spans take through its network; False if impossible."""
    current = _state(spans, t.birth)
    if current not in net.points[0].entry:
        return False
    values[net.points[0].entry[current]] = 1.0
    for j, edges in enumerate(net.segments):
        src = net.points[j]
        dst = net.points[j + 1] if j + 1 < len(net.points) else None
        anchor = max(src.node, t.birth)
        end = dst.node if dst else t.death
        keep = any(s.tier == FAST and s.from_node <= anchor and end <= s.to_node for s in spans)
        evict = (
            current == "F"
            and not keep
            and any(s.tier == FAST and s.to_node == src.node + 1 for s in spans)
        )
        target = _state(spans, dst.node) if dst else ""
        chosen = [
            e
            for e in edges
            if e.src == current
            and e.dst == target
            and e.evict == evict
            and (e.keep == keep or evict)
        ]
        if len(chosen) != 1:
            return False
        values[chosen[0].var] = 1.0
        current = target or current
    return True


def complete(model: Formulation, values: np.ndarray) -> np.ndarray:
    """Fill options, running sums and async times in from the tensor variables."""
    for nc in model.reduced.choices:
        ys = model.option_vars.get(nc.node)
        if not ys:
            continue
        want = tuple(sum(values[v] for v in model.fast_at[(t, nc.node)]) > 0.5 for t in nc.tensors)
        for y, o in zip(ys, nc.options, strict=True):
            values[y] = float(o.fast == want)
    running = 0.0
    for k, m in enumerate(model.m_var):
        running += sum(values[v] * c for v, c in model.delta[k])
        values[m] = running
    for node, z in model.z_var.items():
        variables, coefs, constant = model.kernel_time(model.reduced.choices[node])
        kernel = constant + sum(values[v] * c for v, c in zip(variables, coefs, strict=True))
        values[z] = max(kernel, sum(values[v] * c for v, c in model.async_load[node]))
    return values


def placement_of(model: Formulation, values: np.ndarray) -> Placement:
    """Spans and moves of a solution; pinned tensors stay where they are pinned."""
    on = values > 0.5
    spans: list[tuple[Span, ...]] = []
    moves: list[PlannedMove] = []
    for t in model.problem.tensors:
        if t.index in model.reduced.fixed:
            spans.append((Span(model.reduced.fixed[t.index], t.birth, t.death),))
        elif t.index in model.static_var:
            tier = FAST if on[model.static_var[t.index]] else SLOW
            spans.append((Span(tier, t.birth, t.death),))
        else:
            tensor_spans, tensor_moves = _trace(t, model.nets[t.index], on)
            spans.append(tensor_spans)
            moves += tensor_moves
    return Placement(tuple(spans), tuple(moves))


def _trace(t: Tensor, net: TensorNet, on: np.ndarray) -> tuple[tuple[Span, ...], list[PlannedMove]]:
    """Follow the unit of flow of one tensor and write down its spans and moves."""
    state = "F" if on[net.points[0].entry["F"]] else "S"
    fast_from: int | None = t.birth if state == "F" else None
    slow_from: int | None = t.birth if state == "S" else None
    spans: list[Span] = []
    moves: list[PlannedMove] = []

    def move(direction: str, kind: str, node: int) -> None:
        # A sync copy runs just before the node; an async one overlaps it and is done by the next.
        moves.append(
            PlannedMove(t.index, direction, kind, node, node + 1 if kind == "async" else node)
        )

    for j, edges in enumerate(net.segments):
        src = net.points[j]
        dst = net.points[j + 1] if j + 1 < len(net.points) else None
        taken = [e for e in edges if e.src == state and on[e.var]]
        if len(taken) != 1:
            raise AssertionError(f"tensor {t.name!r}: {len(taken)} edges taken out of {state}")
        e = taken[0]
        target = dst.node if dst else t.death
        if e.evict:  # the copy runs just before the next node, which still holds the fast copy
            assert fast_from is not None
            spans.append(Span(FAST, fast_from, src.node + 1))
            fast_from = None
            slow_from = src.node + 1
            move("fast_to_slow", "sync", src.node + 1)
        elif not e.keep and fast_from is not None:  # dropped after the source point
            spans.append(Span(FAST, fast_from, max(src.node, t.birth)))
            fast_from = None
        if e.write:
            slow_from = target
            move("fast_to_slow", e.move_kind, target)
        if e.read:
            fast_from = target
            move("slow_to_fast", e.move_kind, target)
        state = e.dst or state
    if fast_from is not None:
        spans.append(Span(FAST, fast_from, t.death))
    if slow_from is not None:
        spans.append(Span(SLOW, slow_from, t.death))
    return tuple(spans), moves
