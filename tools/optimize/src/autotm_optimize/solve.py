"""Hand a :class:`~autotm_optimize.milp.Milp` to an OR-Tools backend and read the answer back.

Backends (``--solver``), all through OR-Tools' ``model_builder``:

- ``cp-sat``: Google's CP-SAT (lazy clause generation with an LP relaxation), multi-threaded;
- ``scip``: SCIP, branch and cut, one thread;
- ``highs``: HiGHS's MIP solver. OR-Tools 9.15 crashes when it passes HiGHS a solution hint
  (an empty vector indexed in highs_proto_solver.cc), so HiGHS gets no warm start: the warm
  start is kept aside and returned if it beats what HiGHS found. Its proto interface reports no
  bound either: a HiGHS run that stops short of its gap gets the LP relaxation's bound (GLOP).

The default, ``auto``, was chosen by measurement (benchmarks/optimize.md, optimize_solvers.py):
on synthetic stand-ins for the paper's networks, on 2 cores, HiGHS solved the static and
synchronous models 1.5 to 8 times faster than SCIP; on asynchronous models it was faster too
but once stalled far from a good plan without a warm start, where SCIP, started from the
synchronous plan, met the 1 % gap in every case. So ``auto`` is HiGHS for static and
synchronous, SCIP for asynchronous. CP-SAT (2 workers) was slowest everywhere.

The solver's termination is always checked: optimal (within the relative gap), feasible (a plan,
gap above the limit), time_limit (stopped by the clock with a plan), infeasible, or no plan. A
run that stops with no plan of its own but with a feasible warm start returns the warm start.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from autotm_schemas import BadInputError
from autotm_schemas.progress import format_seconds

# The C++ helper behind model_builder, used directly: model_builder's Python layer imports
# pandas, a second of start-up for every run.
from ortools.linear_solver.python import model_builder_helper as mbh

from .milp import Milp

BACKENDS = {"cp-sat": "sat", "scip": "scip", "highs": "highs"}
# "auto" picks, per formulation, the backend that measured best (benchmarks/optimize.md).
AUTO = {"static": "highs", "synchronous": "highs", "asynchronous": "scip"}
DEFAULT_BACKEND = "auto"
SOLVER_CHOICES = ("auto", *sorted(BACKENDS))


def backend_for(requested: str, formulation: str) -> str:
    """The concrete backend for a formulation: ``requested`` unless it is ``auto``."""
    return AUTO.get(formulation, "highs") if requested == "auto" else requested


EXPORT_FORMATS = (".mps", ".lp", ".pb")


@dataclass(frozen=True)
class SolveOptions:
    backend: str = DEFAULT_BACKEND
    time_limit_s: float | None = 60.0
    relative_gap: float = 0.01
    threads: int = 2


@dataclass(frozen=True)
class SolveResult:
    status: str  # optimal | feasible | time_limit | infeasible | no_solution
    values: np.ndarray | None
    objective: float | None  # in model units (ticks)
    bound: float | None
    gap: float | None
    solve_s: float
    used_warm_start: bool = False


def to_model_builder(milp: Milp, backend: str) -> mbh.ModelBuilderHelper:
    """The Milp as a model_builder model; CP-SAT gets implied-integer variables as integers."""
    helper = mbh.ModelBuilderHelper()
    integer: Any = np.array(milp.var_integer, dtype=bool)
    if backend == "cp-sat":
        integer |= np.array(milp.var_implied, dtype=bool)
    lower: Any = np.asarray(milp.var_lb, dtype=np.float64)
    upper: Any = np.asarray(milp.var_ub, dtype=np.float64)
    helper.add_var_array_with_bounds(lower, upper, integer, "v")
    if milp.objective:
        keys = list(milp.objective)
        helper.set_objective_coefficients(keys, [milp.objective[k] for k in keys])
    helper.set_objective_offset(milp.objective_offset)
    starts = milp.row_start
    index = milp.row_index
    coef = milp.row_coef
    add_term = helper.add_term_to_constraint
    for r in range(milp.n_rows):
        c = helper.add_linear_constraint()
        lb, ub = milp.row_lb[r], milp.row_ub[r]
        if lb > -math.inf:
            helper.set_constraint_lower_bound(c, lb)
        else:
            helper.set_constraint_lower_bound(c, -math.inf)
        helper.set_constraint_upper_bound(c, ub)
        for k in range(starts[r], starts[r + 1]):
            add_term(c, index[k], coef[k])
    return helper


def export_model(milp: Milp, path: str | os.PathLike[str], backend: str = "scip") -> None:
    """Write the model in a standard format chosen by the file's extension (.mps, .lp, .pb)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise BadInputError(
            f"--export-model: expected a file ending in one of {list(EXPORT_FORMATS)}, got {str(path)!r}"
        )
    model = to_model_builder(milp, backend)
    if suffix == ".pb":
        model.write_model_to_proto_file(str(target))  # binary MPModelProto
        return
    text = model.export_to_mps_string() if suffix == ".mps" else model.export_to_lp_string()
    from autotm_schemas import write_text_atomic

    write_text_atomic(target, text)


_HIGHS_THREADS: list[int] = []


def _highs_threads(wanted: int) -> int:
    """HiGHS sets its thread pool up once per process, and a later solve asking for another
    count fails outright: every HiGHS solve of a process uses the first one's count."""
    if not _HIGHS_THREADS:
        _HIGHS_THREADS.append(max(1, wanted))
    return _HIGHS_THREADS[0]


def _parameters(options: SolveOptions) -> str:
    gap = options.relative_gap
    if options.backend == "cp-sat":
        return (
            f"num_workers:{max(1, options.threads)} relative_gap_limit:{gap} "
            "log_search_progress:false mip_max_bound:1e13"
        )
    if options.backend == "scip":
        return f"limits/gap = {gap}\n"
    # output_flag=false: HiGHS writes its banner and log with C stdio on file descriptor 1,
    # where the plan goes with -o -; buffered there, it can even outlive a redirection.
    return f"mip_rel_gap={gap},threads={_highs_threads(options.threads)},output_flag=false"


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers, where native solvers' prints wait."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _stdout_to_stderr(quiet: bool = False) -> Iterator[None]:
    """Solvers may print on file descriptor 1 (their output is switched off, this is the
    second line of defence); keep anything they print off the plan written to stdout (on
    stderr, or nowhere when quiet). The C stdio buffers are flushed before file descriptor 1
    is restored, or their contents would reach the real stdout later."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        yield
        return
    target = os.open(os.devnull, os.O_WRONLY) if quiet else 2
    try:
        os.dup2(target, 1)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        if quiet:
            os.close(target)


class _Ticker:
    """Elapsed time against the time limit on stderr while the solver runs (it gives no log)."""

    def __init__(self, label: str, limit: float | None, stream: TextIO | None, quiet: bool) -> None:
        self.label = label
        self.limit = limit
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self) -> str:
        elapsed = time.monotonic() - self.started
        text = f"{self.label}: {format_seconds(elapsed)} elapsed"
        if self.limit:
            text += f", at most {format_seconds(max(0.0, self.limit - elapsed))} left (time limit)"
        return text

    def _run(self) -> None:
        interval = 1.0 if self._tty else 10.0
        while not self._stop.wait(interval):
            if self._tty:
                self.stream.write("\r\x1b[2K" + self._line())
            else:
                self.stream.write(self._line() + "\n")
            self.stream.flush()

    def __enter__(self) -> _Ticker:
        if not self.quiet:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            if self._tty:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    return max(0.0, objective - bound) / max(abs(objective), 1e-12)


def lp_bound(milp: Milp, time_limit_s: float | None = None) -> float | None:
    """The LP relaxation's optimum (GLOP): a valid, if loose, bound for any backend's plan."""
    helper = to_model_builder(milp, "highs")
    for var in range(milp.n_vars):
        helper.set_var_integrality(var, False)
    solver = mbh.ModelSolverHelper("glop")
    solver.enable_output(False)
    if time_limit_s:
        solver.set_time_limit_in_seconds(float(time_limit_s))
    with _stdout_to_stderr():
        solver.solve(helper)
    if solver.status() != mbh.SolveStatus.OPTIMAL:
        return None
    return float(solver.objective_value())


def _status(optimal: bool, elapsed: float, options: SolveOptions, gap: float | None) -> str:
    if optimal and (gap is None or gap <= options.relative_gap * 1.0001):
        return "optimal"
    if options.time_limit_s and elapsed >= 0.95 * options.time_limit_s:
        return "time_limit"
    return "feasible"


def solve(
    milp: Milp,
    options: SolveOptions,
    hint: np.ndarray | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
    label: str = "solving",
) -> SolveResult:
    """Solve; the better of the solver's plan and a feasible warm start comes back."""
    if options.backend not in BACKENDS:
        raise BadInputError(f"--solver: expected one of {list(BACKENDS)}, got {options.backend!r}")
    helper = to_model_builder(milp, options.backend)
    warm = hint if hint is not None and milp.feasible(hint) else None
    if hint is not None and options.backend != "highs":
        for var, value in enumerate(hint):
            helper.add_hint(var, float(value))
    solver = mbh.ModelSolverHelper(BACKENDS[options.backend])
    solver.enable_output(False)
    if options.time_limit_s:
        solver.set_time_limit_in_seconds(float(options.time_limit_s))
    solver.set_solver_specific_parameters(_parameters(options))
    started = time.monotonic()
    with (
        _Ticker(f"{label} ({options.backend})", options.time_limit_s, stream, quiet),
        _stdout_to_stderr(quiet),
    ):
        solver.solve(helper)
    elapsed = time.monotonic() - started
    status = solver.status()
    if status == mbh.SolveStatus.INFEASIBLE:
        return SolveResult("infeasible", None, None, None, None, elapsed)
    found = status in (mbh.SolveStatus.OPTIMAL, mbh.SolveStatus.FEASIBLE) and solver.has_solution()
    optimal = found and status == mbh.SolveStatus.OPTIMAL
    bound: float | None = None
    if options.backend != "highs" and solver.has_response():
        bound = float(solver.best_objective_bound())
        bound = bound if math.isfinite(bound) else None
    elif not optimal:
        # HiGHS's proto interface reports its objective as the bound: fall back on the LP's.
        bound = lp_bound(milp, options.time_limit_s)
    found_values = np.round(np.asarray(solver.variable_values(), dtype=float), 6) if found else None
    found_objective = float(solver.objective_value()) if found else None
    return choose(milp, options, found_values, found_objective, optimal, warm, bound, elapsed)


def choose(
    milp: Milp,
    options: SolveOptions,
    values: np.ndarray | None,
    objective: float | None,
    optimal: bool,
    warm: np.ndarray | None,
    bound: float | None,
    elapsed: float,
) -> SolveResult:
    """The solver's plan, unless a feasible warm start is better (or the solver found none)."""
    if (
        values is not None
        and objective is not None
        and (warm is None or objective <= milp.objective_value(warm))
    ):
        gap = relative_gap(objective, bound)
        status = _status(optimal, elapsed, options, gap)
        return SolveResult(status, values, objective, bound, gap, elapsed)
    if warm is not None:
        warm_objective = milp.objective_value(warm)
        gap = relative_gap(warm_objective, bound)
        if optimal:  # the solver proved its plan within the gap, and the warm start beats it
            name = "optimal"
        elif options.time_limit_s and elapsed >= 0.95 * options.time_limit_s:
            name = "time_limit"
        else:
            name = "feasible"
        return SolveResult(name, warm.astype(float), warm_objective, bound, gap, elapsed, True)
    return SolveResult("no_solution", None, None, None, None, elapsed)
