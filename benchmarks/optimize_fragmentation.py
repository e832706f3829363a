"""What fragmentation costs autotm-optimize on the paper-size Inception v4 case study.

    python benchmarks/optimize_fragmentation.py [--profile DIR] [--work DIR] [--compare SRC]

At small fast shares (1/20 to 1/100 of the footprint, batch 1024) the ILP's plans fill the fast
pool with 1 to 3 GiB activations, and an arrangement of their addresses may need more than the
peak of live bytes the ILP kept under the limit; the driver then re-solves under a headroom
(`reductions.fragmentation_headroom_bytes`). This runs `autotm-optimize PROFILE -f F --ratio R
--time-limit 300 -q -o plan.json` (the inception suite's arguments, suites/inception.mk) for
static and synchronous at 19:1, 39:1, 59:1, 79:1 and 99:1, each a process of its own, and prints
per run the solves (rounds), the headroom as a share of the fast limit, the predicted seconds
and the wall time.

``--compare SRC`` first runs each case with another copy of the package first on the path
(``SRC/autotm_optimize``, e.g. ``git archive REV tools/optimize/src | tar -x -C /tmp/old`` and
``--compare /tmp/old/tools/optimize/src``) and prints the two side by side. Plans go to
``--work`` (default /tmp/optimize-fragmentation); the profile is only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimize_suite import optimize as run_optimize

FORMULATIONS = ("static", "synchronous")
RATIOS = ("19:1", "39:1", "59:1", "79:1", "99:1")
PROFILE = Path("out/inception/inception_v4/profile")


def optimize(argv: list[str], package: Path | None, timeout: float) -> dict[str, Any]:
    """One autotm-optimize process (optimize_suite's runner): its plan's numbers, or why there
    is none."""
    plan = Path(argv[argv.index("-o") + 1])
    code, stderr, wall = run_optimize(argv, package, timeout)
    if code != 0:
        lines = stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        return {"wall": wall, "error": last if code < 0 else f"exit {code}: {last}"}
    doc = json.loads(plan.read_text())
    notes = doc["reductions"]
    return {
        "wall": wall,
        "rounds": doc["solver"].get("rounds", 1),
        "solve": doc["solver"]["solve_s"],
        "headroom": notes.get("fragmentation_headroom_bytes", 0) / doc["fast_limit_bytes"],
        "predicted": doc["predicted"]["total_s"],
        "fallback": "fallback" in notes,
    }


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    if "error" in result:
        return f"{result['wall']:7.1f}  {result['error'][:60]}"
    return (
        f"{result['rounds']:>2} {100 * result['headroom']:6.1f}% {result['predicted']:9.1f} "
        f"{result['solve']:7.1f} {result['wall']:7.1f}" + (" (numa)" if result["fallback"] else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=PROFILE)
    parser.add_argument("--work", type=Path, default=Path("/tmp/optimize-fragmentation"))
    parser.add_argument("--time-limit", default="300")
    parser.add_argument("--compare", type=Path, help="folder holding another autotm_optimize")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per process")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    parser.add_argument("--ratios", default=",".join(RATIOS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    columns = "rd headroom predicted solve s  wall s"
    print(
        f"{'formulation':12} {'ratio':5} | new: {columns}"
        + (f" | old: {columns}" if args.compare else ""),
        flush=True,
    )
    totals = {"new": 0.0, "old": 0.0}
    failures = 0
    for formulation in args.formulations.split(","):
        for ratio in args.ratios.split(","):
            stem = f"{formulation}-{ratio.replace(':', 'x')}"
            argv = [str(args.profile), "-f", formulation, "--ratio", ratio]
            argv += ["--time-limit", args.time_limit, "-q", "-o"]
            old = None
            if args.compare:
                old_plan = args.work / f"old-{stem}.json"
                old = optimize([*argv, str(old_plan)], args.compare, args.timeout)
                totals["old"] += old["wall"]
            new = optimize([*argv, str(args.work / f"{stem}.json")], None, args.timeout)
            totals["new"] += new["wall"]
            failures += "error" in new
            print(
                f"{formulation:12} {ratio:5} | {cell(new):44}"
                + (f" | {cell(old)}" if args.compare else ""),
                flush=True,
            )
    print(
        f"\ntotal wall seconds: new {totals['new']:.1f}"
        + (f", old {totals['old']:.1f}" if args.compare else "")
        + f"; {failures} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
