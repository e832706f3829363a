"""Loading a PROFILE_DIR: lifetimes, footprint, and precise errors for broken inputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from autotm_optimize.problem import load_problem, scratch_pool_bytes, tensor_pool_bytes
from autotm_schemas import BadInputError, SchemaError

from . import profiles


def test_lifetimes_follow_the_contract(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    by_name = {t.name: t for t in problem.tensors}
    last = problem.n_nodes - 1
    assert (by_name["w"].birth, by_name["w"].death) == (0, last)  # parameters: whole iteration
    assert (by_name["w_new"].birth, by_name["w_new"].death) == (5, last)  # updated: to the end
    assert (by_name["loss"].birth, by_name["loss"].death) == (2, last)  # outputs: to the end
    assert (by_name["img"].birth, by_name["img"].death) == (0, 4)  # inputs: node 0 to last user
    assert (by_name["h"].birth, by_name["h"].death) == (0, 1)  # activations: producer to last user
    assert by_name["lr"].fixed_tier == "fast"


def test_footprint_is_the_all_fast_peak_with_scratch(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    live = problem.live_bytes() + problem.scratch_bytes()
    assert problem.footprint_bytes() == int(live.max())
    # Node 0: w 8, img 6, lr 1, h 12, plus 4 pages of scratch.
    assert int(live[0]) == (8 + 6 + 1 + 12 + 4) * 4096


@pytest.mark.parametrize(
    ("nbytes", "tensor", "scratch"),
    [
        (0, 64, 0),
        (1, 64, 64),
        (100, 128, 128),
        (4095, 4096, 4096),
        (4096, 4096, 4096),
        (4097, 8192, 8192),
    ],
)
def test_pool_sizes_follow_the_shared_alignment_rule(
    nbytes: int, tensor: int, scratch: int
) -> None:
    # Small tensors take cache lines (they share pages); a zero-byte tensor still takes one so
    # that it has an address of its own; no scratch takes no room.
    assert tensor_pool_bytes(nbytes) == tensor
    assert scratch_pool_bytes(nbytes) == scratch


@pytest.mark.parametrize(
    "missing",
    ["kernels.parquet", "nodes.parquet", "tensors.parquet", "machine.json", "profile.json"],
)
def test_a_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    root = profiles.write(tmp_path / "p", profiles.evict_and_fetch())
    (root / missing).unlink()
    with pytest.raises(SchemaError, match=missing.replace(".", r"\.")):
        load_problem(root)


def test_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="PROFILE_DIR"):
        load_problem(tmp_path / "nowhere")


def test_a_wrong_column_names_file_and_field(tmp_path: Path) -> None:
    root = profiles.write(tmp_path / "p", profiles.evict_and_fetch())
    table = pq.read_table(root / "kernels.parquet").rename_columns(
        [
            "kernel_key",
            "op_type",
            "domain",
            "attributes",
            "input_shapes",
            "input_bytes",
            "output_shapes",
            "output_bytes",
            "input_tiers",
            "output_tiers",
            "median",
            "min_s",
            "max_s",
            "samples",
            "provenance",
        ]
    )
    pq.write_table(table, root / "kernels.parquet")
    with pytest.raises(SchemaError, match=r"kernels\.parquet: median_s: expected a column"):
        load_problem(root)


def test_inconsistent_users_are_refused(tmp_path: Path) -> None:
    spec = profiles.evict_and_fetch()
    root = profiles.write(tmp_path / "p", spec)
    table = pq.read_table(root / "tensors.parquet")
    users = table.column("users").to_pylist()
    users[0] = [2]  # x is read by node 3, not node 2
    table = table.set_column(table.schema.get_field_index("users"), "users", [users])
    pq.write_table(table, root / "tensors.parquet")
    with pytest.raises(BadInputError, match=r"tensors\.parquet: users of tensor 'x'"):
        load_problem(root)


def test_a_kernel_without_rows_is_named(tmp_path: Path) -> None:
    root = profiles.write(tmp_path / "p", profiles.evict_and_fetch())
    table = pq.read_table(root / "kernels.parquet")
    keep = [k != "Op:use_x" for k in table.column("kernel_key").to_pylist()]
    pq.write_table(table.filter(keep), root / "kernels.parquet")
    with pytest.raises(BadInputError, match=r"kernel 'Op:use_x' of node 'use_x'"):
        load_problem(root)


def test_copy_rates_come_from_machine_json(tmp_path: Path) -> None:
    spec = profiles.evict_and_fetch()
    spec.copy = profiles.Copy(s2f_sync=2e9, s2f_async=1e9, f2s_sync=4e9, f2s_async=3e9)
    problem = load_problem(profiles.write(tmp_path / "p", spec))
    assert problem.copy.seconds(4_000_000_000, "fast_to_slow", "sync") == pytest.approx(1.0)
    assert problem.copy.seconds(1_000_000_000, "slow_to_fast", "async") == pytest.approx(1.0)


def test_the_profile_path_is_recorded(tmp_path: Path) -> None:
    root = profiles.write(tmp_path / "p", profiles.evict_and_fetch())
    moved = shutil.copytree(root, tmp_path / "q")
    assert load_problem(moved).profile_path == str(moved.resolve())
