"""Which OR-Tools backend solves the AutoTM models fastest? Side by side on the same models.

    python benchmarks/optimize_solvers.py [PROFILE_DIR ...] [--synthetic NAME ...]
        [--formulations static,synchronous] [--ratios 4:1] [--time-limit 60] [--threads 2]

Each model is built once and handed to CP-SAT, SCIP and HiGHS in turn with the same warm start
(HiGHS gets none: OR-Tools 9.15 crashes passing it one), time limit, gap and threads. Printed
per solve: seconds, status, objective (predicted seconds) and the gap each backend proves,
then the objective relative to the best found. This is how the default backend was chosen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from autotm_optimize import baselines, load_problem
from autotm_optimize.formulation import Formulation, FormulationSettings, memory_unit
from autotm_optimize.optimize import _caps, _tick_seconds
from autotm_optimize.reductions import ReductionSettings, reduce
from autotm_optimize.solution import hint_from_tiers
from autotm_optimize.solve import BACKENDS, SolveOptions, solve
from autotm_schemas.units import fast_limit_from_ratio, parse_ratio

sys.path.insert(0, str(Path(__file__).parent))
from optimize_bench import SYNTHETIC, synthetic_profiles


def compare(
    profile: Path, formulations: list[str], ratios: list[str], args: argparse.Namespace
) -> None:
    problem = load_problem(profile)
    print(
        f"\n{problem.network}: {problem.n_nodes} nodes, {len(problem.tensors)} tensors", flush=True
    )
    for kind in formulations:
        for ratio in ratios:
            limit = fast_limit_from_ratio(problem.footprint_bytes(), parse_ratio(ratio))
            reduced = reduce(problem, limit, ReductionSettings())
            unit = memory_unit(problem.footprint_bytes())
            started = time.monotonic()
            formulation = Formulation(
                problem,
                reduced,
                FormulationSettings(kind),
                _caps(problem, reduced, limit, unit),
                _tick_seconds(problem, reduced),
                unit,
            )
            milp = formulation.build()
            build_s = time.monotonic() - started
            fast, _ = baselines.numa_tiers(problem, limit, reduced.fixed)
            hint = hint_from_tiers(formulation, fast)
            print(
                f"  {kind} {ratio}: {milp.n_vars} variables, {milp.n_rows} constraints, built in {build_s:.2f} s"
            )
            found = {}
            for backend in sorted(BACKENDS):
                options = SolveOptions(backend, args.time_limit, args.gap, args.threads)
                result = solve(milp, options, hint=hint, quiet=True)
                seconds = (
                    None if result.objective is None else result.objective * formulation.tick_s
                )
                found[backend] = seconds
                gap = "?" if result.gap is None else f"{100 * result.gap:.2f}%"
                shown = "-" if seconds is None else f"{seconds:.6g}"
                print(
                    f"    {backend:7} {result.solve_s:7.2f} s  {result.status:11} objective {shown:>12}  gap {gap}",
                    flush=True,
                )
            best = min((v for v in found.values() if v is not None), default=None)
            if best:
                print(
                    "    relative to the best: "
                    + ", ".join(
                        f"{b} {'-' if v is None else f'{v / best:.4f}'}" for b, v in found.items()
                    )
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="*", type=Path)
    parser.add_argument("--synthetic", nargs="*", choices=sorted(SYNTHETIC), default=None)
    parser.add_argument("--formulations", default="static,synchronous")
    parser.add_argument("--ratios", default="4:1")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--gap", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(
        f"backends side by side: time limit {args.time_limit:g} s, gap {100 * args.gap:g}%, {args.threads} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        profiles = list(args.profiles)
        if args.synthetic is not None:
            names = args.synthetic or list(SYNTHETIC)
            print("SYNTHETIC profiles (roofline kernel times): " + ", ".join(names))
            profiles += synthetic_profiles(Path(tmp), names)
        for profile in profiles:
            compare(profile, args.formulations.split(","), args.ratios.split(","), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
