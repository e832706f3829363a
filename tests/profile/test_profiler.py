"""End to end: a profile validates, dedups, reuses its cache, charges the model, scales."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_graph.ir import kernel_key, load_graph
from autotm_profile.configs import Config
from autotm_profile.measure import penalty_s
from autotm_profile.profiler import Options, profile
from autotm_profile.timing import Protocol
from autotm_schemas import read_document, read_table

from tests.handmade import write_tiny_mlp

QUICK = Protocol(budget_s=0.005)
SIZES = (1 << 12, 1 << 16)


def run(graph: Path, out: Path, cache: Path, **changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"protocol": QUICK, "fixed_below": 0, "copy_sizes": SIZES}
    options = Options(cache_dir=cache, quiet=True, **{**settings, **changes})
    return profile(str(graph), out, options, io.StringIO())


def rows(out: Path) -> list[dict[str, Any]]:
    table: pa.Table = read_table(out / "kernels.parquet", "kernels")
    return table.to_pylist()


def config_of(row: dict[str, Any]) -> str:
    return Config(tuple(row["input_tiers"]), tuple(row["output_tiers"])).text


def test_a_tiny_profile_validates_and_counts_what_it_reduced(
    tiny_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "profile"
    manifest = run(tiny_path, out, cache_dir)
    read_document(out / "machine.json", "machine")
    assert read_document(out / "profile.json", "profile") == manifest
    nodes = read_table(out / "nodes.parquet", "nodes").to_pylist()
    tensors = read_table(out / "tensors.parquet", "tensors").to_pylist()
    kernels = rows(out)
    counts = manifest["counts"]
    assert counts["nodes"] == len(nodes) == 15 and counts["tensors"] == len(tensors)
    assert counts["unique_kernels"] == len({n["kernel_key"] for n in nodes})
    assert counts["configurations"] == len(kernels) == counts["timed"]
    assert counts["from_cache"] == 0
    assert {n["kernel_key"] for n in nodes} == {r["kernel_key"] for r in kernels}
    assert len({(r["kernel_key"], config_of(r)) for r in kernels}) == len(kernels)
    assert [n["index"] for n in nodes] == list(range(15))
    by_name = {t["name"]: t for t in tensors}
    assert by_name["lr"]["kind"] == "constant" and by_name["lr"]["fixed_tier"] == "fast"
    assert by_name["w1"]["fixed_tier"] is None and by_name["h"]["producer"] == 1
    for row in kernels:
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"] and row["samples"] >= 3


def test_the_second_run_comes_from_the_cache(
    tiny_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    first = run(tiny_path, tmp_path / "a", cache_dir)
    second = run(tiny_path, tmp_path / "b", cache_dir)
    assert second["counts"]["timed"] == 0
    assert second["counts"]["from_cache"] == first["counts"]["configurations"]
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    again = run(tiny_path, tmp_path / "c", cache_dir, recache=True)
    assert again["counts"]["timed"] == first["counts"]["configurations"]
    assert again["counts"]["from_cache"] == 0


def test_the_cache_serves_another_network_that_shares_kernels(
    tmp_path: Path, cache_dir: Path
) -> None:
    three = write_tiny_mlp(tmp_path / "three.onnx", classes=3)
    five = write_tiny_mlp(tmp_path / "five.onnx", classes=5)  # same first layer
    run(three, tmp_path / "p3", cache_dir)
    counts = run(five, tmp_path / "p5", cache_dir)["counts"]
    assert 0 < counts["from_cache"] < counts["configurations"]
    assert counts["timed"] + counts["from_cache"] == counts["configurations"]


def test_slow_tier_configurations_pay_the_device_models_penalty(
    wide_path: Path, tmp_path: Path, cache_dir: Path, sluggish_model: Path
) -> None:
    out = tmp_path / "profile"
    options = TierOptions(device_model=str(sluggish_model))
    run(wide_path, out, cache_dir, tiers=options)
    graph = load_graph(wide_path)
    nodes = {kernel_key(graph, n): n for n in reversed(graph.nodes)}  # first node of each key
    table = rows(out)
    fast = {r["kernel_key"]: r for r in table if "slow" not in r["input_tiers"] + r["output_tiers"]}
    checked = 0
    # Fastest calls, not medians, and no BLAS kernels: on a loaded machine a multithreaded
    # GEMM stalls for milliseconds, which says nothing about the penalty.
    with open_tiers(options, 4096, 4096) as tiers:
        for row in table:
            config = Config(tuple(row["input_tiers"]), tuple(row["output_tiers"]))
            base = fast[row["kernel_key"]]["min_s"]
            if config.slow_positions == 0:
                assert row["provenance"] == "measured"
                continue
            assert row["provenance"] == "emulated:sluggish-test"
            penalty = penalty_s(tiers, nodes[row["kernel_key"]], graph, config)
            if row["op_type"] == "Gemm" or penalty < 10 * base:
                continue  # timing noise would blur the difference
            assert row["min_s"] - base == pytest.approx(penalty, rel=0.1, abs=3 * base)
            checked += 1
    assert checked >= 20


def test_a_real_slow_tier_is_measured_not_emulated(
    tiny_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    slow_dir = tmp_path / "slow"
    slow_dir.mkdir()
    out = tmp_path / "profile"
    manifest = run(tiny_path, out, cache_dir, tiers=TierOptions(slow_dir=str(slow_dir)))
    assert manifest["provenance"] == "measured"
    assert {r["provenance"] for r in rows(out)} == {"measured"}
    machine = read_document(out / "machine.json", "machine")
    assert machine["tiers"]["slow"]["kind"] == "file" and machine["device_model"] is None
    assert machine["provenance"] == "measured"
    assert list(slow_dir.iterdir()) == []  # the pool file is gone with the run


def test_kernel_keys_are_stable_across_runs_and_processes(tiny_path: Path, tmp_path: Path) -> None:
    run(tiny_path, tmp_path / "a", tmp_path / "cache-a")
    run(tiny_path, tmp_path / "b", tmp_path / "cache-b")
    keys_a = read_table(tmp_path / "a" / "nodes.parquet", "nodes").column("kernel_key").to_pylist()
    keys_b = read_table(tmp_path / "b" / "nodes.parquet", "nodes").column("kernel_key").to_pylist()
    assert keys_a == keys_b
    script = (
        "import sys; from autotm_graph.ir import load_graph, kernel_key; "
        "g = load_graph(sys.argv[1]); print(' '.join(kernel_key(g, n) for n in g.nodes))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(tiny_path)], capture_output=True, text=True, check=True
    )
    assert other.stdout.split() == keys_a


def test_measure_batch_scales_batch_kernels_linearly(
    wide_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "profile"
    manifest = run(wide_path, out, cache_dir, measure_batch=16)
    assert manifest["measure_batch"] == 16
    assert manifest["provenance"] == "emulated:optane-dc-2019+scaled:16"
    table = rows(out)
    graph = load_graph(wide_path)
    op_of = {r["kernel_key"]: r["op_type"] for r in table}
    scaled = {r["kernel_key"] for r in table if "scaled:16" in r["provenance"]}
    assert {op_of[k] for k in scaled} >= {"Gemm", "Relu", "ReluGrad", "SoftmaxCrossEntropyLoss"}
    assert "SGDOptimizer" not in {op_of[k] for k in scaled}  # weights do not carry the batch
    # The rule: an all-fast row is its batch-16 timing from the cache, times 64 / 16.
    from autotm_profile.rebatch import rebatch

    small = rebatch(graph, 16)
    db = sqlite3.connect(cache_dir / "kernels.sqlite3")
    cached = {
        (key, config): median
        for key, config, median in db.execute("SELECT kernel_key, config, median_s FROM timings")
    }
    db.close()
    first = {kernel_key(graph, n): n for n in reversed(graph.nodes)}
    for row in table:
        if row["provenance"] != "scaled:16":
            continue  # all-fast rows of batch kernels only
        small_key = kernel_key(small, first[row["kernel_key"]])
        assert row["median_s"] == pytest.approx(4 * cached[(small_key, config_of(row))])
    # Sanity against a direct profile at the full batch: the same order of magnitude for a
    # memory-bound kernel (BLAS kernels on a loaded 2-core machine stall on their threads).
    direct = {(r["kernel_key"], config_of(r)): r for r in rows(_direct(wide_path, tmp_path))}
    relu_grad = next(
        r for r in table if r["op_type"] == "ReluGrad" and r["provenance"] == "scaled:16"
    )
    ratio = (
        relu_grad["median_s"] / direct[(relu_grad["kernel_key"], config_of(relu_grad))]["median_s"]
    )
    assert 0.1 < ratio < 10


def _direct(graph: Path, tmp_path: Path) -> Path:
    out = tmp_path / "direct"
    run(graph, out, tmp_path / "direct-cache")
    return out


@pytest.mark.parametrize(
    ("name", "measure_batch"), [("vgg19-tiny", None), ("resnet50-tiny", None), ("vgg19-tiny", 2)]
)
def test_a_zoo_network_profiles_and_validates(
    zoo_graph: Callable[[str, int], Path],
    tmp_path: Path,
    cache_dir: Path,
    name: str,
    measure_batch: int | None,
) -> None:
    path = zoo_graph(name, 4)
    out = tmp_path / "profile"
    manifest = run(path, out, cache_dir, fixed_below=4096, measure_batch=measure_batch)
    counts = manifest["counts"]
    assert counts["unique_kernels"] < counts["nodes"]  # dedup at work
    table = rows(out)
    assert counts["configurations"] == len(table)
    if measure_batch:
        assert any(r["provenance"].endswith("+scaled:2") for r in table)
        assert {r["op_type"] for r in table if "scaled" in r["provenance"]} >= {"Conv", "MaxPool"}


@pytest.mark.gpu
def test_on_a_gpu_every_kernel_has_one_all_fast_configuration(
    tiny_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device")
    manifest = run(tiny_path, tmp_path / "gpu", cache_dir, tiers=TierOptions(device="cuda"))
    table = rows(tmp_path / "gpu")
    assert len(table) == manifest["counts"]["unique_kernels"]
    assert all(set(r["input_tiers"] + r["output_tiers"]) <= {"fast", ""} for r in table)
    assert read_document(tmp_path / "gpu" / "machine.json", "machine")["device"] == "cuda"
