"""autotm_graph.train.rebatch: Reshape targets of a static export mapped to another batch,
and the export's own shapes read back from a file."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from autotm_graph.train.rebatch import (
    BatchAxis,
    export_shapes,
    regroup,
    reshape_axis,
    resolve_reshape,
)
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("shape", "where", "out", "expected"),
    [
        ((2, 2), BatchAxis(1), (4,), BatchAxis(0, 1)),  # [T, N] flattened: the batch inner
        ((4,), BatchAxis(0, 1), (2, 2), BatchAxis(1)),  # and back: the inner axis, not T
        ((2, 2), BatchAxis(0), (4,), BatchAxis(0, 2)),  # [N, T] flattened: the batch outer
        ((4,), BatchAxis(0, 2), (2, 2), BatchAxis(0)),
        ((8, 7, 7, 4), BatchAxis(0, 4), (2, 2, 2, 7, 7, 4), BatchAxis(0)),  # Swin's windows
        ((2, 64, 1, 1), BatchAxis(0), (2, 64), BatchAxis(0)),
        ((2, 3), BatchAxis(0), (3, 2), None),  # each sample spread over two rows
        ((2, 5), BatchAxis(0), (5, 2), None),
    ],
)
def test_reshape_axis(
    shape: tuple[int, ...], where: BatchAxis, out: tuple[int, ...], expected: BatchAxis | None
) -> None:
    assert reshape_axis(shape, where, out, 2) == expected


def _bounds(draw: st.DrawFn, n: int) -> list[int]:
    """Cut points grouping ``n`` factors into consecutive axes."""
    cuts = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    return [0, *sorted(cuts), n]


@st.composite
def reshapes(draw: st.DrawFn) -> tuple[int, list[int], list[int], BatchAxis, int]:
    """A batch factor among small prime factors, grouped into an input shape (where the batch
    lies is known from the grouping) and, shuffled, into an output shape; and the batch
    digit's row-major stride."""
    batch = draw(st.sampled_from([2, 3]))
    factors = draw(st.lists(st.sampled_from([2, 3, 5]), max_size=4))
    at = draw(st.integers(0, len(factors)))
    factors.insert(at, batch)
    bounds = _bounds(draw, len(factors))
    shape = [int(np.prod(factors[a:b])) for a, b in itertools.pairwise(bounds)]
    axis = next(i for i, b in enumerate(bounds[1:]) if at < b)
    where = BatchAxis(axis, int(np.prod(factors[at + 1 : bounds[axis + 1]])))
    shuffled = draw(st.permutations(factors))
    bounds = _bounds(draw, len(shuffled))
    out = [int(np.prod(shuffled[a:b])) for a, b in itertools.pairwise(bounds)]
    return batch, shape, out, where, int(np.prod(factors[at + 1 :]))


@settings(max_examples=60, deadline=None)
@given(reshapes())
def test_reshape_axis_finds_the_sample_index(
    case: tuple[int, list[int], list[int], BatchAxis, int],
) -> None:
    """Label every element with its sample (its batch digit in row-major order) and reshape:
    the answer's axis holds the label as (index // inner) % batch, and no axis does when the
    answer is None."""
    batch, shape, out, where, stride = case
    total = int(np.prod(shape))
    labels = ((np.arange(total) // stride) % batch).reshape(shape)
    k = where.axis
    index = np.arange(shape[k]).reshape([-1 if i == k else 1 for i in range(len(shape))])
    assert (labels == (index // where.inner) % batch).all()  # the case's own BatchAxis
    moved = labels.reshape(out)
    found = reshape_axis(shape, where, out, batch)
    if found is None:
        for i in range(len(out)):  # no axis alone determines the sample
            others = tuple(j for j in range(len(out)) if j != i)
            low, high = moved.min(axis=others), moved.max(axis=others)
            assert not (low == high).all()
    else:
        k = found.axis
        index = np.arange(out[k]).reshape([-1 if i == k else 1 for i in range(len(out))])
        assert (moved == (index // found.inner) % batch).all()
        assert out[k] % (batch * found.inner) == 0
