"""A small solver-neutral integer program, and its hand-over to OR-Tools' model_builder.

The formulation is written once, against :class:`Milp`; :mod:`autotm_optimize.solve` hands the
same model to CP-SAT, SCIP or HiGHS through ``model_builder`` (one formulation, several
backends: checkmate wrote its formulation twice, once per solver, which we avoid).

Rows are stored as flat lists, so building a model with a million non-zeros stays a matter of
seconds in Python; every row and variable carries a *family* (the constraint or variable family
of the formulation's docstring), so model statistics can be reported per family.

Every coefficient the formulation writes is an integer (flows, memory units, time ticks), so CP-SAT
reads the model exactly; variables that are integral only by implication (running sums of memory,
per-kernel times) are marked ``implied``: CP-SAT needs them integer, MIP solvers may keep them
continuous.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Milp:
    var_lb: list[float] = field(default_factory=list)
    var_ub: list[float] = field(default_factory=list)
    var_integer: list[bool] = field(default_factory=list)
    var_implied: list[bool] = field(default_factory=list)
    var_family: list[str] = field(default_factory=list)
    objective: dict[int, float] = field(default_factory=dict)
    objective_offset: float = 0.0
    row_start: list[int] = field(default_factory=lambda: [0])
    row_index: list[int] = field(default_factory=list)
    row_coef: list[float] = field(default_factory=list)
    row_lb: list[float] = field(default_factory=list)
    row_ub: list[float] = field(default_factory=list)
    row_family: list[str] = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return len(self.var_lb)

    @property
    def n_rows(self) -> int:
        return len(self.row_lb)

    @property
    def n_nonzeros(self) -> int:
        return len(self.row_index)

    def add_var(
        self,
        family: str,
        lb: float = 0.0,
        ub: float = 1.0,
        integer: bool = True,
        implied: bool = False,
    ) -> int:
        self.var_lb.append(lb)
        self.var_ub.append(ub)
        self.var_integer.append(integer)
        self.var_implied.append(implied)
        self.var_family.append(family)
        return len(self.var_lb) - 1

    def add_binaries(self, family: str, count: int) -> list[int]:
        first = len(self.var_lb)
        self.var_lb.extend([0.0] * count)
        self.var_ub.extend([1.0] * count)
        self.var_integer.extend([True] * count)
        self.var_implied.extend([False] * count)
        self.var_family.extend([family] * count)
        return list(range(first, first + count))

    def add_row(
        self,
        family: str,
        index: Sequence[int],
        coef: Sequence[float],
        lb: float = -np.inf,
        ub: float = np.inf,
    ) -> int:
        """Add lb <= sum coef * var <= ub; repeated variables are merged (solvers refuse them)."""
        if len(set(index)) != len(index):
            merged: dict[int, float] = {}
            for v, c in zip(index, coef, strict=True):
                merged[v] = merged.get(v, 0.0) + c
            index = [v for v, c in merged.items() if c]
            coef = [c for c in merged.values() if c]
        self.row_index.extend(index)
        self.row_coef.extend(coef)
        self.row_start.append(len(self.row_index))
        self.row_lb.append(lb)
        self.row_ub.append(ub)
        self.row_family.append(family)
        return len(self.row_lb) - 1

    def add_objective(self, var: int, coef: float) -> None:
        if coef:
            self.objective[var] = self.objective.get(var, 0.0) + coef

    def families(self) -> dict[str, dict[str, int]]:
        return {
            "variables": dict(Counter(self.var_family)),
            "constraints": dict(Counter(self.row_family)),
        }

    def row(self, r: int) -> tuple[list[int], list[float]]:
        a, b = self.row_start[r], self.row_start[r + 1]
        return self.row_index[a:b], self.row_coef[a:b]

    def violations(self, values: np.ndarray, tol: float = 1e-6) -> list[int]:
        """Rows a full assignment breaks (for checking warm starts and tests)."""
        index = np.asarray(self.row_index, dtype=np.int64)
        coef = np.asarray(self.row_coef, dtype=float)
        products = coef * values[index] if index.size else np.zeros(0)
        starts = np.asarray(self.row_start[:-1], dtype=np.int64)
        sums = np.add.reduceat(products, starts) if index.size else np.zeros(self.n_rows)
        empty = np.diff(np.asarray(self.row_start)) == 0
        sums[empty] = 0.0
        lb = np.asarray(self.row_lb)
        ub = np.asarray(self.row_ub)
        bad = (sums < lb - tol) | (sums > ub + tol)
        return [int(r) for r in np.flatnonzero(bad)]

    def out_of_bounds(self, values: np.ndarray, tol: float = 1e-6) -> list[int]:
        """Variables a full assignment puts outside their bounds."""
        lb = np.asarray(self.var_lb)
        ub = np.asarray(self.var_ub)
        return [int(v) for v in np.flatnonzero((values < lb - tol) | (values > ub + tol))]

    def feasible(self, values: np.ndarray, tol: float = 1e-6) -> bool:
        """Whether an assignment keeps every bound and row: a warm start must, since the
        bounds change between re-solves (tightened memory limits) while rows stay."""
        return not self.out_of_bounds(values, tol) and not self.violations(values, tol)

    def objective_value(self, values: np.ndarray) -> float:
        return self.objective_offset + sum(c * float(values[v]) for v, c in self.objective.items())
