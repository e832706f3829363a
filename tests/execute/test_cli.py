"""autotm-execute end to end: records that validate, --verify, 2lm, --simulate, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from autotm_execute.cli import main
from autotm_execute.numa import available_nodes
from autotm_schemas import read_document, read_table

from tests.execute.plans import PLANS, WIDE, load_tiny_mlp
from tests.execute.profiles import make_profile


@pytest.fixture
def mlp(tmp_path: Path) -> tuple[Path, Any]:
    return load_tiny_mlp(tmp_path)


def write_plan(folder: Path, plan: dict[str, Any], name: str = "plan.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(plan))
    return path


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("run"))


def test_an_all_fast_run_writes_a_valid_record(
    mlp: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, graph = mlp
    out = tmp_path / "run.json"
    assert main([str(path), "-o", str(out), "--iterations", "3"]) == 0
    run = read_document(out, "run")
    table = read_table(tmp_path / "run.kernels.parquet", "run-kernels").to_pydict()
    assert run["mode"] == "all-fast" and run["plan"] is None
    assert run["iterations"]["count"] == 3 and run["iterations"]["warmup"] == 1
    assert len(run["iterations"]["seconds"]) == 3
    assert run["kernels_table"] == "run.kernels.parquet"
    assert run["provenance"] == "measured"  # nothing touched the emulated tier
    assert run["loss"] is not None and run["peak_rss_bytes"] > 0
    assert run["pools"]["fast"]["size_bytes"] >= run["pools"]["fast"]["high_water_bytes"] > 0
    assert table["name"] == [n.name for n in graph.nodes]
    assert all(t == ["fast"] * len(t) for t in table["input_tiers"])
    assert run["kernel_s"] == pytest.approx(sum(table["median_s"]))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "median" in captured.err


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_every_plan_kind_verifies(mlp: tuple[Path, Any], tmp_path: Path, kind: str) -> None:
    path, graph = mlp
    plan = PLANS[kind](graph)
    out = tmp_path / "run.json"
    argv = [str(path), "--plan", str(write_plan(tmp_path, plan)), "--verify", "-q"]
    assert main([*argv, "--iterations", "2", "-o", str(out)]) == 0
    run = read_document(out, "run")
    assert run["verify"]["identical"] is True and run["verify"]["loss"] == run["loss"]
    assert run["plan"]["formulation"] == plan["formulation"]
    moved = sum(
        run["moves"][d][k]["count"]
        for d in ("slow_to_fast", "fast_to_slow")
        for k in ("sync", "async")
    )
    assert moved == len(plan["moves"])
    if kind == "all-slow":
        assert run["provenance"] == "emulated:optane-dc-2019"
        table = read_table(tmp_path / "run.kernels.parquet", "run-kernels").to_pydict()
        assert set(table["provenance"]) == {"emulated:optane-dc-2019"}


def test_a_broken_plan_fails_verify_and_writes_nothing(
    mlp: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, graph = mlp
    plan = PLANS["sync-evict-fetch"](graph)
    plan["moves"] = []  # the fetched copy is never filled
    argv = [str(path), "--plan", str(write_plan(tmp_path, plan)), "--verify", "-q"]
    assert main([*argv, "-o", str(tmp_path / "run.json")]) == 1
    err = capsys.readouterr().err
    assert "verify failed" in err and len(err.strip().splitlines()) == 1
    assert outputs(tmp_path) == []


def test_2lm_records_the_cache(tmp_path: Path) -> None:
    # Wide enough that the pool is several times the 8 KiB cache (tiny_mlp's small tensors share
    # pages: its whole pool is under a page).
    path, _ = load_tiny_mlp(tmp_path, **WIDE)
    out = tmp_path / "run.json"
    assert main([str(path), "--mode", "2lm", "--fast-memory", "8KiB", "-q", "-o", str(out)]) == 0
    run = read_document(out, "run")
    assert run["mode"] == "2lm" and run["fast_limit_bytes"] == 8192
    assert run["cache"]["lines"] == 2
    assert run["cache"]["steady_iteration"]["misses"] > 0
    assert run["provenance"] == "emulated:optane-dc-2019"
    assert run["provenance_detail"]["cache"] == "simulated"
    assert run["pools"]["fast"]["size_bytes"] == 0 and run["pools"]["slow"]["size_bytes"] > 0
    assert run["tiers"]["fast"]["capacity_bytes"] == 8192


def test_2lm_by_ratio_and_on_real_hardware(mlp: tuple[Path, Any], tmp_path: Path) -> None:
    path, graph = mlp
    out = tmp_path / "run.json"
    assert main([str(path), "--mode", "2lm", "--ratio", "1:1", "-q", "-o", str(out)]) == 0
    assert read_document(out, "run")["fast_limit_bytes"] == graph.peak_live_bytes() // 2
    argv = [str(path), "--mode", "2lm", "--device-model", "none", "-q", "-o", str(out)]
    assert main(argv) == 0
    run = read_document(out, "run")
    assert run["cache"] is None and run["provenance"] == "measured"


def test_simulate_writes_a_simulated_record(mlp: tuple[Path, Any], tmp_path: Path) -> None:
    path, graph = mlp
    profile = make_profile(graph, tmp_path / "profile")
    plan = write_plan(tmp_path, PLANS["async-evict-fetch"](graph))
    out = tmp_path / "run.json"
    argv = [str(path), "--plan", str(plan), "--simulate", "--profile", str(profile), "-q"]
    assert main([*argv, "-o", str(out)]) == 0
    run = read_document(out, "run")
    assert run["provenance"] == "emulated:optane-dc-2019+simulated"
    assert run["profile"]["machine_fingerprint"] == "0123456789abcdef"
    assert run["iterations"]["count"] == 1 and run["loss"] is None
    table = read_table(tmp_path / "run.kernels.parquet", "run-kernels").to_pydict()
    assert all("simulated" in p for p in table["provenance"])


def _overlap(plan: dict[str, Any]) -> None:
    h = next(t for t in plan["tensors"] if t["name"] == "h")
    h_pre = next(t for t in plan["tensors"] if t["name"] == "h_pre")
    h["residencies"][0]["offset"] = h_pre["residencies"][0]["offset"]


def _huge(plan: dict[str, Any]) -> None:
    plan["pools"]["fast_bytes"] = 1 << 50


BAD_PLANS = [
    ("hash", lambda p: p.update(graph_sha256="f" * 64), [], "graph_sha256"),
    ("overlap", _overlap, [], "overlap in the fast pool"),
    (
        "pool above fast memory",
        lambda p: None,
        ["--fast-memory", "256"],
        "larger than the fast tier",
    ),
    ("pool above host memory", _huge, [], "available"),
    ("unknown device model", lambda p: None, ["--device-model", "optane-1999"], "--device-model"),
    ("missing numa node", lambda p: None, ["--slow-numa-node", "999"], "--slow-numa-node 999"),
    ("missing slow dir", lambda p: None, ["--slow-dir", "/nonexistent/dir"], "--slow-dir"),
    ("warmup", lambda p: None, ["--iterations", "2", "--warmup", "2"], "--warmup"),
    ("stdout", lambda p: None, ["-o", "-"], "-o: expected a file path"),
    (
        "gpu rule without cupy",
        lambda p: None,
        ["--device", "cuda"],
        "expected fast on --device cuda",
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "extra", "message"), BAD_PLANS, ids=[c[0] for c in BAD_PLANS]
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    mlp: tuple[Path, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    edit: Any,
    extra: list[str],
    message: str,
) -> None:
    path, graph = mlp
    plan = PLANS["all-slow" if case == "gpu rule without cupy" else "static-mix"](graph)
    edit(plan)
    plan_path = write_plan(tmp_path, plan, "p.json")
    argv = [str(path), "--plan", str(plan_path), "-q", "-o", str(tmp_path / "run.json")]
    if "-o" in extra:
        argv = argv[:-2]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert outputs(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "2lm"], "--fast-memory"),
        (["--mode", "plan"], "--plan"),
        (["--mode", "unified"], "--device cuda"),
        (["--simulate"], "--profile"),
        (["--ratio", "4:1"], "--ratio"),
        (["--mode", "2lm", "--slow-dir", "/tmp"], "drop --slow-dir"),
    ],
)
def test_bad_option_combinations_exit_2(
    mlp: tuple[Path, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    path, _ = mlp
    assert main([str(path), *argv, "-q", "-o", str(tmp_path / "run.json")]) == 2
    assert message in capsys.readouterr().err
    assert outputs(tmp_path) == []


def test_a_missing_graph_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none.onnx"), "-o", str(tmp_path / "run.json")]) == 2
    assert "none.onnx" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit codes" in text and "verify failed" in text and "--slow-numa-node" in text


def test_a_slow_dir_run_records_the_file_tier(mlp: tuple[Path, Any], tmp_path: Path) -> None:
    path, graph = mlp
    slow = tmp_path / "slow"
    slow.mkdir()
    plan = write_plan(tmp_path, PLANS["all-slow"](graph))
    out = tmp_path / "run.json"
    assert (
        main(
            [
                str(path),
                "--plan",
                str(plan),
                "--slow-dir",
                str(slow),
                "--verify",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    run = read_document(out, "run")
    assert run["tiers"]["slow"]["kind"] == "file" and run["tiers"]["slow"]["dax"] is False
    assert run["provenance"] == "measured" and run["device_model"] is None
    assert list(slow.iterdir()) == []


@pytest.mark.skipif(0 not in available_nodes(), reason="no NUMA node 0 on this machine")
def test_a_numa_run_records_the_node(mlp: tuple[Path, Any], tmp_path: Path) -> None:
    path, graph = mlp
    plan = write_plan(tmp_path, PLANS["static-mix"](graph))
    out = tmp_path / "run.json"
    code = main(
        [str(path), "--plan", str(plan), "--slow-numa-node", "0", "--verify", "-q", "-o", str(out)]
    )
    if code == 2:
        pytest.skip("mbind refused on this machine")
    assert code == 0
    run = read_document(out, "run")
    assert run["tiers"]["slow"] == {**run["tiers"]["slow"], "kind": "numa", "numa_node": 0}
    assert run["provenance"] == "measured"


def test_small_tensors_sharing_a_page_run_and_verify(tmp_path: Path) -> None:
    path, graph = load_tiny_mlp(tmp_path, **WIDE)
    plan = PLANS["static-mix"](graph)
    pages: dict[tuple[str, int], list[str]] = {}
    for entry in plan["tensors"]:
        for r in entry["residencies"]:
            if entry["bytes"] < 4096:
                pages.setdefault((r["tier"], r["offset"] // 4096), []).append(entry["name"])
    assert max(len(names) for names in pages.values()) >= 2  # a page holding two tensors
    out = tmp_path / "run.json"
    argv = [str(path), "--plan", str(write_plan(tmp_path, plan)), "--verify", "-q", "-o", str(out)]
    assert main(argv) == 0
    run = read_document(out, "run")
    assert run["verify"]["identical"] is True
    assert run["pools"]["fast"]["size_bytes"] == plan["pools"]["fast_bytes"]  # no scratch here


def test_a_large_tensor_at_a_cache_line_offset_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, graph = load_tiny_mlp(tmp_path, **WIDE)
    plan = PLANS["static-mix"](graph)
    index = next(i for i, t in enumerate(plan["tensors"]) if t["bytes"] >= 4096)
    plan["tensors"][index]["residencies"][0]["offset"] += 64
    argv = [
        str(path),
        "--plan",
        str(write_plan(tmp_path, plan)),
        "-q",
        "-o",
        str(tmp_path / "run.json"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"tensors[{index}].residencies[0].offset: expected a multiple of 4096" in err[0]
    assert outputs(tmp_path) == []
