"""The AutoTM integer program (Hildebrand et al., ASPLOS 2020), written out.

Notation. Nodes k = 0..N-1 run in execution order. A free tensor t (not pinned to a tier) of
p_t memory units lives from its birth b_t to its death d_t. Its *points* are the nodes where its place
may change or matters: its producer (or a virtual start before node 0 for parameters, inputs
and constants), each user, and, in the asynchronous formulation, candidate kernels near a use or
after a write where a copy may overlap the kernel. At each point the tensor is in one *state*:

    F  in fast memory only          B  in fast memory, with a copy in slow memory
    S  in slow memory only

Variables.
    e[t,j,a->b] in {0,1}  the tensor goes from state a at point j to state b at point j+1 (or to
                          the end of its life). An edge says what happens between the points:
                          F->F, B->B keep the fast copy through the nodes in between; F->B keeps
                          it and writes the slow copy just before point j+1 (a write is paid once:
                          nothing ever returns to F); B->S drops the fast copy after point j (free:
                          the slow copy is current); S->B and B->B' read the tensor back to fast
                          memory just before point j+1 (paid at each read); S->S stays slow.
                          F->S (evict) and F->B' (evict, then read back) exist only after the
                          producer: the copy runs just before the next node, which therefore
                          still holds the fast copy.
    f[t] in {0,1}         static formulation only: t lives its whole life in fast memory.
    y[k,o] in {0,1}       node k runs in option o (a profiled configuration, over the tensors
                          whose tier changes its time).
    M[k] >= 0 (integer)   memory units of free tensors in fast memory while node k runs.
    z[k] >= 0             asynchronous formulation: the time of node k with the copies it hides.

Constraints (one function below per family).
    (1) flow: for each free tensor, one unit of flow leaves the start (the producer writes its
        output to F or S, or a parameter/input/constant starts in F or S) and every state of
        every later point passes on what it receives.
    (2) moves allowed by the formulation (which edges exist): static has no moves (f[t]);
        synchronous moves at the tensor's own uses (and an eviction right after the producer);
        asynchronous also at candidate kernels within ``async_window`` nodes before a use or
        after a write point, where the copy overlaps that kernel.
    (3) configuration: sum_o y[k,o] = 1, and for each tensor t whose tier matters at k:
        sum_{o: t fast in o} y[k,o] = [t in F or B at k], so the option agrees with the tensors.
        A node whose time is affine in its tensors' tiers (reduction 2) needs no y: its time is
        base + sum of penalty[t] * [t slow at k], and tensors the profile ties are kept equal.
    (4) memory: M[k] = M[k-1] + (change of fast units at k), written as a running sum so each
        tensor adds terms only where its state can change, and
        M[k] <= limit[k] - scratch[k] - bytes of tensors pinned fast and alive at k, in units.
    (5) parameters live the whole iteration: one that starts in fast memory must end in it
        (e[t, start -> F] <= sum of the edges that end its life with a fast copy), so the next
        iteration finds it where this one did; one that starts slow keeps its slow copy.
    (6) asynchronous overlap: z[k] >= time of node k, z[k] >= sum of the copies overlapping k.

Objective (in integer ticks of ``tick_s`` seconds):
    sum_k time of node k (or z[k])  +  sum of sync copies, bytes / measured sync bandwidth
    +  one tick per async copy (hidden copies are free otherwise; none is made without a reason).
An async copy at candidate kernel g overlaps g and is done by g + 1 (the next kernel waits).

Times come from the profile (a node's option costs its configuration's median time); copy
costs from machine.json. Memory is counted in units of ``unit`` bytes (:func:`memory_unit`): a
power of two from 64 bytes (a cache line, the smallest alignment) to 4 KiB (a page), as small as
keeps the numbers of the largest networks near 2**24, so the coefficients stay well inside a MIP
solver's tolerances. A free tensor counts its pool size (padded to its alignment) rounded up to
whole units and the room left at a node is rounded down, so the model never promises more than
the pool holds; tensors of a page or more are counted exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .kernels import NodeChoices
from .milp import Milp
from .problem import Problem, Tensor
from .reductions import Reduced

STATES = ("F", "B", "S")
ILP_KINDS = ("static", "synchronous", "asynchronous")
SMALLEST_UNIT = 64
LARGEST_UNIT = 4096
UNITS_TARGET = 2**24


def memory_unit(footprint_bytes: int) -> int:
    """Bytes per memory unit of the model for a network of this footprint (see module doc)."""
    unit = SMALLEST_UNIT
    while unit < LARGEST_UNIT and footprint_bytes > UNITS_TARGET * unit:
        unit *= 2
    return unit


def to_units(nbytes: int, unit: int) -> int:
    """Bytes counted in whole units, rounded up."""
    return -(-int(nbytes) // unit)


@dataclass(frozen=True)
class FormulationSettings:
    kind: str
    async_window: int = 2


@dataclass
class Edge:
    var: int
    src: str  # state at the source point
    dst: str  # state at the destination point ("" for the end of life)
    keep: bool  # the fast copy stays through the nodes between the points
    evict: bool = False  # F->S right after the producer: fast at the first node between
    read: bool = False  # slow -> fast copy just before the destination point
    write: bool = False  # fast -> slow copy just before the destination point
    move_kind: str = ""  # sync | async, for a read or write


@dataclass
class Point:
    node: int  # -1 for the virtual start of a tensor that exists before node 0
    kind: str  # start | produce | use | async
    entry: dict[str, int] = field(default_factory=dict)  # start/produce: state -> variable
    into: dict[str, list[int]] = field(default_factory=dict)  # state -> incoming edge variables


@dataclass
class TensorNet:
    tensor: int
    points: list[Point]
    segments: list[list[Edge]]  # segment j: edges from point j to point j+1 (last: to the end)


class Formulation:
    """Builds the model for one problem, limit and formulation; maps hints and solutions."""

    def __init__(
        self,
        problem: Problem,
        reduced: Reduced,
        settings: FormulationSettings,
        caps: np.ndarray,
        tick_s: float,
        unit: int = LARGEST_UNIT,
    ) -> None:
        if settings.kind not in ILP_KINDS:
            raise ValueError(f"unknown formulation {settings.kind!r}; known: {list(ILP_KINDS)}")
        self.problem = problem
        self.reduced = reduced
        self.settings = settings
        self.caps = np.asarray(caps, dtype=np.int64)  # units free tensors may take at each node
        self.tick_s = tick_s
        self.unit = unit
        self.milp = Milp()
        n = problem.n_nodes
        self.delta: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
        self.fast_at: dict[tuple[int, int], list[int]] = {}  # (tensor, node) -> vars summing to x
        self.static_var: dict[int, int] = {}
        self.nets: dict[int, TensorNet] = {}
        self.option_vars: dict[int, list[int]] = {}
        self.async_load: dict[int, list[tuple[int, int]]] = {}  # node -> (var, ticks)
        self.z_var: dict[int, int] = {}
        self.m_var: list[int] = []
        self.dominated: dict[str, int] = {"fetch_points_removed": 0, "async_points_removed": 0}

    # -----------------------------------------------------------------------------------------
    def ticks(self, seconds: float) -> int:
        return round(seconds / self.tick_s)

    def move_ticks(self, tensor: Tensor, direction: str, kind: str) -> int:
        return max(1, self.ticks(self.problem.copy.seconds(tensor.bytes, direction, kind)))

    def units(self, t: Tensor) -> int:
        return to_units(t.pool_bytes, self.unit)

    def free_tensors(self) -> list[Tensor]:
        return [t for t in self.problem.tensors if t.index not in self.reduced.fixed]

    def build(self, progress: Callable[[float], None] | None = None) -> Milp:
        for t in self.free_tensors():
            if self.settings.kind == "static":
                self.add_static_tensor(t)
            else:
                self.add_flow_tensor(t)
            if progress:
                progress(1.0)
        self.add_configuration_choice()
        self.add_memory_limits()
        self.add_async_overlap()
        return self.milp

    # ---- occupancy bookkeeping (feeds family 4) ----------------------------------------------
    def occupy(self, first: int, last: int, variables: Sequence[int], units: int) -> None:
        """The variables' sum says whether ``units`` are fast over nodes first..last."""
        if first > last or units == 0:
            return
        for v in variables:
            self.delta[first].append((v, units))
            self.delta[last + 1].append((v, -units))

    # ---- static: family (1)-(2) degenerate to one binary per tensor ----------------------------
    def add_static_tensor(self, t: Tensor) -> None:
        f = self.milp.add_var("tensor_fast")
        self.static_var[t.index] = f
        self.occupy(t.birth, t.death, [f], self.units(t))
        for k in (*((t.producer,) if t.producer is not None else ()), *t.users):
            self.fast_at[(t.index, k)] = [f]

    # ---- synchronous / asynchronous: the per-tensor flow network -----------------------------
    def tensor_points(self, t: Tensor) -> list[Point]:
        """Start or producer, uses, and (asynchronous) candidate kernels, in node order."""
        points = [Point(-1, "start") if t.producer is None else Point(t.producer, "produce")]
        uses = set(t.users)
        nodes = sorted(uses)
        if self.settings.kind == "asynchronous":
            w = self.settings.async_window
            anchors = [t.birth if t.producer is not None else -1, *t.users]
            candidates: set[int] = set()
            for anchor in anchors:  # after a write point: evictions
                candidates.update(range(anchor + 1, min(anchor + w, t.death) + 1))
            for use in t.users:  # before a use: prefetches
                candidates.update(range(max(use - w, t.birth + (t.producer is not None)), use))
            candidates -= uses
            candidates.discard(t.producer if t.producer is not None else -2)
            # An async copy at c is done by c + 1, which must exist and be in the tensor's life.
            last = min(t.death, self.problem.n_nodes - 1) - 1
            nodes = sorted(uses | {c for c in candidates if max(t.birth, 0) <= c <= last})
        for k in nodes:
            points.append(Point(k, "use" if k in uses else "async"))
        return points

    def fetch_allowed(self, t: Tensor, point: Point, is_last: bool) -> bool:
        """Reduction 3: fetching before a use whose kernel does not care is dominated."""
        if point.kind == "async":
            return self.async_worthwhile(t, point.node, "slow_to_fast")
        nc = self.reduced.choices[point.node]
        if t.index in nc.tensors or (is_last and t.kind == "parameter"):
            return True
        self.dominated["fetch_points_removed"] += 1
        return False

    def async_worthwhile(self, t: Tensor, node: int, direction: str) -> bool:
        """An async copy at a kernel shorter than its excess over a sync copy is dominated."""
        longest = max(o.seconds for o in self.reduced.choices[node].options)
        async_s = self.problem.copy.seconds(t.bytes, direction, "async")
        sync_s = self.problem.copy.seconds(t.bytes, direction, "sync")
        return async_s - longest < sync_s

    def add_flow_tensor(self, t: Tensor) -> None:
        points = self.tensor_points(t)
        kept = [points[0]]
        for i, p in enumerate(points[1:], start=1):
            if p.kind == "async" and not (
                self.async_worthwhile(t, p.node, "slow_to_fast")
                or self.async_worthwhile(t, p.node, "fast_to_slow")
            ):
                self.dominated["async_points_removed"] += 1
                continue
            kept.append(points[i])
        net = TensorNet(t.index, kept, [])
        self.nets[t.index] = net
        self.add_flow_start(t, net)
        for j in range(len(kept)):
            self.add_flow_segment(t, net, j)
        self.add_flow_conservation(net)
        if t.kind == "parameter":
            self.add_parameter_end(net)

    def add_flow_start(self, t: Tensor, net: TensorNet) -> None:
        """(1) One unit leaves the start: the producer's output tier, or the initial tier."""
        first = net.points[0]
        f, s = self.milp.add_binaries("start", 2)
        first.entry = {"F": f, "S": s}
        first.into = {"F": [f], "S": [s]}
        self.milp.add_row("flow_start", [f, s], [1, 1], 1, 1)
        if first.kind == "produce":
            self.occupy(first.node, first.node, [f], self.units(t))
            self.fast_at[(t.index, first.node)] = [f]

    def segment_edges(self, t: Tensor, src: Point, dst: Point | None, is_last: bool) -> list[Edge]:
        """(2) The edges a formulation allows between two points (dst None: end of life)."""
        interior = (dst.node if dst else t.death + 1) - (src.node + 1) > 0
        src_states = ("F", "S") if src.kind in ("start", "produce") else STATES
        edges: list[Edge] = []
        if dst is None:
            for a in src_states:
                if a == "F":
                    edges.append(Edge(-1, "F", "", keep=True))
                    if src.kind == "produce" and interior:
                        edges.append(Edge(-1, "F", "", keep=False, evict=True))
                elif a == "B":
                    edges += [Edge(-1, "B", "", keep=True), Edge(-1, "B", "", keep=False)]
                else:
                    edges.append(Edge(-1, "S", "", keep=False))
            return edges
        kind = "async" if dst.kind == "async" else "sync"
        can_read = self.fetch_allowed(t, dst, is_last)
        can_write = dst.kind == "use" or self.async_worthwhile(t, dst.node, "fast_to_slow")
        for a in src_states:
            if a == "F":
                edges.append(Edge(-1, "F", "F", keep=True))
                if can_write:
                    edges.append(Edge(-1, "F", "B", keep=True, write=True, move_kind=kind))
                if src.kind == "produce" and interior:
                    edges.append(Edge(-1, "F", "S", keep=False, evict=True))
                    if can_read:  # swap out after the producer, back in for the use
                        edges.append(
                            Edge(-1, "F", "B", keep=False, evict=True, read=True, move_kind=kind)
                        )
            elif a == "B":
                edges += [Edge(-1, "B", "B", keep=True), Edge(-1, "B", "S", keep=False)]
                if can_read:
                    edges.append(Edge(-1, "B", "B", keep=False, read=True, move_kind=kind))
            else:
                edges.append(Edge(-1, "S", "S", keep=False))
                if can_read:
                    edges.append(Edge(-1, "S", "B", keep=False, read=True, move_kind=kind))
        return edges

    def add_flow_segment(self, t: Tensor, net: TensorNet, j: int) -> None:
        """Variables of segment j, its fast units, move costs, and what it feeds at point j+1."""
        src = net.points[j]
        dst = net.points[j + 1] if j + 1 < len(net.points) else None
        edges = self.segment_edges(t, src, dst, is_last=j + 2 >= len(net.points))
        for edge in edges:
            edge.var = self.milp.add_var(
                "move" if (edge.read or edge.write or edge.evict) else "stay"
            )
        net.segments.append(edges)
        first = src.node + 1
        last = (dst.node if dst else t.death + 1) - 1
        self.occupy(first, last, [e.var for e in edges if e.keep], self.units(t))
        evictions = [e for e in edges if e.evict]
        self.occupy(first, first, [e.var for e in evictions], self.units(t))
        for e in evictions:
            self.milp.add_objective(e.var, self.move_ticks(t, "fast_to_slow", "sync"))
        if dst is None:
            return
        for e in edges:
            dst.into.setdefault(e.dst, []).append(e.var)
            if e.read or e.write:
                direction = "slow_to_fast" if e.read else "fast_to_slow"
                cost = self.move_ticks(t, direction, e.move_kind)
                if e.move_kind == "sync":
                    self.milp.add_objective(e.var, cost)
                else:
                    self.async_load.setdefault(dst.node, []).append((e.var, cost))
                    self.milp.add_objective(e.var, 1)  # one tick: no copy without a reason
        fast = dst.into.get("F", []) + dst.into.get("B", [])
        self.occupy(dst.node, dst.node, fast, self.units(t))
        if dst.kind == "use":
            self.fast_at[(t.index, dst.node)] = fast

    def add_flow_conservation(self, net: TensorNet) -> None:
        """(1) At every point, each state passes on what it receives."""
        for j in range(len(net.points)):
            point = net.points[j]
            for state in STATES:
                incoming = point.into.get(state, [])
                outgoing = [e.var for e in net.segments[j] if e.src == state]
                if not incoming and not outgoing:
                    continue
                self.milp.add_row(
                    "flow_conservation",
                    incoming + outgoing,
                    [1] * len(incoming) + [-1] * len(outgoing),
                    0,
                    0,
                )

    def add_parameter_end(self, net: TensorNet) -> None:
        """(5) A parameter that starts fast ends fast."""
        start_fast = net.points[0].entry["F"]
        end_fast = [e.var for e in net.segments[-1] if e.keep]
        self.milp.add_row(
            "parameter_end", [start_fast, *end_fast], [1] + [-1] * len(end_fast), ub=0
        )

    # ---- (3) configuration choice -----------------------------------------------------------
    def kernel_time(self, nc: NodeChoices) -> tuple[list[int], list[int], int]:
        """Node k's time in ticks as (variables, coefficients, constant)."""
        if nc.constant is not None:
            return [], [], self.ticks(nc.constant)
        if nc.linear is not None:
            variables: list[int] = []
            coefs: list[int] = []
            constant = self.ticks(nc.linear.base)
            for tensor, penalty in zip(nc.tensors, nc.linear.penalty, strict=True):
                p = self.ticks(penalty)
                if p:
                    constant += p  # base + penalty * (1 - [fast])
                    x = self.fast_at[(tensor, nc.node)]
                    variables += x
                    coefs += [-p] * len(x)
            return variables, coefs, constant
        ys = self.option_vars[nc.node]
        return ys, [self.ticks(o.seconds) for o in nc.options], 0

    def add_configuration_choice(self) -> None:
        for nc in self.reduced.choices:
            if nc.linear is not None:
                for member, representative in nc.linear.tied:
                    a = self.fast_at[(member, nc.node)]
                    b = self.fast_at[(representative, nc.node)]
                    self.milp.add_row("tied_tiers", a + b, [1] * len(a) + [-1] * len(b), 0, 0)
            if nc.constant is not None:
                # One option left: its cost is constant, but it may still dictate tiers.
                for tensor, fast in zip(nc.tensors, nc.options[0].fast, strict=True):
                    x = self.fast_at[(tensor, nc.node)]
                    self.milp.add_row("option_agrees", x, [1] * len(x), float(fast), float(fast))
            if nc.constant is not None or nc.linear is not None:
                if nc.node not in self.async_load:
                    variables, coefs, constant = self.kernel_time(nc)
                    self.milp.objective_offset += constant
                    for v, c in zip(variables, coefs, strict=True):
                        self.milp.add_objective(v, c)
                continue
            ys = self.milp.add_binaries("option", len(nc.options))
            self.option_vars[nc.node] = ys
            self.milp.add_row("option_one", ys, [1] * len(ys), 1, 1)
            for position, tensor in enumerate(nc.tensors):
                chosen = [y for y, o in zip(ys, nc.options, strict=True) if o.fast[position]]
                x = self.fast_at[(tensor, nc.node)]
                self.milp.add_row(
                    "option_agrees", chosen + x, [1] * len(chosen) + [-1] * len(x), 0, 0
                )
            if nc.node not in self.async_load:
                for y, o in zip(ys, nc.options, strict=True):
                    self.milp.add_objective(y, self.ticks(o.seconds))

    # ---- (4) memory ---------------------------------------------------------------------------
    def add_memory_limits(self) -> None:
        previous: int | None = None
        for k in range(self.problem.n_nodes):
            cap = int(self.caps[k])
            m = self.milp.add_var("fast_units", 0, max(cap, 0), integer=False, implied=True)
            self.m_var.append(m)
            terms = self.delta[k]
            index = [m] + ([previous] if previous is not None else []) + [v for v, _ in terms]
            coef = [1] + ([-1] if previous is not None else []) + [-c for _, c in terms]
            self.milp.add_row("fast_memory", index, coef, 0, 0)
            previous = m

    # ---- (6) asynchronous overlap ---------------------------------------------------------------
    def add_async_overlap(self) -> None:
        for node, load in sorted(self.async_load.items()):
            nc = self.reduced.choices[node]
            longest = max(self.ticks(o.seconds) for o in nc.options)
            upper = longest + sum(c for _, c in load)
            z = self.milp.add_var("kernel_with_async", 0, upper, integer=False, implied=True)
            self.z_var[node] = z
            self.milp.add_objective(z, 1)
            variables, coefs, constant = self.kernel_time(nc)
            if variables:
                self.milp.add_row(
                    "async_kernel_time", [z, *variables], [1] + [-c for c in coefs], lb=constant
                )
            else:
                self.milp.var_lb[z] = constant
            self.milp.add_row(
                "async_copies", [z] + [v for v, _ in load], [1] + [-c for _, c in load], lb=0
            )
