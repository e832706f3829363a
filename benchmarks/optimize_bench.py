"""Benchmark autotm-optimize: model size, build time, solve time and gap per network and ratio.

    python benchmarks/optimize_bench.py PROFILE_DIR [PROFILE_DIR ...] [options]
    python benchmarks/optimize_bench.py --synthetic [options]

For each PROFILE_DIR (the paper's four networks at their conventional batches: vgg19 2048,
inception_v4 1024, resnet200 512, densenet264 512, profiled by autotm-profile), it solves the
static and synchronous formulations at 8:1, 4:1 and 1:1 (slow:fast), and the asynchronous one
with --async, and prints one row per solve: variables, constraints, build seconds, solve
seconds, gap, the predicted time against all-fast, and the issue's targets (a 1 % gap within
60 s on 2 cores; a build under 10 s).

``--synthetic`` instead generates SYNTHETIC stand-ins for the four networks (see
autotm_optimize.synthetic: roofline kernel times, provenance "simulated"), so the benchmark runs
before real profiles exist. Their numbers say how the solver copes with graphs of that shape and
size, not how the real networks behave.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from autotm_optimize import OptimizeOptions, load_problem, optimize
from autotm_optimize.solve import DEFAULT_BACKEND, SOLVER_CHOICES, SolveOptions
from autotm_optimize.synthetic import synthetic_network, write_profile
from autotm_schemas import ToolError

# Stand-ins for the paper's networks: (family, layers, batch, width, image, batchnorm).
SYNTHETIC = {
    "vgg19-synthetic": ("chain", 16, 2048, 64, 224, False),
    "inception_v4-synthetic": ("dense", 150, 1024, 64, 299, True),
    "resnet200-synthetic": ("residual", 200, 512, 64, 224, True),
    "densenet264-synthetic": ("dense", 264, 512, 128, 224, True),
}
RATIOS = ("8:1", "4:1", "1:1")
GAP_TARGET = 0.01
SOLVE_TARGET_S = 60.0
BUILD_TARGET_S = 10.0


def synthetic_profiles(root: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        family, layers, batch, width, image, batchnorm = SYNTHETIC[name]
        nodes, tensors, kernels = synthetic_network(family, layers, batch, width, image, batchnorm)
        out.append(write_profile(root / name, nodes, tensors, kernels, network=name, batch=batch))
    return out


def ratio_tuple(text: str) -> tuple[float, float]:
    slow, fast = text.split(":")
    return float(slow), float(fast)


def run(profile: Path, formulations: list[str], ratios: list[str], solve: SolveOptions) -> None:
    started = time.monotonic()
    problem = load_problem(profile)
    load_s = time.monotonic() - started
    fast = optimize(problem, OptimizeOptions("all-fast"), quiet=True).predicted.total_s
    print(
        f"\n{problem.network} (batch {problem.batch}): {problem.n_nodes} nodes, "
        f"{len(problem.tensors)} tensors, loaded in {load_s:.1f} s; all-fast {fast:.4g} s",
        flush=True,
    )
    header = (
        f"{'formulation':13} {'ratio':5} {'variables':>9} {'constraints':>11} {'build s':>7} "
        f"{'solve s':>7} {'gap':>7} {'status':10} {'vs fast':>7}  targets"
    )
    print(header)
    for formulation in formulations:
        for ratio in ratios:
            options = OptimizeOptions(
                formulation, ratio=ratio_tuple(ratio), ratio_text=ratio, solve=solve
            )
            try:
                plan = optimize(problem, options, quiet=True)
            except ToolError as exc:
                print(
                    f"{formulation:13} {ratio:5} {'-':>9} {'-':>11} {'-':>7} {'-':>7} {'-':>7} "
                    f"{'error':10} {'-':>7}  {exc}"
                )
                continue
            s = plan.solver
            gap = "?" if s.gap is None else f"{100 * s.gap:.2f}%"
            checks = []
            within = s.status == "optimal" if s.gap is None else s.gap <= GAP_TARGET + 1e-9
            checks.append("gap ok" if within else "gap MISSED")
            checks.append("solve ok" if s.solve_s <= SOLVE_TARGET_S else "solve MISSED")
            checks.append("build ok" if s.build_s <= BUILD_TARGET_S else "build MISSED")
            print(
                f"{formulation:13} {ratio:5} {s.variables:9d} {s.constraints:11d} {s.build_s:7.2f} "
                f"{s.solve_s:7.2f} {gap:>7} {s.status:10} {plan.predicted.total_s / fast:7.3f}  "
                + ", ".join(checks)
                + (f" ({s.rounds} solves)" if s.rounds > 1 else ""),
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "profiles", nargs="*", type=Path, help="PROFILE_DIRs written by autotm-profile"
    )
    parser.add_argument(
        "--synthetic",
        nargs="*",
        choices=sorted(SYNTHETIC),
        default=None,
        help="benchmark SYNTHETIC stand-ins (all four when no name is given)",
    )
    parser.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="also the asynchronous formulation",
    )
    parser.add_argument(
        "--ratios", default=",".join(RATIOS), help="comma-separated slow:fast ratios"
    )
    parser.add_argument("--formulations", default="static,synchronous")
    parser.add_argument("--solver", choices=SOLVER_CHOICES, default=DEFAULT_BACKEND)
    parser.add_argument("--time-limit", type=float, default=SOLVE_TARGET_S)
    parser.add_argument("--gap", type=float, default=GAP_TARGET)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    formulations = args.formulations.split(",") + (["asynchronous"] if args.asynchronous else [])
    solve = SolveOptions(args.solver, args.time_limit, args.gap, args.threads)
    print(
        f"autotm-optimize benchmark: solver {args.solver}, {args.threads} threads, "
        f"time limit {args.time_limit:g} s, gap {100 * args.gap:g}%"
    )
    with tempfile.TemporaryDirectory() as tmp:
        profiles = list(args.profiles)
        if args.synthetic is not None:
            names = args.synthetic or list(SYNTHETIC)
            print(
                "SYNTHETIC profiles (roofline kernel times, provenance 'simulated'): "
                + ", ".join(names)
            )
            profiles += synthetic_profiles(Path(tmp), names)
        if not profiles:
            parser.error("give PROFILE_DIRs or --synthetic")
        for profile in profiles:
            run(profile, formulations, args.ratios.split(","), solve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
