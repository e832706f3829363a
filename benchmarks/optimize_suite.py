"""Wall time of the `make reproduce` default suite's optimizer runs, on real mini profiles.

    python benchmarks/optimize_suite.py [--profiles DIR] [--work DIR] [--time-limit 30]

The default suite (suites/default.mk) optimizes the four mini networks (batch 16) with numa,
static and synchronous at 8:1, 4:1 and 1:1, and inception_v4-mini also at 2:1, 3:1, 5:1, 7:1,
9:1, 1:2 and 1:3: 60 runs of `autotm-optimize PROFILE -f F --ratio R --time-limit 30 -q -o
plan.json`, each a process of its own, as make starts them. This script runs exactly those,
one after the other, and prints per run the wall time, the solver's status, the solves
(rounds), the fragmentation headroom, and the plan's predicted time against the NUMA
baseline's; then the totals per formulation.

Profiles come from ``--profiles DIR`` (``DIR/NET.profile`` for NET in vgg19, resnet200,
inception_v4, densenet264), else they are made in ``--work`` with autotm-graph and
autotm-profile (a private kernel cache; a few seconds each).

``--compare DIR`` also runs each command with another copy of the package first on the path
(``DIR/autotm_optimize``, e.g. ``git archive REV tools/optimize/src | tar -x``) and prints the
two wall times side by side, with ``--timeout`` seconds for each of its runs; ``--networks`` and
``--formulations`` pick a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NETWORKS = ("vgg19", "resnet200", "inception_v4", "densenet264")
FORMULATIONS = ("numa", "static", "synchronous")
RATIOS = ("8:1", "4:1", "1:1")
INCEPTION_RATIOS = ("2:1", "3:1", "5:1", "7:1", "9:1", "1:2", "1:3")


def tool(name: str) -> str:
    """A console script of this environment (autotm-graph, autotm-profile)."""
    return str(Path(sys.executable).with_name(f"autotm-{name}"))


def make_profiles(work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"AUTOTM_CACHE_DIR": str(work / "cache")}
    for net in NETWORKS:
        profile = work / f"{net}.profile"
        if (profile / "profile.json").exists():
            continue
        model, train = work / f"{net}.onnx", work / f"{net}.train.onnx"
        for argv in (
            [tool("graph"), "zoo", f"{net}-mini", "--batch", "16", "-q", "-o", str(model)],
            [tool("graph"), "train", str(model), "--batch", "16", "-o", str(train)],
            [tool("profile"), str(train), "-o", str(profile), "--quiet"],
        ):
            subprocess.run(argv, check=True, env=env)
    return work


def runs() -> list[tuple[str, str, str]]:
    out = [(n, f, r) for n in NETWORKS for f in FORMULATIONS for r in RATIOS]
    out += [("inception_v4", f, r) for f in FORMULATIONS for r in INCEPTION_RATIOS]
    return out


def optimize(
    argv: list[str], package: Path | None, timeout: float | None
) -> tuple[int, str, float]:
    """Run autotm-optimize as make would (a process of its own): exit code, stderr, seconds."""
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), env.get("PYTHONPATH")]))
    begin = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "autotm_optimize", *argv],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return -1, f"over the {timeout} s timeout", time.monotonic() - begin
    return done.returncode, done.stderr, time.monotonic() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=Path, help="folder with NET.profile directories")
    parser.add_argument("--work", type=Path, default=Path("out/optimize-suite"))
    parser.add_argument("--time-limit", default="30")
    parser.add_argument("--compare", type=Path, help="folder holding another autotm_optimize")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    args = parser.parse_args()
    networks = args.networks.split(",")
    formulations = args.formulations.split(",")
    profiles = args.profiles or make_profiles(args.work)
    plans = args.work / "plans"
    plans.mkdir(parents=True, exist_ok=True)
    totals: dict[str, float] = {}
    numa_total: dict[tuple[str, str], float] = {}
    failures = 0
    print(
        f"{'network':13} {'formulation':12} {'ratio':5} {'wall s':>7} {'status':9} "
        f"{'rounds':>6} {'headroom':>9} {'solve s':>7} {'vs numa':>8}"
        + (f" {'before s':>9} {'before':10}" if args.compare else ""),
        flush=True,
    )
    selected = [r for r in runs() if r[0] in networks and r[1] in formulations]
    started = time.monotonic()
    for net, formulation, ratio in selected:
        plan = plans / f"{net}-{formulation}-{ratio.replace(':', 'x')}.json"
        argv = [str(profiles / f"{net}.profile"), "-f", formulation, "--ratio", ratio]
        argv += ["--time-limit", args.time_limit, "-q", "-o", str(plan)]
        before = ""
        if args.compare:
            old_plan = plans / f"before-{plan.name}"
            old_argv = [*argv[:-1], str(old_plan)]
            code, err, old_wall = optimize(old_argv, args.compare, args.timeout)
            outcome = "ok" if code == 0 else ("timeout" if code < 0 else f"exit {code}")
            before = f" {old_wall:9.2f} {outcome:10}"
            if code > 0:
                before += " " + err.strip().splitlines()[-1][:90] if err.strip() else ""
        code, err, wall = optimize(argv, None, None)
        totals[formulation] = totals.get(formulation, 0.0) + wall
        if code != 0:
            failures += 1
            print(
                f"{net:13} {formulation:12} {ratio:5} {wall:7.2f} exit {code}: "
                f"{err.strip()[:120]}{before}",
                flush=True,
            )
            continue
        doc = json.loads(plan.read_text())
        solver, notes = doc["solver"], doc["reductions"]
        total = doc["predicted"]["total_s"]
        if formulation == "numa":
            numa_total[(net, ratio)] = total
        versus = total / numa_total[(net, ratio)] if (net, ratio) in numa_total else float("nan")
        headroom = notes.get("fragmentation_headroom_bytes", 0) / doc["fast_limit_bytes"]
        print(
            f"{net:13} {formulation:12} {ratio:5} {wall:7.2f} {solver['status']:9} "
            f"{solver.get('rounds', 1):>6} {100 * headroom:8.2f}% {solver['solve_s']:7.2f} "
            f"{versus:8.4f}{before}" + ("  (fallback)" if "fallback" in notes else ""),
            flush=True,
        )
    elapsed = time.monotonic() - started
    print(
        "\ntotal wall seconds by formulation: "
        + ", ".join(f"{k} {v:.1f}" for k, v in totals.items())
    )
    print(
        f"all {len(selected)} runs: {sum(totals.values()):.1f} s of optimizer wall time "
        f"({elapsed:.1f} s with the comparison's), {failures} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
