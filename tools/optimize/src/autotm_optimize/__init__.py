"""autotm-optimize: the AutoTM ILP formulations on OR-Tools, the baselines, address assignment.

Input: a PROFILE_DIR (kernels/nodes/tensors Parquet tables, machine.json, profile.json).
Output: plan.json. The public functions are re-exported here; the CLI is :mod:`.cli`.
"""

from .explain import explain
from .optimize import OptimizeOptions, optimize
from .plan import FORMULATIONS, Plan
from .problem import Problem, load_problem
from .verify import verify

__version__ = "0.1.0"

__all__ = [
    "FORMULATIONS",
    "OptimizeOptions",
    "Plan",
    "Problem",
    "explain",
    "load_problem",
    "optimize",
    "verify",
]
