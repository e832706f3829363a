"""The optimizer driver: from a problem and a budget to a verified plan, for every formulation.

For an ILP formulation: reduce the model, check the budget against what each kernel needs,
build, warm-start from the NUMA baseline, solve, trace the solution into spans and moves, and
assign addresses: first by reordering what overflowed (:func:`addresses.prioritize`), then by the
fixed greedy orders and their searches. Where the fast pool still overflows the limit
(fragmentation), tighten the limit of the nodes where it overflowed and re-solve, as the
original AutoTM did. ``--time-limit`` bounds
the whole of it, solves, address searches and re-solves together, not each solve.

The ILP never returns a plan predicted slower than the NUMA baseline at the same limit: the
baseline is its warm start (or, for HiGHS, which takes none, its fallback), and if the solved
plan still comes out slower (the baseline's kernels all in profiled configurations, so that
its prediction is no guess), or no arrangement of the solved plans fits the limit before the
time runs out, the baseline's own placement, which fits by construction, is returned instead,
and the plan's ``reductions.fallback`` says so. Only when there is no baseline either does it
fail (exit 3), naming the smallest limit an arrangement was found for. A plan over the limit
is never written. Every plan, ILP or baseline, passes the verifier before it is returned.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import numpy as np
from autotm_schemas import InfeasibleError, ToolError
from autotm_schemas.progress import Progress
from autotm_schemas.units import fast_limit_from_ratio, format_bytes

from . import addresses, baselines
from . import placement as placing
from .addresses import Buffer
from .formulation import Formulation, FormulationSettings, memory_unit
from .fragmentation import (
    LAST_CHANCE_S,
    REFINE_STEPS,
    Clock,
    Tightening,
    lower_bound,
    search_budget,
)
from .milp import Milp
from .placement import Placement, PoolOverflow, realize
from .plan import ILP_FORMULATIONS, Plan, SolverStats
from .problem import FAST, Problem
from .reductions import Reduced, ReductionSettings, lower_bound_s, reduce
from .solution import hint_from_placement, hint_from_tiers, placement_of
from .solve import SolveOptions, SolveResult, backend_for, export_model, relative_gap, solve
from .verify import verify

TICKS_PER_OBJECTIVE = 2e9  # the objective's scale in integer ticks: precise, and int64-safe


@dataclass(frozen=True)
class OptimizeOptions:
    formulation: str
    ratio: tuple[float, float] | None = None
    ratio_text: str | None = None
    fast_limit: int | None = None
    solve: SolveOptions = field(default_factory=SolveOptions)
    reductions: ReductionSettings = field(default_factory=ReductionSettings)
    async_window: int = 2
    export_model: str | None = None
    max_rounds: int = 12


class _Log:
    def __init__(self, stream: TextIO | None, quiet: bool) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"autotm-optimize: {message}", file=self.stream, flush=True)


def fast_limit_bytes(problem: Problem, options: OptimizeOptions) -> int | None:
    """The budget in bytes; all-fast and all-slow are ratios themselves (0:1, 1:0), so they
    ignore --ratio and only check an explicit --fast-limit."""
    if options.fast_limit is not None:
        return options.fast_limit
    if options.ratio is not None and options.formulation not in ("all-fast", "all-slow"):
        return fast_limit_from_ratio(problem.footprint_bytes(), options.ratio)
    return None


def optimize(
    problem: Problem, options: OptimizeOptions, stream: TextIO | None = None, quiet: bool = False
) -> Plan:
    log = _Log(stream, quiet)
    limit = fast_limit_bytes(problem, options)
    if options.formulation in ILP_FORMULATIONS:
        if limit is None:
            raise ToolError("an ILP formulation needs --ratio or --fast-limit")
        plan = _optimize_ilp(problem, options, limit, log, stream, quiet)
    else:
        plan = _baseline(problem, options, limit)
    problems = verify(plan, problem)
    if problems:
        raise RuntimeError(f"the {options.formulation} plan fails verification: {problems[0]}")
    return plan


# ---------------------------------------------------------------------------------------------
# Baselines


def _baseline(problem: Problem, options: OptimizeOptions, limit: int | None) -> Plan:
    started = time.monotonic()
    kind = options.formulation
    ratio = options.ratio_text
    if kind == "numa":
        if limit is None:
            raise ToolError("numa needs --ratio or --fast-limit")
        placement = baselines.numa(problem, limit)
    elif kind == "all-fast":
        placement = baselines.all_fast(problem)
        ratio = "0:1"
    elif kind == "all-slow":
        placement = baselines.all_slow(problem)
        ratio = "1:0"
    else:
        raise ToolError(f"unknown formulation {kind!r}")
    stats = SolverStats(name="heuristic", status="heuristic")
    try:
        plan = realize(
            problem, placement, formulation=kind, ratio=ratio, fast_limit=limit, solver=stats
        )
    except PoolOverflow as exc:
        raise InfeasibleError(
            f"{kind} needs a fast pool of {format_bytes(exc.high_water)}, over the fast limit "
            f"of {format_bytes(exc.limit)}"
        ) from None
    return replace(plan, solver=replace(stats, solve_s=time.monotonic() - started))


# ---------------------------------------------------------------------------------------------
# ILP formulations


def _tick_seconds(problem: Problem, reduced: Reduced) -> float:
    """Seconds per objective tick: the whole objective fits about 2e9 ticks."""
    kernels = sum(max(o.seconds for o in nc.options) for nc in reduced.choices)
    rate = min(problem.copy.slow_to_fast_sync, problem.copy.fast_to_slow_sync)
    copies = sum(t.bytes for t in problem.tensors) / rate
    return max((kernels + copies) / TICKS_PER_OBJECTIVE, 1e-15)


def _check_need(problem: Problem, reduced: Reduced, limit: int) -> None:
    worst = int(np.argmax(reduced.need_bytes)) if problem.nodes else 0
    need = int(reduced.need_bytes[worst]) if problem.nodes else 0
    if need > limit:
        node = problem.nodes[worst]
        raise InfeasibleError(
            f"the fast limit of {format_bytes(limit)} is below what node "
            f"{node.name!r} ({node.op_type}, #{node.index}) needs: {format_bytes(need)} "
            f"(its smallest configuration, scratch and pinned tensors); the smallest feasible "
            f"fast limit is at least {need} bytes"
        )


def _caps(problem: Problem, reduced: Reduced, limit: int, unit: int) -> np.ndarray:
    """Units free tensors may take at each node: what scratch and pinned tensors leave."""
    room = limit - problem.scratch_bytes() - reduced.fixed_fast_bytes
    return np.floor_divide(room, unit)


def _warm_start(
    problem: Problem,
    formulation: Formulation,
    reduced: Reduced,
    options: OptimizeOptions,
    requested: str,
    clock: Clock,
    log: _Log,
    first_touch: FirstTouch | None,
) -> tuple[np.ndarray | None, float]:
    """The best feasible warm start: the NUMA baseline, and for the asynchronous formulation
    also the synchronous optimum (solved first, by the synchronous formulation's backend, with
    a third of the time left). A backend that takes no warm start (HiGHS) still gets it back
    if it finds nothing better.

    Returns the hint and the seconds spent solving for it.
    """
    candidates: list[tuple[str, np.ndarray]] = []
    fast = first_touch[0] if first_touch is not None else None
    if fast is not None:
        candidates.append(("numa", hint_from_tiers(formulation, fast)))
    spent = 0.0
    if formulation.settings.kind == "asynchronous":
        sync = Formulation(
            problem,
            reduced,
            FormulationSettings("synchronous"),
            formulation.caps,
            formulation.tick_s,
            formulation.unit,
        )
        sync_milp = sync.build()
        sync_hint = hint_from_tiers(sync, fast) if fast is not None else None
        backend = backend_for(requested, "synchronous")
        staged = replace(options.solve, time_limit_s=clock.share(1 / 3), backend=backend)
        result = solve(sync_milp, staged, hint=sync_hint, quiet=True)
        spent = result.solve_s
        if result.values is not None:
            hint = hint_from_placement(formulation, placement_of(sync, result.values))
            if hint is not None:
                candidates.append(("synchronous", hint))
                log(
                    f"warm start: synchronous plan ({result.status}) found in {result.solve_s:.2f} s"
                )
    feasible = [
        (formulation.milp.objective_value(h), name, h)
        for name, h in candidates
        if formulation.milp.feasible(h)
    ]
    if not feasible:
        return None, spent
    return min(feasible, key=lambda item: item[0])[2], spent


def minimum_limit(
    problem: Problem, reduced: Reduced, settings: FormulationSettings, options: SolveOptions
) -> tuple[int | None, bool]:
    """Smallest fast limit (bytes) under which the formulation has a plan, and whether proven.

    The same model with the limits lifted and the objective replaced by the peak fast use.
    """
    unit = memory_unit(problem.footprint_bytes())
    huge = np.full(problem.n_nodes, 2**40, dtype=np.int64)
    formulation = Formulation(problem, reduced, settings, huge, 1.0, unit)
    milp = formulation.build()
    milp.objective = {}
    milp.objective_offset = 0.0
    base = problem.scratch_bytes() + reduced.fixed_fast_bytes
    peak = milp.add_var("peak_bytes", 0, float(2**50), integer=False, implied=True)
    for k, m in enumerate(formulation.m_var):
        milp.add_row("peak", [m, peak], [unit, -1], ub=-float(base[k]))
    milp.objective = {peak: 1.0}
    result = solve(milp, options, quiet=True)
    if result.values is None or result.objective is None:
        return None, False
    bound = result.bound if result.bound is not None else result.objective
    return math.ceil(bound - 1e-6), result.status == "optimal"


def _report_infeasible(
    problem: Problem,
    reduced: Reduced,
    settings: FormulationSettings,
    options: SolveOptions,
    limit: int,
) -> InfeasibleError:
    smallest, proven = minimum_limit(problem, reduced, settings, options)
    if smallest is None:
        return InfeasibleError(
            f"no {settings.kind} plan fits a fast limit of {format_bytes(limit)}, and the solver "
            "found no smaller peak within its time limit"
        )
    qualifier = "" if proven else "at least "
    return InfeasibleError(
        f"no {settings.kind} plan fits a fast limit of {format_bytes(limit)}: the smallest "
        f"feasible fast limit for this formulation is {qualifier}{smallest} bytes ({format_bytes(smallest)})"
    )


FirstTouch = tuple[list[bool], dict[tuple[int, int], int]]


def _first_touch(problem: Problem, limit: int, fixed: dict[int, str]) -> FirstTouch | None:
    try:
        return baselines.numa_tiers(problem, limit, fixed)
    except InfeasibleError:
        return None


def _numa_plan(
    problem: Problem,
    options: OptimizeOptions,
    limit: int,
    notes: dict[str, Any],
    first_touch: FirstTouch | None,
) -> Plan | None:
    """The NUMA baseline's placement at the same limit, as a plan of this formulation (its
    own first-touch addresses fit the limit by construction), or None when it has none.
    ``first_touch`` is the baseline's placement when already known."""
    try:
        tiers = first_touch if first_touch is not None else baselines.numa_tiers(problem, limit)
        placement = baselines.numa_placement(problem, *tiers)
        return realize(
            problem,
            placement,
            formulation=options.formulation,
            ratio=options.ratio_text,
            fast_limit=limit,
            solver=SolverStats(name=options.solve.backend, status="feasible"),
            reductions=notes,
            threads=options.solve.threads,
        )
    except (InfeasibleError, PoolOverflow):
        return None


def _optimize_ilp(
    problem: Problem,
    options: OptimizeOptions,
    limit: int,
    log: _Log,
    stream: TextIO | None,
    quiet: bool,
) -> Plan:
    clock = Clock(options.solve.time_limit_s)
    requested = options.solve.backend
    backend = backend_for(requested, options.formulation)
    options = replace(options, solve=replace(options.solve, backend=backend))
    # The reductions' approximations get at most a quarter of the gap (none when it is 0), and
    # the solver the rest: the gap a plan promises holds against the profile, not the model.
    promised_gap = options.solve.relative_gap
    approximate = replace(options.reductions, error_budget=0.25 * promised_gap)
    reduced = reduce(problem, limit, approximate)
    lower = lower_bound_s(problem)
    model_error = float(reduced.counts["model_error_bound_s"])
    if promised_gap > 0 and lower > 0:
        solver_gap = max(promised_gap - 2 * model_error / lower, promised_gap / 2)
        options = replace(options, solve=replace(options.solve, relative_gap=solver_gap))
    _check_need(problem, reduced, limit)
    settings = FormulationSettings(options.formulation, options.async_window)
    unit = memory_unit(problem.footprint_bytes())
    caps = _caps(problem, reduced, limit, unit)
    tick = _tick_seconds(problem, reduced)
    formulation = Formulation(problem, reduced, settings, caps, tick, unit)
    free = len(formulation.free_tensors())
    with Progress(
        f"building the {options.formulation} model", free + 1, stream=stream, quiet=quiet
    ) as progress:
        milp = formulation.build(progress=progress.advance)
    build_s = time.monotonic() - clock.started
    log(
        f"{options.formulation} model: {milp.n_vars} variables, {milp.n_rows} constraints, "
        f"{milp.n_nonzeros} non-zeros ({free} free tensors, built in {build_s:.2f} s)"
    )
    if options.export_model:
        export_model(milp, options.export_model, options.solve.backend)
        log(f"model written to {options.export_model}")
    first_touch = _first_touch(problem, limit, reduced.fixed)
    hint, solve_s = _warm_start(
        problem, formulation, reduced, options, requested, clock, log, first_touch
    )
    notes: dict[str, Any] = dict(reduced.counts) | formulation.dominated
    notes["memory_unit_bytes"] = unit
    notes["solver_relative_gap"] = options.solve.relative_gap
    notes["model"] = milp.families()

    tightening = Tightening(caps, limit, unit)
    rounds = 0
    plan: Plan | None = None
    last: SolveResult | None = None
    first_bound: float | None = None  # ticks: no plan under the limit does better
    first_objective: float | None = None  # ticks: the first solve's plan, before any headroom
    smallest_pool: int | None = None
    why = ""

    def set_caps() -> None:
        for k, m in enumerate(formulation.m_var):
            milp.var_ub[m] = float(max(int(caps[k]), 0))

    def attempt(last_round: bool) -> tuple[Plan | None, PoolOverflow | None, SolveResult]:
        """One solve under the current caps, traced and arranged: a plan, or the overflow."""
        nonlocal solve_s
        label = "solving" if rounds == 1 else f"re-solving (round {rounds})"
        budget = replace(options.solve, time_limit_s=clock.share(0.6 if rounds == 1 else 0.5))
        result = solve(milp, budget, hint=hint, stream=stream, quiet=quiet, label=label)
        solve_s += result.solve_s
        if result.values is None:
            return None, None, result
        _log_result(log, result, tick, budget)
        placement = placement_of(formulation, result.values)
        stats = _stats(options, milp, result, tick, build_s, solve_s, rounds, promised_gap)
        if rounds > 1 and first_objective and result.objective:
            # What the headroom cost against the first solve, under the limit itself; with
            # that solve's bound, the gap every plan that fits the limit is proven within.
            cost = max(0.0, result.objective - first_objective) / result.objective
            notes["fragmentation_cost"] = cost
            if first_bound is not None:
                notes["gap_against_limit"] = relative_gap(result.objective, first_bound)
        notes["fragmentation_resolves"] = rounds - 1
        notes["fragmentation_headroom_bytes"] = tightening.headroom
        budget_s = search_budget(clock)
        preset, searched = _prioritized(problem, placement, limit, budget_s.prioritize_s)
        search_s = budget_s.search_s
        if last_round:  # no time for another solve: CP-SAT may still find an arrangement
            search_s = min(10.0, 0.8 * clock.left())
        try:
            found = realize(
                problem,
                replace(placement, preset_fast_offsets=preset),
                formulation=options.formulation,
                ratio=options.ratio_text,
                fast_limit=limit,
                solver=stats,
                reductions=dict(notes),
                restarts_s=budget_s.restarts_s,
                search_s=search_s,
                threads=options.solve.threads,
            )
            return found, None, result
        except PoolOverflow as overflow:
            if searched is not None and searched.high_water < overflow.high_water:
                return None, searched, result  # the lower arrangement tells where to tighten
            return None, overflow, result

    while True:
        rounds += 1
        last_round = rounds >= options.max_rounds or clock.left() < LAST_CHANCE_S
        plan, overflow, result = attempt(last_round)
        if result.status == "infeasible":
            if rounds == 1:
                raise _report_infeasible(problem, reduced, settings, options.solve, limit)
            why = "the per-node limits tightened against fragmentation left no plan"
            break
        if result.values is None:
            why = f"the solver found no plan within {clock.limit_s} s"
            break
        last = result
        if rounds == 1:
            first_bound = lower_bound(result, options.solve.relative_gap)
            first_objective = result.objective
        if plan is not None or overflow is None:
            break
        smallest_pool = min(smallest_pool or overflow.high_water, overflow.high_water)
        if last_round:
            why = (
                f"no arrangement of the solved plans fit the fast limit after {rounds} "
                f"solves (the best needs {overflow.high_water} bytes)"
            )
            break
        changed = tightening.apply(overflow)
        set_caps()
        log(
            f"fast pool needs {format_bytes(overflow.high_water)} after address assignment, "
            f"over the limit of {format_bytes(limit)}: tightening {changed} node limits and "
            "re-solving"
        )
        hint = result.values

    # A headroom that cost more than half the gap: bisect between none (which overflowed) and
    # the one that fitted while time allows.
    low, high = 0, tightening.headroom
    for _ in range(REFINE_STEPS if plan is not None and rounds > 1 else 0):
        assert plan is not None
        if plan.reductions.get("fragmentation_cost", 0.0) <= options.solve.relative_gap / 2:
            break
        if clock.left() < LAST_CHANCE_S or high - low < max(unit, limit // 1000):
            break
        tightening.headroom = (low + high) // 2
        caps[:] = tightening.base - -(-tightening.headroom // unit)
        set_caps()
        rounds += 1
        log(
            f"a headroom of {format_bytes(high)} costs more than half the gap: trying "
            f"{format_bytes(tightening.headroom)}"
        )
        better, overflow, result = attempt(False)
        if better is not None and better.predicted.total_s < plan.predicted.total_s:
            plan, high = better, tightening.headroom
        else:
            if overflow is not None:
                log(f"fast pool needs {format_bytes(overflow.high_water)}: over the limit")
            low = tightening.headroom
    tightening.headroom = high

    own = {t.index: t.fixed_tier for t in problem.tensors if t.fixed_tier}
    same = first_touch if reduced.fixed == own else None  # no tensor pinned beyond the profile
    numa = _numa_plan(problem, options, limit, notes, same)
    if plan is not None and (
        numa is None
        # A baseline kernel in an unprofiled configuration has a guessed time: not comparable.
        or "estimated_kernel_configurations" in numa.reductions
        or plan.predicted.total_s <= numa.predicted.total_s
    ):
        return plan
    if numa is not None:
        if plan is not None:
            why = (
                f"the solved plan ({plan.predicted.total_s:.6g} s) was predicted slower than "
                f"the NUMA baseline ({numa.predicted.total_s:.6g} s)"
            )
        log(f"returning the NUMA baseline's placement: {why}")
        objective = numa.predicted.total_s
        bound = None if last is None or last.bound is None else last.bound * tick
        timed_out = clock.left() < 1.0
        return replace(
            numa,
            solver=SolverStats(
                name=options.solve.backend,
                status="time_limit" if timed_out and plan is None else "feasible",
                objective=objective,
                bound=bound,
                gap=relative_gap(objective, bound),
                variables=milp.n_vars,
                constraints=milp.n_rows,
                build_s=build_s,
                solve_s=solve_s,
                time_limit_s=options.solve.time_limit_s,
                relative_gap_limit=promised_gap,
                rounds=rounds,
                threads=options.solve.threads,
            ),
            reductions=notes | {"fallback": f"numa: {why}"},
        )
    if smallest_pool is not None:
        raise InfeasibleError(
            f"no {options.formulation} plan found within the time limit fits the fast limit of "
            f"{limit} bytes once addresses are assigned ({why}); the smallest achievable fast "
            f"limit found is {smallest_pool} bytes ({format_bytes(smallest_pool)}): rerun with "
            f"--fast-limit {smallest_pool}, or a longer --time-limit"
        )
    raise ToolError(f"no {options.formulation} plan: {why}; raise --time-limit")


def _fast_buffers(
    problem: Problem, placement: Placement
) -> tuple[list[Buffer], list[tuple[int, int]]]:
    """The fast pool's buffers and their keys, as :func:`placement.realize` lays them out:
    each fast span of each tensor, keyed (tensor, span), then each node's scratch, keyed
    (-1, node)."""
    buffers: list[Buffer] = []
    keys: list[tuple[int, int]] = []
    for t in problem.tensors:
        for i, span in enumerate(placement.spans[t.index]):
            if span.tier == FAST:
                buffers.append(Buffer.tensor(span.from_node, span.to_node, t.bytes))
                keys.append((t.index, i))
    for node in problem.nodes:
        buffers.append(Buffer.scratch(node.index, node.scratch_bytes))
        keys.append((-1, node.index))
    return buffers, keys


def _prioritized(
    problem: Problem, placement: Placement, limit: int, time_limit_s: float
) -> tuple[dict[tuple[int, int], int] | None, PoolOverflow | None]:
    """The fast pool arranged by :func:`addresses.prioritize`, before the fixed greedy orders
    of :func:`placement.realize` and their searches: offsets to preset when it fits the limit,
    else the overflow of its lowest arrangement (None, None when the search is switched off:
    ``placement.RESTARTS_WITHIN`` below 0 leaves only the fixed greedy orders, as the tests
    use it to make a plan fragment).

    Its first pass is the first greedy order's, so a plan that fits at once gets the same
    offsets as without it; the search only costs time when that overflows, where it usually
    spares a re-solve (on Inception v4 at batch 1024, greedy orders left the pool 10 to 40 %
    above the plan's peak, at a few nodes of the backward pass, and reordering reached the
    peak in a few passes).
    """
    if placing.RESTARTS_WITHIN < 0 or time_limit_s <= 0:
        return None, None
    buffers, keys = _fast_buffers(problem, placement)
    found = addresses.prioritize(buffers, limit, time_limit_s)
    if found.high_water <= limit:
        return dict(zip(keys, (int(o) for o in found.offsets), strict=True)), None
    n = problem.n_nodes
    top = addresses.top_by_node(buffers, found.offsets, n)
    return None, PoolOverflow(found.high_water, limit, top, addresses.live_by_node(buffers, n))


def _log_result(log: _Log, result: SolveResult, tick: float, options: SolveOptions) -> None:
    objective = (result.objective or 0.0) * tick
    gap = "unknown" if result.gap is None else f"{100 * result.gap:.2f}%"
    log(
        f"{result.status}: predicted {objective:.6g} s, gap {gap}, solved in {result.solve_s:.2f} s"
    )
    if result.status == "time_limit":
        log(
            f"time limit of {options.time_limit_s:.1f} s hit: keeping the best plan found, gap {gap}"
            + (" (the warm start)" if result.used_warm_start else "")
        )


def _stats(
    options: OptimizeOptions,
    milp: Milp,
    result: SolveResult,
    tick: float,
    build_s: float,
    solve_s: float,
    rounds: int,
    promised_gap: float,
) -> SolverStats:
    return SolverStats(
        name=options.solve.backend,
        status=result.status,
        objective=None if result.objective is None else result.objective * tick,
        bound=None if result.bound is None else result.bound * tick,
        gap=result.gap,
        variables=milp.n_vars,
        constraints=milp.n_rows,
        build_s=build_s,
        solve_s=solve_s,
        time_limit_s=options.solve.time_limit_s,
        relative_gap_limit=promised_gap,
        rounds=rounds,
        threads=options.solve.threads,
    )
