"""autotm_graph.train.rebatch: Reshape targets of a static export mapped to another batch,
and the export's own shapes read back from a file."""

from __future__ import annotations

import numpy as np
import pytest
from autotm_graph.train.rebatch import export_shapes, regroup, resolve_reshape

from .train_oracle import GraphMaker


@pytest.mark.parametrize(
    ("before", "target", "after", "expected"),
    [
        ((2, 12), (2, 3, 4), (5, 12), [5, 3, 4]),  # the batch stays its own axis
        ((197, 2, 768), (197, 24, 64), (197, 3, 768), [197, 36, 64]),  # [T, N*heads, d]
        ((8, 49, 96), (2, 4, 49, 96), (12, 49, 96), [3, 4, 49, 96]),  # N*windows split
        ((2, 4, 7, 7, 96), (8, 49, 96), (3, 4, 7, 7, 96), [12, 49, 96]),  # and merged
        ((2, 64, 1, 1), (2, 64), (3, 64, 1, 1), [3, 64]),  # trailing ones
        ((2, 1, 768), (2, 768), (3, 1, 768), [3, 768]),
        ((2, 768), (1536,), (3, 768), [2304]),  # flattened whole
        ((4, 6), (4, 6), (4, 6), [4, 6]),  # nothing changed
    ],
)
def testregroup(
    before: tuple[int, ...], target: tuple[int, ...], after: tuple[int, ...], expected: list[int]
) -> None:
    assert regroup(before, target, after) == expected


def test_regroup_gives_up_when_sizes_do_not_divide() -> None:
    assert regroup((2, 3), (6,), (2, 3)) == [6]
    assert regroup((2, 5), (10,), (3, 5)) == [15]
    assert regroup((4, 3), (2, 6), (3, 3)) is None  # 2 * 9 / 12 is no integer


@pytest.mark.parametrize(
    ("target", "allowzero", "expected"),
    [([0, -1], 0, (2, 12)), ([2, 0, 4], 1, None), ([-1, 3, 4], 0, (2, 3, 4)), ([5, -1], 0, None)],
)
def test_resolve_reshape(
    target: list[int], allowzero: int, expected: tuple[int, ...] | None
) -> None:
    assert resolve_reshape((2, 3, 4), np.array(target), allowzero) == expected


def test_export_shapes_from_inference_without_value_info() -> None:
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("Conv", ["x", g.param([5, 3, 3, 3])], kernel_shape=[3, 3])
    t = g.op("Reshape", [t, g.const([2, -1])])
    shapes = export_shapes(g.model(t))
    assert shapes["x"] == (2, 3, 4, 4) and shapes[t] == (2, 20)
