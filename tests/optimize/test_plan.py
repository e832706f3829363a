"""plan.json: the dataclass and the document are exact inverses, and the schema accepts it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autotm_optimize import OptimizeOptions, load_problem, optimize
from autotm_optimize.plan import Plan
from autotm_optimize.solve import SolveOptions
from autotm_schemas import read_document, write_document


def test_round_trip_through_plan_json(profile_dir: Callable[[str], Path], tmp_path: Path) -> None:
    problem = load_problem(profile_dir("hidden_async"))
    options = OptimizeOptions(
        "asynchronous", fast_limit=25 * 4096, solve=SolveOptions("scip", 10, 0.0, 1)
    )
    plan = optimize(problem, options, quiet=True)
    write_document(tmp_path / "plan.json", plan.to_document(), "plan")
    again = Plan.from_document(read_document(tmp_path / "plan.json", "plan"))
    assert again == plan
    doc = again.to_document()
    assert doc["format"] == "autotm.plan/1"
    assert doc["predicted"]["total_s"] == plan.predicted.total_s
    assert doc["solver"]["variables"] > 0 and doc["solver"]["status"] in ("optimal", "feasible")
    assert all(r["offset"] % 4096 == 0 for t in doc["tensors"] for r in t["residencies"])
