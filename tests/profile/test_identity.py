"""The cache namespace: a change to the kernels' source, their package or numpy moves it."""

from __future__ import annotations

from pathlib import Path

import autotm_execute
from autotm_profile.identity import (
    blas_threads,
    implementation,
    kernels_sha256,
    namespace,
    source_sha256,
)
from autotm_profile.timing import PROTOCOL_VERSION


def _package(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "conv.py").write_text("def conv(): return 1\n")
    (folder / "sub" / "gemm.py").write_text("def gemm(): return 2\n")
    (folder / "notes.txt").write_text("not source")
    return folder


def test_the_source_hash_follows_every_edit(tmp_path: Path) -> None:
    folder = _package(tmp_path / "kernels")
    before = source_sha256(folder)
    assert source_sha256(folder) == before  # stable
    (folder / "notes.txt").write_text("still not source")
    assert source_sha256(folder) == before  # only *.py counts
    (folder / "conv.py").write_text("def conv(): return 3\n")  # rewritten
    edited = source_sha256(folder)
    assert edited != before
    (folder / "sub" / "gemm.py").rename(folder / "sub" / "matmul.py")  # renamed
    assert source_sha256(folder) not in (before, edited)
    (folder / "new.py").write_text("")  # an empty new module
    assert len({before, edited, source_sha256(folder)}) == 3


def test_the_namespace_names_machine_and_implementation() -> None:
    parts = implementation()
    assert parts["autotm_execute"] == autotm_execute.__version__
    assert parts["kernels_sha256"] == kernels_sha256() and len(kernels_sha256()) == 64
    assert parts["protocol"] == PROTOCOL_VERSION
    space = namespace("0123456789abcdef", parts)
    assert space.startswith("0123456789abcdef/") and len(space) == 16 + 1 + 16
    assert namespace("0123456789abcdef") == space
    for key, other in [
        ("autotm_execute", "9.9.9"),
        ("kernels_sha256", "f" * 64),
        ("numpy", "0.0"),
        # a setting other than this process's own (make exports OPENBLAS_NUM_THREADS=1)
        (
            "blas_threads",
            "OPENBLAS_NUM_THREADS=3"
            if parts["blas_threads"] != "OPENBLAS_NUM_THREADS=3"
            else "default",
        ),
        ("protocol", PROTOCOL_VERSION + 1),
    ]:
        assert namespace("0123456789abcdef", {**parts, key: other}) != space
    assert namespace("fedcba9876543210", parts) != space


def test_blas_thread_settings_are_named() -> None:
    assert blas_threads({}) == "default"
    assert blas_threads({"OPENBLAS_NUM_THREADS": "1", "HOME": "/x"}) == "OPENBLAS_NUM_THREADS=1"
    parts = implementation()
    assert namespace("f", {**parts, "blas_threads": "OMP_NUM_THREADS=1"}) != namespace("f", parts)
