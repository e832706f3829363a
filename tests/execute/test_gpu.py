"""The GPU path: device memory fast, pinned host memory slow, moves on a CUDA stream.

Skipped without cupy and a CUDA device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from autotm_schemas import read_document

from tests.execute.plans import PLANS, load_tiny_mlp

cupy = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_a_device() -> None:
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")


def test_all_fast_on_the_gpu(tmp_path: Path) -> None:
    from autotm_execute.cli import main

    path, _ = load_tiny_mlp(tmp_path)
    out = tmp_path / "run.json"
    assert main([str(path), "--device", "cuda", "--verify", "-q", "-o", str(out)]) == 0
    run = read_document(out, "run")
    assert run["device"] == "cuda" and run["tiers"]["fast"]["kind"] == "cuda-device"


@pytest.mark.parametrize("kind", ["sync-evict-fetch", "async-evict-fetch", "async-to-end"])
def test_plans_with_moves_verify_on_the_gpu(tmp_path: Path, kind: str) -> None:
    from autotm_execute.cli import main

    path, graph = load_tiny_mlp(tmp_path)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLANS[kind](graph)))
    out = tmp_path / "run.json"
    argv = [str(path), "--plan", str(plan), "--device", "cuda", "--verify", "-q", "-o", str(out)]
    assert main([*argv, "--iterations", "3"]) == 0
    run = read_document(out, "run")
    assert run["verify"]["identical"] is True
    assert run["tiers"]["slow"]["kind"] == "cuda-pinned-host"


def test_unified_memory_runs(tmp_path: Path) -> None:
    from autotm_execute.cli import main

    path, _ = load_tiny_mlp(tmp_path)
    out = tmp_path / "run.json"
    argv = [str(path), "--mode", "unified", "--device", "cuda", "--verify", "-q", "-o", str(out)]
    assert main(argv) == 0
    assert read_document(out, "run")["mode"] == "unified"
