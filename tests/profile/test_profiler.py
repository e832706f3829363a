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
from autotm_profile.measure import KernelTimer, penalty_s
from autotm_profile.profiler import Options, profile
from autotm_profile.timing import Protocol, Stats
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
    # emulated slow tier: each unique kernel timed once (all fast), the other rows derived
    assert manifest["configuration_times"] == "derived"
    assert counts["timed"] == counts["unique_kernels"]
    assert counts["configurations"] == len(kernels) == counts["timed"] + counts["derived"]
    assert counts["from_cache"] == 0
    assert counts["discarded_calls"] >= 0 and 0 <= counts["unsettled"] <= counts["timed"]
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
    assert second["counts"]["from_cache"] == first["counts"]["timed"]
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    again = run(tiny_path, tmp_path / "c", cache_dir, recache=True)
    assert again["counts"]["timed"] == first["counts"]["timed"]
    assert again["counts"]["from_cache"] == 0


def test_the_cache_serves_another_network_that_shares_kernels(
    tmp_path: Path, cache_dir: Path
) -> None:
    three = write_tiny_mlp(tmp_path / "three.onnx", classes=3)
    five = write_tiny_mlp(tmp_path / "five.onnx", classes=5)  # same first layer
    run(three, tmp_path / "p3", cache_dir)
    counts = run(five, tmp_path / "p5", cache_dir)["counts"]
    assert 0 < counts["from_cache"] < counts["unique_kernels"]
    assert counts["timed"] + counts["from_cache"] == counts["unique_kernels"]


def test_emulated_rows_are_the_all_fast_timing_plus_the_penalty(
    wide_path: Path, tmp_path: Path, cache_dir: Path, sluggish_model: Path
) -> None:
    """Each kernel is timed once, all fast; every other row is that measurement shifted by the
    executor's penalty for the configuration: exactly, median, min and max, same samples."""
    out = tmp_path / "profile"
    options = TierOptions(device_model=str(sluggish_model))
    manifest = run(wide_path, out, cache_dir, tiers=options)
    graph = load_graph(wide_path)
    nodes = {kernel_key(graph, n): n for n in reversed(graph.nodes)}  # first node of each key
    table = rows(out)
    fast = {r["kernel_key"]: r for r in table if "slow" not in r["input_tiers"] + r["output_tiers"]}
    assert len(fast) == manifest["counts"]["unique_kernels"] == manifest["counts"]["timed"]
    derived = 0
    with open_tiers(options, 4096, 4096) as tiers:
        for row in table:
            config = Config(tuple(row["input_tiers"]), tuple(row["output_tiers"]))
            base = fast[row["kernel_key"]]
            if config.slow_positions == 0:
                assert row["provenance"] == "measured"
                continue
            derived += 1
            assert row["provenance"] == "emulated:sluggish-test"
            penalty = penalty_s(tiers, nodes[row["kernel_key"]], graph, config)
            assert penalty > 0
            for stat in ("median_s", "min_s", "max_s"):
                assert row[stat] == pytest.approx(base[stat] + penalty, rel=1e-12)
            assert row["samples"] == base["samples"]
    assert derived == manifest["counts"]["derived"] > 0


def test_a_change_to_the_kernels_code_invalidates_the_cache(
    tiny_path: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotm_profile import identity

    first = run(tiny_path, tmp_path / "a", cache_dir)
    assert run(tiny_path, tmp_path / "b", cache_dir)["counts"]["timed"] == 0
    parts = first["kernel_implementation"]
    assert parts["kernels_sha256"] == identity.kernels_sha256()
    assert first["cache_namespace"].startswith(first["machine_fingerprint"] + "/")
    monkeypatch.setattr(identity, "kernels_sha256", lambda: "0" * 64)  # conv.py was rewritten
    edited = run(tiny_path, tmp_path / "c", cache_dir)
    assert edited["counts"]["from_cache"] == 0
    assert edited["counts"]["timed"] == first["counts"]["timed"]
    assert edited["cache_namespace"] != first["cache_namespace"]
    assert edited["machine_fingerprint"] == first["machine_fingerprint"]  # same machine
    monkeypatch.undo()
    assert run(tiny_path, tmp_path / "d", cache_dir)["counts"]["timed"] == 0  # still there


def test_a_real_slow_tier_is_measured_not_emulated(
    tiny_path: Path, tmp_path: Path, cache_dir: Path
) -> None:
    slow_dir = tmp_path / "slow"
    slow_dir.mkdir()
    out = tmp_path / "profile"
    manifest = run(tiny_path, out, cache_dir, tiers=TierOptions(slow_dir=str(slow_dir)))
    assert manifest["provenance"] == "measured"
    # a real slow tier: every configuration timed in its own placement
    assert manifest["configuration_times"] == "measured"
    assert manifest["counts"]["timed"] == manifest["counts"]["configurations"]
    assert manifest["counts"]["derived"] == 0
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


@pytest.mark.parametrize("burst_ends", [True, False])
def test_unsettled_timings_are_tried_again_after_the_others(
    tiny_path: Path,
    tmp_path: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    burst_ends: bool,
) -> None:
    """A timing still in a burst when its extension ran out (median far above its fastest
    call) is retried once the other kernels are done; a settled retry replaces it, else the
    profile counts it unsettled and says so."""
    real = KernelTimer.time
    seen: set[tuple[str, str]] = set()

    def bursting(self: KernelTimer, prepared: Any, config: Config, previous: Any = None) -> Stats:
        key = (prepared.node.name, config.text)
        if key not in seen or not burst_ends:
            seen.add(key)
            return Stats(0.3, 0.001, 0.4, 3, discarded=1, settled=False)
        return real(self, prepared, config, previous)

    monkeypatch.setattr(KernelTimer, "time", bursting)
    err = io.StringIO()
    options = Options(cache_dir=cache_dir, protocol=QUICK, copy_sizes=SIZES)
    manifest = profile(str(tiny_path), tmp_path / "p", options, err)
    counts = manifest["counts"]
    assert counts["discarded_calls"] == counts["timed"] * (1 if burst_ends else 2)
    table = rows(tmp_path / "p")
    if burst_ends:
        assert counts["unsettled"] == 0 and "warning" not in err.getvalue()
        assert max(r["median_s"] for r in table if r["provenance"] == "measured") < 0.3
    else:
        assert counts["unsettled"] == counts["timed"]
        assert f"warning: {counts['timed']} timing(s)" in err.getvalue()
