"""autotm-execute memory: peak RSS of a run over the sum of its two pools.

Each network runs in a child process twice, side by side:

* baseline: a child doing everything a run does before it allocates the pools (imports,
  loading the graph and the plan, binding the kernels, materialising the initial values)
  reports its peak RSS;
* run: ``autotm-execute`` itself (3 iterations), whose run.json records the peak RSS before
  --verify would add a second set of pools.

The ratio (run - baseline) / (fast pool + slow pool) says how much memory the executor uses
beyond the pools (target: 1.1 or less). Two placements: all-fast (one pool) and a static mix
with parameters in the slow pool (both pools).

    .venv/bin/python benchmarks/execute_rss.py                       # tiny_mlp, vgg19-mini
    .venv/bin/python benchmarks/execute_rss.py --networks resnet50-mini --batch 16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autotm_graph.ir import load_graph  # noqa: E402

from benchmarks.execute_dispatch import write_network  # noqa: E402
from tests.execute.plans import static_mix  # noqa: E402

BASELINE = """
import resource, sys
from autotm_execute.cli import build_schedule  # every module a run imports
from autotm_execute.executor import bind_kernels
from autotm_execute.values import initial_values
from autotm_graph.ir import load_graph, verify_training_graph
graph = load_graph(sys.argv[1])
verify_training_graph(graph)
plan = sys.argv[2] if len(sys.argv) > 2 else None
schedule = build_schedule(graph, "plan" if plan else "all-fast", plan)
values = initial_values(graph, 0)
kernels = bind_kernels(graph)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def baseline_rss(graph_path: Path, plan: Path | None) -> int:
    argv = [sys.executable, "-c", BASELINE, str(graph_path), *([str(plan)] if plan else [])]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def run_rss(graph_path: Path, plan: Path | None, out: Path) -> tuple[int, int, int]:
    argv = [sys.executable, "-m", "autotm_execute", str(graph_path), "-o", str(out), "-q"]
    argv += ["--iterations", "3", "--device-model", "none"]
    if plan is not None:
        argv += ["--plan", str(plan)]
    subprocess.run(argv, check=True)
    run = json.loads(out.read_text())
    return (
        int(run["peak_rss_bytes"]),
        int(run["pools"]["fast"]["size_bytes"]),
        int(run["pools"]["slow"]["size_bytes"]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["tiny_mlp", "vgg19-mini"])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    mib = 2**20
    print(
        f"{'network':<16}{'placement':<12}{'baseline MiB':>13}{'run MiB':>9}{'fast MiB':>10}"
        f"{'slow MiB':>10}{'(run-base)/pools':>18}{'x 1.1':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.networks:
            graph_path = write_network(name, args.batch, folder)
            plan = folder / f"{name}.plan.json"
            plan.write_text(json.dumps(static_mix(load_graph(graph_path))))
            for placement, plan_path in (("all-fast", None), ("static-mix", plan)):
                base = baseline_rss(graph_path, plan_path)
                peak, fast, slow = run_rss(graph_path, plan_path, folder / "run.json")
                ratio = (peak - base) / max(fast + slow, 1)
                print(
                    f"{name:<16}{placement:<12}{base / mib:>13.1f}{peak / mib:>9.1f}"
                    f"{fast / mib:>10.2f}{slow / mib:>10.2f}{ratio:>18.3f}{ratio / 1.1:>7.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
