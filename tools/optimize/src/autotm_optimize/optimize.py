"""The optimizer driver: from a problem and a budget to a verified plan, for every formulation.

For an ILP formulation: reduce the model, check the budget against what each kernel needs,
build, warm-start from the NUMA baseline, solve, trace the solution into spans and moves, and
assign addresses. Where the fast pool overflows the limit (fragmentation), tighten the limit of
the nodes where it overflowed and re-solve from the last solution, as the original AutoTM did;
give up with an error rather than emit a plan whose pool exceeds the limit. Every plan, ILP or
baseline, passes the verifier before it is returned.
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

from . import baselines
from .formulation import Formulation, FormulationSettings
from .milp import Milp
from .placement import Placement, PoolOverflow, realize
from .plan import ILP_FORMULATIONS, Plan, SolverStats
from .problem import PAGE, Problem
from .reductions import Reduced, ReductionSettings, reduce
from .solution import hint_from_placement, hint_from_tiers, placement_of
from .solve import SolveOptions, SolveResult, backend_for, export_model, solve
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
    max_rounds: int = 8


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


def _check_need(problem: Problem, reduced: Reduced, limit_pages: int) -> None:
    worst = int(np.argmax(reduced.need_pages)) if problem.nodes else 0
    need = int(reduced.need_pages[worst]) if problem.nodes else 0
    if need > limit_pages:
        node = problem.nodes[worst]
        raise InfeasibleError(
            f"the fast limit of {format_bytes(limit_pages * PAGE)} is below what node "
            f"{node.name!r} ({node.op_type}, #{node.index}) needs: {format_bytes(need * PAGE)} "
            f"(its smallest configuration, scratch and pinned tensors); the smallest feasible "
            f"fast limit is at least {need * PAGE} bytes"
        )


def _caps(problem: Problem, reduced: Reduced, limit_pages: int) -> np.ndarray:
    return limit_pages - problem.scratch_pages() - reduced.fixed_fast_pages


def _warm_start(
    problem: Problem,
    formulation: Formulation,
    limit: int,
    reduced: Reduced,
    options: OptimizeOptions,
    requested: str,
    log: _Log,
) -> tuple[np.ndarray | None, float]:
    """The best feasible warm start: the NUMA baseline, and for the asynchronous formulation
    also the synchronous optimum (solved first, by the synchronous formulation's backend, with
    a third of the time limit). A backend that takes no warm start (HiGHS) still gets it back
    if it finds nothing better.

    Returns the hint and the seconds spent solving for it.
    """
    candidates: list[tuple[str, np.ndarray]] = []
    fast: list[bool] | None = None
    try:
        fast, _ = baselines.numa_tiers(problem, limit, reduced.fixed)
        candidates.append(("numa", hint_from_tiers(formulation, fast)))
    except InfeasibleError:
        pass
    spent = 0.0
    if formulation.settings.kind == "asynchronous":
        sync = Formulation(
            problem,
            reduced,
            FormulationSettings("synchronous"),
            formulation.caps,
            formulation.tick_s,
        )
        sync_milp = sync.build()
        sync_hint = hint_from_tiers(sync, fast) if fast is not None else None
        limit_s = options.solve.time_limit_s / 3 if options.solve.time_limit_s else None
        backend = backend_for(requested, "synchronous")
        staged = replace(options.solve, time_limit_s=limit_s, backend=backend)
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
        if not formulation.milp.violations(h)
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
    huge = np.full(problem.n_nodes, 2**40, dtype=np.int64)
    formulation = Formulation(problem, reduced, settings, huge, 1.0)
    milp = formulation.build()
    milp.objective = {}
    milp.objective_offset = 0.0
    base = problem.scratch_pages() + reduced.fixed_fast_pages
    peak = milp.add_var("peak_pages", 0, float(2**40), integer=False, implied=True)
    for k, m in enumerate(formulation.m_var):
        milp.add_row("peak", [m, peak], [1, -1], ub=-float(base[k]))
    milp.objective = {peak: 1.0}
    result = solve(milp, options, quiet=True)
    if result.values is None or result.objective is None:
        return None, False
    bound = result.bound if result.bound is not None else result.objective
    return math.ceil(bound - 1e-6) * PAGE, result.status == "optimal"


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


def _tighten(caps: np.ndarray, overflow: PoolOverflow, round_: int) -> int:
    """Lower the caps of the crowded nodes where the pool's top passed the limit.

    A node is crowded when its live bytes plus the overflow there exceed the limit: that is
    where the arrangement ran out of room. Nodes crossed by a high buffer but otherwise roomy
    keep their caps at first, so the re-solve gives up as little as it can; each further round
    doubles the cut and widens it by a node on each side, and from the third round on every
    node under an overflowing address is cut, so the loop ends. Returns the nodes changed.
    """
    over = np.maximum(overflow.top - overflow.limit, 0)
    crowded = (over > 0) & (overflow.live + over > overflow.limit)
    if round_ >= 3 or not crowded.any():
        crowded = over > 0
    radius = round_ - 1
    pages_over = -(-over // PAGE) * 2 ** (round_ - 1)
    cut = np.zeros(len(caps), dtype=np.int64)
    for k in np.flatnonzero(crowded):
        lo, hi = max(0, k - radius), min(len(caps), k + radius + 1)
        cut[lo:hi] = np.maximum(cut[lo:hi], max(int(pages_over[k]), 1))
    caps -= cut
    return int((cut > 0).sum())


def _optimize_ilp(
    problem: Problem,
    options: OptimizeOptions,
    limit: int,
    log: _Log,
    stream: TextIO | None,
    quiet: bool,
) -> Plan:
    build_started = time.monotonic()
    requested = options.solve.backend
    backend = backend_for(requested, options.formulation)
    options = replace(options, solve=replace(options.solve, backend=backend))
    limit_pages = limit // PAGE
    reduced = reduce(problem, limit_pages, options.reductions)
    _check_need(problem, reduced, limit_pages)
    settings = FormulationSettings(options.formulation, options.async_window)
    caps = _caps(problem, reduced, limit_pages)
    tick = _tick_seconds(problem, reduced)
    formulation = Formulation(problem, reduced, settings, caps, tick)
    free = len(formulation.free_tensors())
    with Progress(
        f"building the {options.formulation} model", free + 1, stream=stream, quiet=quiet
    ) as progress:
        milp = formulation.build(progress=progress.advance)
    build_s = time.monotonic() - build_started
    log(
        f"{options.formulation} model: {milp.n_vars} variables, {milp.n_rows} constraints, "
        f"{milp.n_nonzeros} non-zeros ({free} free tensors, built in {build_s:.2f} s)"
    )
    if options.export_model:
        export_model(milp, options.export_model, options.solve.backend)
        log(f"model written to {options.export_model}")
    hint, solve_s = _warm_start(problem, formulation, limit, reduced, options, requested, log)

    rounds = 0
    result: SolveResult | None = None
    while True:
        rounds += 1
        label = "solving" if rounds == 1 else f"re-solving (round {rounds})"
        budget = options.solve
        if rounds == 1 and budget.time_limit_s and solve_s:
            # The warm start's own solve counts against the first solve's time limit.
            left = max(budget.time_limit_s - solve_s, 0.25 * budget.time_limit_s)
            budget = replace(budget, time_limit_s=left)
        result = solve(milp, budget, hint=hint, stream=stream, quiet=quiet, label=label)
        solve_s += result.solve_s
        if result.status == "infeasible":
            if rounds == 1:
                raise _report_infeasible(problem, reduced, settings, options.solve, limit)
            raise ToolError(
                f"no plan fits the fast limit of {format_bytes(limit)} once fragmentation of the "
                f"pool is accounted for (round {rounds}); try a slightly larger limit"
            )
        if result.values is None:
            raise ToolError(
                f"the solver found no plan within {options.solve.time_limit_s} s; raise --time-limit"
            )
        _log_result(log, result, tick, options.solve)
        placement = placement_of(formulation, result.values)
        stats = _stats(options, milp, result, tick, build_s, solve_s, rounds)
        try:
            return _realize(problem, placement, options, limit, stats, reduced, formulation, rounds)
        except PoolOverflow as overflow:
            if rounds >= options.max_rounds:
                raise ToolError(
                    f"the fast pool still needs {overflow.high_water} bytes after {rounds} "
                    f"solves, over the limit of {limit} bytes (fragmentation); try a slightly "
                    "larger limit"
                ) from None
            changed = _tighten(caps, overflow, rounds)
            for k, m in enumerate(formulation.m_var):
                milp.var_ub[m] = float(max(int(caps[k]), 0))
            log(
                f"fast pool needs {format_bytes(overflow.high_water)} after address assignment, "
                f"over the limit: tightening {changed} node limits and re-solving"
            )
            hint = result.values


def _log_result(log: _Log, result: SolveResult, tick: float, options: SolveOptions) -> None:
    objective = (result.objective or 0.0) * tick
    gap = "unknown" if result.gap is None else f"{100 * result.gap:.2f}%"
    log(
        f"{result.status}: predicted {objective:.6g} s, gap {gap}, solved in {result.solve_s:.2f} s"
    )
    if result.status == "time_limit":
        log(
            f"time limit of {options.time_limit_s} s hit: keeping the best plan found, gap {gap}"
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
        relative_gap_limit=options.solve.relative_gap,
        rounds=rounds,
        threads=options.solve.threads,
    )


def _realize(
    problem: Problem,
    placement: Placement,
    options: OptimizeOptions,
    limit: int,
    stats: SolverStats,
    reduced: Reduced,
    formulation: Formulation,
    rounds: int,
) -> Plan:
    notes: dict[str, Any] = dict(reduced.counts) | formulation.dominated
    notes["fragmentation_resolves"] = rounds - 1
    notes["model"] = formulation.milp.families()
    return realize(
        problem,
        placement,
        formulation=options.formulation,
        ratio=options.ratio_text,
        fast_limit=limit,
        solver=stats,
        reductions=notes,
        pack_time_limit_s=min(30.0, options.solve.time_limit_s or 30.0),
        threads=options.solve.threads,
    )
