"""PROFILE_DIR is written whole or not at all, and never over a folder that is not a profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from autotm_execute.machine import machine_fields
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_graph.ir import kernel_key, load_graph
from autotm_profile.configs import fixed_tiers
from autotm_profile.output import (
    PROFILE_FILES,
    kernels_table,
    nodes_table,
    tensors_table,
    write_profile_dir,
)
from autotm_schemas import BadInputError, SchemaError, read_document, read_table

from tests.handmade import write_tiny_mlp

RATES = {"sync_bytes_per_s": 1e9, "async_bytes_per_s": 5e8}


def _contents(tmp_path: Path) -> dict[str, Any]:
    graph = load_graph(write_tiny_mlp(tmp_path / "tiny.onnx"))
    keys = [kernel_key(graph, n) for n in graph.nodes]
    with open_tiers(TierOptions(), 4096, 4096) as tiers:
        fields = machine_fields(tiers)
    machine = {
        "format": "autotm.machine/1",
        **fields,
        "copy_bandwidth": {"slow_to_fast": RATES, "fast_to_slow": RATES},
        "copy_samples": [],
        "provenance": "emulated:optane-dc-2019",
    }
    manifest = {
        "format": "autotm.profile/1",
        "graph": {"path": "tiny.onnx", "sha256": graph.sha256, "batch": 4, "network": "tiny"},
        "tools": [],
        "options": {},
        "started": "2025-01-01T00:00:00+00:00",
        "finished": "2025-01-01T00:00:01+00:00",
        "counts": dict.fromkeys(
            ("nodes", "tensors", "unique_kernels", "configurations", "timed", "from_cache"), 0
        ),
        "provenance": "measured",
    }
    return {
        "kernels": kernels_table(graph, []),
        "nodes": nodes_table(graph, keys, dict.fromkeys(keys, 0)),
        "tensors": tensors_table(graph, fixed_tiers(graph)),
        "machine": machine,
        "manifest": manifest,
    }


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_profile_is_written_whole_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "profile"
    write_profile_dir(target, **_contents(tmp_path))
    assert sorted(p.name for p in target.iterdir()) == sorted(PROFILE_FILES)
    for kind in ("kernels", "nodes", "tensors"):
        read_table(target / f"{kind}.parquet", kind)
    read_document(target / "machine.json", "machine")
    read_document(target / "profile.json", "profile")
    assert (target / "profile.json").stat().st_mode & 0o044  # readable like any output
    assert _leftovers(tmp_path) == []


def test_an_invalid_table_leaves_nothing_behind(tmp_path: Path) -> None:
    contents = _contents(tmp_path)
    contents["tensors"]["kind"][0] = "bogus"
    target = tmp_path / "profile"
    with pytest.raises(SchemaError, match="kind"):
        write_profile_dir(target, **contents)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_an_earlier_profile_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "profile"
    write_profile_dir(target, **_contents(tmp_path))
    contents = _contents(tmp_path)
    contents["manifest"]["graph"]["network"] = "second"
    write_profile_dir(target, **contents)
    assert read_document(target / "profile.json", "profile")["graph"]["network"] == "second"
    assert _leftovers(tmp_path) == []
    # A failed rewrite keeps the earlier profile intact.
    contents["machine"]["device"] = "abacus"
    with pytest.raises(SchemaError):
        write_profile_dir(target, **contents)
    assert read_document(target / "profile.json", "profile")["graph"]["network"] == "second"


@pytest.mark.parametrize("kind", ["foreign file", "plain file"])
def test_a_target_that_is_not_a_profile_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "plain file":
        target.write_text("not a folder")
    else:
        target.mkdir()
        (target / "thesis.tex").write_text("precious")
    with pytest.raises(BadInputError, match="-o"):
        write_profile_dir(target, **_contents(tmp_path))
    if kind == "foreign file":
        assert (target / "thesis.tex").read_text() == "precious"
