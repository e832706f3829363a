"""NUMA nodes: discovery from sysfs, refusing missing nodes, binding a pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_execute import numa
from autotm_execute.pools import AnonymousPool
from autotm_schemas import BadInputError


def fake_sysfs(root: Path, free_kb: dict[int, int]) -> Path:
    for node, free in free_kb.items():
        folder = root / f"node{node}"
        folder.mkdir(parents=True)
        folder.joinpath("meminfo").write_text(
            f"Node {node} MemTotal:       {2 * free} kB\nNode {node} MemFree:        {free} kB\n"
        )
    (root / "possible").write_text("0-1\n")
    return root


def test_nodes_are_read_from_sysfs(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, {0: 100, 2: 50})
    assert numa.available_nodes(root) == [0, 2]
    assert numa.node_meminfo(2, root) == {"MemTotal": 100 * 1024, "MemFree": 50 * 1024}


def test_a_missing_node_is_refused_naming_those_that_exist(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, {0: 100})
    with pytest.raises(BadInputError, match=r"--slow-numa-node 3: .*node0"):
        numa.check_node(3, 10, root)


def test_a_node_without_room_is_refused(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, {0: 1})
    with pytest.raises(BadInputError, match="bytes free"):
        numa.check_node(0, 1 << 20, root)


def test_no_sysfs_means_no_nodes(tmp_path: Path) -> None:
    assert numa.available_nodes(tmp_path / "none") == []


@pytest.mark.skipif(0 not in numa.available_nodes(), reason="no NUMA node 0 on this machine")
def test_a_pool_bound_to_node_0_lives_there() -> None:
    try:
        pool = AnonymousPool(4 * 4096, numa_node=0)
    except BadInputError as exc:
        pytest.skip(f"mbind refused here: {exc}")
    view = pool.view(0, (16,), np.float32)
    view[...] = 1.0  # touch: pages are placed on first touch
    assert numa.node_of(int(view.ctypes.data)) in (0, -1)
    pool.close()
