"""The command line: help, one-line bad-input errors with exit 2, quiet, resume after kill -9."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from autotm_profile.cli import main
from autotm_schemas import read_document, read_table

from tests.handmade import tiny_mlp, write_tiny_mlp
from tests.profile.conftest import FAST_ARGS


def call(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = main(list(argv), stderr=err)
    return code, err.getvalue()


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text and "--measure-batch" in text and "--recache" in text


def test_a_profile_from_the_command_line(tiny_path: Path, tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "profile"
    code, err = call(str(tiny_path), "-o", str(out), "--cache", str(cache_dir), *FAST_ARGS)
    assert code == 0 and err == ""  # --quiet: nothing on stderr
    manifest = read_document(out / "profile.json", "profile")
    assert manifest["options"]["fixed_below"] == 4096
    assert (
        read_table(out / "kernels.parquet", "kernels").num_rows
        == manifest["counts"]["configurations"]
    )


def test_progress_and_counts_go_to_stderr(tiny_path: Path, tmp_path: Path, cache_dir: Path) -> None:
    args = [str(tiny_path), "-o", str(tmp_path / "p"), "--cache", str(cache_dir)]
    code, err = call(*args, "--time-budget", "0.005", "--copy-sizes", "4KiB")
    assert code == 0
    assert "15 nodes -> 15 unique kernels" in err and "profiling:" in err
    code, err = call(*args, "--copy-sizes", "4KiB")
    assert "0 timed" in err and "from cache" in err


def _inference_model(path: Path) -> Path:
    model = tiny_mlp()
    del model.metadata_props[:]
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.onnx"], "missing.onnx: expected an existing ONNX file"),
        (["{bad}"], "expected an ONNX model"),
        (["{inference}"], "expected a training graph"),
        (["{tiny}", "--measure-batch", "0"], "--measure-batch: expected a positive batch"),
        (["{tiny}", "--measure-batch", "9"], "between 1 and the graph's batch 4"),
        (["{tiny}", "--time-budget", "-1"], "--time-budget: expected a positive number"),
        (["{tiny}", "--fixed-below", "lots"], "--fixed-below: expected a byte size"),
        (["{tiny}", "--copy-sizes", "0"], "--copy-sizes: expected positive byte sizes"),
        (["{tiny}", "--device-model", "nonesuch"], "--device-model nonesuch: unknown device model"),
        (["{tiny}", "--slow-numa-node", "-3"], "--slow-numa-node: expected a node number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, cache_dir: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    names = {
        "{bad}": str(tmp_path / "bad.onnx"),
        "{inference}": str(_inference_model(tmp_path / "inference.onnx")),
        "{tiny}": str(write_tiny_mlp(tmp_path / "tiny.onnx")),
        "missing.onnx": str(tmp_path / "missing.onnx"),
    }
    argv = [names.get(a, a) for a in args]
    out = tmp_path / "out"
    code, err = call(*FAST_ARGS, *argv, "-o", str(out), "--cache", str(cache_dir))
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_output_folder_with_other_files_is_refused(tiny_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, err = call(str(tiny_path), "-o", str(out), "--cache", str(tmp_path / "c"), *FAST_ARGS)
    assert code == 2 and "'notes.txt', which is not part of a profile" in err
    assert (out / "notes.txt").read_text() == "keep me"


def _committed(cache: Path) -> int:
    try:
        db = sqlite3.connect(cache / "kernels.sqlite3", timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM timings").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0  # not created yet


def _keys_and_configs(out: Path) -> set[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    table = read_table(out / "kernels.parquet", "kernels").to_pylist()
    return {(r["kernel_key"], tuple(r["input_tiers"]), tuple(r["output_tiers"])) for r in table}


def test_a_killed_profile_resumes_where_it_stopped(wide_path: Path, tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "profile"
    common = [str(wide_path), "-o", str(out), "--cache", str(cache), "--fixed-below", "0"]
    # Slow on purpose: a tolerance nothing meets, so every configuration spends its budget.
    slow = [*common, "--time-budget", "0.05", "--tolerance", "1e-9", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "autotm_profile", *slow])
    deadline = time.monotonic() + 60
    while _committed(cache) < 1 and time.monotonic() < deadline:  # the first kernel is in
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _committed(cache)
    assert not out.exists()  # nothing half-written

    code, err = call(*common, *FAST_ARGS)
    assert code == 0, err
    manifest = json.loads((out / "profile.json").read_text())
    counts = manifest["counts"]
    # emulated slow tier: one measurement per kernel, the other configurations derived
    assert 0 < before <= counts["from_cache"] < counts["unique_kernels"]
    assert counts["timed"] + counts["from_cache"] == counts["unique_kernels"]
    assert counts["timed"] + counts["from_cache"] + counts["derived"] == counts["configurations"]

    reference = tmp_path / "reference"
    code, err = call(
        str(wide_path), "-o", str(reference), "--cache", str(tmp_path / "fresh"),
        "--fixed-below", "0", *FAST_ARGS,
    )  # fmt: skip
    assert code == 0, err
    assert _keys_and_configs(out) == _keys_and_configs(reference)
