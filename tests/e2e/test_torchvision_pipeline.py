"""Real torchvision exports through every tool but the report: train, profile, optimize, execute.

tests/graph/test_train_torchvision.py checks that `train` accepts the whole corpus; this checks
that what it writes also runs: profiled, planned with movement, and executed under the plan
bit-identically to the all-fast iteration (`--verify`), for one network of each kind of op the
convolutional zoo never exercises: attention with GELU, LayerNorm and a class token (ViT),
shifted windows with padding and stochastic depth (Swin, TorchScript training-mode export, so
its random ops run), and depthwise convolutions with layer scales (ConvNeXt).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from autotm_execute.cli import main as execute_main
from autotm_graph.cli import main as graph_main
from autotm_optimize.cli import main as optimize_main
from autotm_profile.cli import main as profile_main

from tests.e2e.test_pipeline import call, run_cli

CORPUS = Path(__file__).resolve().parents[1] / "graph" / "data" / "torchvision"
BATCH = 4

# (export, formulation, ratio): ratios these tiny graphs are feasible at (a ConvNeXt stem's
# ConvGrad scratch alone is more than a fifth of its footprint at batch 4).
CASES = [
    ("vit_torchscript_train", "synchronous", "4:1"),
    ("swin_torchscript_train", "static", "4:1"),
    ("convnext_dynamo_eval", "synchronous", "1:1"),
]


def exported(name: str, folder: Path) -> Path:
    plain = CORPUS / f"{name}.onnx"
    if plain.exists():
        return plain
    target = folder / f"{name}.onnx"
    target.write_bytes(gzip.decompress((CORPUS / f"{name}.onnx.gz").read_bytes()))
    return target


@pytest.mark.parametrize(("name", "formulation", "ratio"), CASES)
def test_export_runs_under_a_plan_bit_identically(
    tmp_path: Path, name: str, formulation: str, ratio: str
) -> None:
    train, profile = tmp_path / "train.onnx", tmp_path / "profile"
    plan, run = tmp_path / "plan.json", tmp_path / "run.json"
    source = exported(name, tmp_path)
    run_cli(graph_main, ["train", str(source), "--batch", str(BATCH), "-o", str(train)])
    call(
        profile_main,
        [str(train), "--quiet", "--cache", str(tmp_path / "cache"), "-o", str(profile)],
    )
    argv = [str(profile), "--formulation", formulation, "--ratio", ratio, "--quiet"]
    call(optimize_main, [*argv, "-o", str(plan)])
    argv = [str(train), "--plan", str(plan), "--iterations", "2", "--warmup", "1", "--verify"]
    run_cli(execute_main, [*argv, "--quiet", "-o", str(run)])

    record = json.loads(run.read_text())
    assert record["verify"]["identical"] is True  # placement never changes numerics
    assert record["plan"]["formulation"] == formulation
    # The plan really used both tiers: the slow pool holds tensors, the fast one stays in budget.
    pools = record["pools"]
    assert pools["slow"]["high_water_bytes"] > 0
    assert pools["fast"]["high_water_bytes"] <= record["plan"]["fast_limit_bytes"]
    if formulation == "synchronous":
        moved = [kind["count"] for way in record["moves"].values() for kind in way.values()]
        assert sum(moved) > 0, "a synchronous plan at this budget moves tensors"
