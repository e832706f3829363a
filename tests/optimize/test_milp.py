"""The solver-neutral model: rows, merging, evaluation."""

from __future__ import annotations

import numpy as np
from autotm_optimize.milp import Milp


def test_repeated_variables_in_a_row_are_merged() -> None:
    milp = Milp()
    a, b = milp.add_binaries("x", 2)
    milp.add_row("r", [a, b, a, b], [1, 2, 3, -2], ub=4)
    assert milp.row(0) == ([a], [4.0])


def test_violations_and_objective() -> None:
    milp = Milp()
    x = milp.add_var("x", 0, 10, integer=False)
    y = milp.add_var("y")
    milp.add_row("cap", [x, y], [1, 5], ub=6)
    milp.add_row("pick", [y], [1], 1, 1)
    milp.add_objective(x, 2.0)
    milp.objective_offset = 1.0
    assert milp.violations(np.array([1.0, 1.0])) == []
    assert milp.violations(np.array([2.0, 0.0])) == [1]
    assert milp.violations(np.array([2.0, 1.0])) == [0]
    assert milp.objective_value(np.array([2.0, 1.0])) == 5.0
    assert milp.families() == {"variables": {"x": 1, "y": 1}, "constraints": {"cap": 1, "pick": 1}}
    assert (milp.n_vars, milp.n_rows, milp.n_nonzeros) == (2, 2, 3)
