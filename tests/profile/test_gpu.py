"""Profiling on a GPU: one all-device configuration per kernel timed with CUDA events, and copy
bandwidths between device and pinned host memory, synchronous and on a second stream.

The first test runs everywhere (a GPU profile without cupy fails in one line and writes
nothing); the others need cupy and a CUDA device and are skipped without them.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_graph.ir import load_graph
from autotm_profile.cli import main
from autotm_profile.configs import Config
from autotm_profile.copies import DIRECTIONS, MODES, bandwidths, measure_copies, pool_needs
from autotm_profile.measure import KernelTimer, pool_sizes
from autotm_profile.profiler import Options, profile
from autotm_profile.timing import Protocol
from autotm_schemas import read_document, read_table

QUICK = Protocol(budget_s=0.005)
SIZES = (1 << 16, 1 << 20)


def test_a_gpu_profile_without_cupy_exits_2_in_one_line_and_writes_nothing(
    tiny_path: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    err = io.StringIO()
    out = tmp_path / "profile"
    argv = [str(tiny_path), "--device", "cuda", "--cache", str(cache_dir), "-q", "-o", str(out)]
    assert main(argv, stderr=err) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "expected cupy" in lines[0], lines
    assert not out.exists()


@pytest.fixture
def cupy() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    return cupy


@pytest.mark.gpu
def test_a_gpu_profile_times_every_kernel_in_device_memory_and_measures_copies(
    tiny_path: Path, tmp_path: Path, cache_dir: Path, cupy: Any
) -> None:
    out = tmp_path / "gpu"
    options = Options(
        tiers=TierOptions(device="cuda"),
        cache_dir=cache_dir,
        quiet=True,
        protocol=QUICK,
        fixed_below=0,
        copy_sizes=SIZES,
    )
    manifest = profile(str(tiny_path), out, options, io.StringIO())
    table = read_table(out / "kernels.parquet", "kernels").to_pylist()
    assert len(table) == manifest["counts"]["unique_kernels"]  # one configuration each
    assert all(set(r["input_tiers"] + r["output_tiers"]) <= {"fast", ""} for r in table)
    assert all(r["median_s"] > 0 and r["provenance"] == "measured" for r in table)
    machine = read_document(out / "machine.json", "machine")
    assert machine["device"] == "cuda" and machine["provenance"] == "measured"
    assert machine["gpu"]["memory_bytes"] > 0 and machine["gpu"]["cuda_runtime"] > 0
    assert machine["tiers"]["fast"]["kind"] == "cuda-device"
    assert machine["tiers"]["slow"]["kind"] == "cuda-pinned-host"
    seen = {(s["direction"], s["mode"], s["bytes"]) for s in machine["copy_samples"]}
    assert seen == {(d, m, b) for d in DIRECTIONS for m in MODES for b in SIZES}
    rates = machine["copy_bandwidth"]
    assert all(rates[d][f"{m}_bytes_per_s"] > 0 for d in DIRECTIONS for m in MODES)


@pytest.mark.gpu
def test_kernels_are_timed_with_events_on_the_device(tiny_path: Path, cupy: Any) -> None:
    graph = load_graph(tiny_path)
    node = next(n for n in graph.nodes if n.op_type in ("Gemm", "MatMul"))
    with open_tiers(TierOptions(device="cuda"), 1 << 22, 1 << 12) as tiers:
        timer = KernelTimer(graph, tiers, QUICK)
        prepared = timer.prepare(node)
        config = Config(
            tuple("fast" if n else "" for n in node.inputs),
            tuple("fast" if n else "" for n in node.outputs),
        )
        stats = timer.time(prepared, config)
    assert 0 < stats.min_s <= stats.median_s <= stats.max_s < 1.0 and stats.samples >= 3


@pytest.mark.gpu
def test_copy_bandwidths_between_device_and_pinned_host_memory(cupy: Any) -> None:
    fast, slow = pool_sizes([pool_needs(SIZES)])
    with open_tiers(TierOptions(device="cuda"), fast, slow) as tiers:
        samples = measure_copies(tiers, SIZES, repeats=2)
    assert len(samples) == len(DIRECTIONS) * len(MODES) * len(SIZES) * 2
    assert all(s.seconds > 0 for s in samples)
    rates = bandwidths(samples)
    assert all(rates[d][f"{m}_bytes_per_s"] > 0 for d in DIRECTIONS for m in MODES)
