"""Bernoulli and RandomUniformLike: reproducible per stream, distinct per node and run seed,
the hash chunked correctly, dtypes and shapes as ONNX says, and sane statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from autotm_execute.kernels import BindError, TensorSpec, bind_node, lookup
from autotm_execute.kernels.stochastic import CHUNK_ROWS, ROW, STREAM_ATTRIBUTE, stream_key
from autotm_graph.ir import load_graph
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper

from tests.execute.kernel_refs import onnx_reference, run_kernel

F32 = np.float32
MASK = 0xFFFFFFFF


def lowbias32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK
    h ^= h >> 15
    h = (h * 0x846CA68B) & MASK
    return h ^ (h >> 16)


def reference_hash(index: int, key: int) -> int:
    """The documented draw of one element, in plain Python integers."""
    return lowbias32(lowbias32(index ^ (key & MASK)) ^ (key >> 32))


def uniform(shape: tuple[int, ...], key: int, dtype: Any = F32, **attrs: Any) -> np.ndarray:
    attrs["dtype"] = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    out = run_kernel(
        "RandomUniformLike",
        [np.zeros(shape, F32)],
        [(shape, dtype)],
        {STREAM_ATTRIBUTE: key, **attrs},
    )[0]
    assert out is not None
    return out


def bernoulli(p: np.ndarray, key: int, dtype: Any = F32, **attrs: Any) -> np.ndarray:
    if np.dtype(dtype) != p.dtype:
        attrs["dtype"] = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    out = run_kernel("Bernoulli", [p], [(p.shape, dtype)], {STREAM_ATTRIBUTE: key, **attrs})[0]
    assert out is not None
    return out


def test_uniform_draws_are_the_documented_hash_across_chunks() -> None:
    size = 2 * CHUNK_ROWS * ROW + 123  # three chunks, the last one partial
    key = stream_key(7, "node", None)
    u32 = uniform((size,), key)
    u64 = uniform((size,), key, np.float64)
    for index in [0, 1, ROW - 1, ROW, CHUNK_ROWS * ROW - 1, CHUNK_ROWS * ROW, size - 1]:
        h = reference_hash(index, key)
        assert u32[index] == (h >> 8) * 2.0**-24
        assert u64[index] == h * 2.0**-32


def reference_hashes(size: int, key: int) -> np.ndarray:
    """:func:`reference_hash` of every index below ``size``, vectorized (uint64 arithmetic)."""

    def mix(h: np.ndarray) -> np.ndarray:
        h = h ^ (h >> np.uint64(16))
        h = (h * np.uint64(0x7FEB352D)) & np.uint64(MASK)
        h = h ^ (h >> np.uint64(15))
        h = (h * np.uint64(0x846CA68B)) & np.uint64(MASK)
        return h ^ (h >> np.uint64(16))

    index = np.arange(size, dtype=np.uint64)
    return mix(mix(index ^ np.uint64(key & MASK)) ^ np.uint64(key >> 32))


SIZES = [1, 2, ROW - 1, ROW, ROW + 1, CHUNK_ROWS * ROW - 1, CHUNK_ROWS * ROW + 1]


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(SIZES) | st.integers(1, CHUNK_ROWS * ROW + 5),
    st.integers(0, 2**64 - 1),
    st.sampled_from([(), (1,), (1, 3)]),
)
def test_every_element_is_its_documented_draw(size: int, key: int, tail: tuple[int, ...]) -> None:
    """Whatever the size (one element, not a multiple of the hash row, partial chunks) and
    shape, element i of the flat output is the draw of index i: no index skipped or repeated
    at row and chunk boundaries."""
    shape = () if size == 1 and not tail else (size, *tail)
    h = reference_hashes(int(np.prod(shape, dtype=np.int64)), key)
    np.testing.assert_array_equal(uniform(shape, key).reshape(-1), (h >> 8) * 2.0**-24)
    np.testing.assert_array_equal(uniform(shape, key, np.float64).reshape(-1), h * 2.0**-32)
    p = np.full(shape, 0.5, F32)
    np.testing.assert_array_equal(bernoulli(p, key, np.bool_).reshape(-1), (h >> 8) < 1 << 23)


def test_same_stream_same_draws_other_stream_other_draws() -> None:
    a, b = uniform((300, 7), 11), uniform((300, 7), 11)
    np.testing.assert_array_equal(a, b)
    assert (uniform((300, 7), 12) != a).mean() > 0.99
    p = np.full((5000,), 0.5, F32)
    assert (bernoulli(p, 11) != bernoulli(p, 12)).mean() > 0.4


def test_without_a_stream_the_seed_attribute_decides() -> None:
    x = np.zeros((64, 64), F32)

    def draw(**attrs: Any) -> np.ndarray:
        out = run_kernel("RandomUniformLike", [x], [(x.shape, F32)], attrs)[0]
        assert out is not None
        return out

    np.testing.assert_array_equal(draw(seed=3.0), draw(seed=3.0))
    assert (draw(seed=3.0) != draw(seed=4.0)).mean() > 0.99
    assert (draw() != draw(seed=3.0)).mean() > 0.99


def test_uniform_range_and_statistics() -> None:
    u = uniform((200_000,), 5, low=-2.0, high=3.0)
    assert u.min() >= -2.0 and u.max() < 3.0
    assert abs(u.mean() - 0.5) < 0.02
    assert abs(u.var() - 25 / 12) < 0.03
    counts = np.histogram(u, bins=20, range=(-2, 3))[0]
    assert np.abs(counts / 10_000 - 1).max() < 0.05  # 10k per bin expected; sd is 1 %


def test_bernoulli_statistics_and_extremes() -> None:
    p = np.full((400, 500), 0.3, F32)
    draws = bernoulli(p, 9)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert abs(draws.mean() - 0.3) < 0.005  # sd of the mean: 0.001
    assert np.abs(draws.mean(axis=1) - 0.3).max() < 0.11  # no structure along rows
    assert np.abs(draws.mean(axis=0) - 0.3).max() < 0.11
    edges = np.array([0.0, 1.0] * 500, F32)
    np.testing.assert_array_equal(bernoulli(edges, 9), edges)
    one = bernoulli(np.array(1.0, F32), 9, np.bool_)
    assert one.shape == () and one.dtype == np.bool_ and bool(one)
    mixed = np.linspace(0, 1, 10_000, dtype=F32)
    assert abs(bernoulli(mixed, 1).mean() - 0.5) < 0.02


@settings(max_examples=20, deadline=None)
@given(
    hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),  # the reference fails on 0-d
    st.sampled_from(
        [None, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.BOOL, TensorProto.INT64]
    ),
    st.sampled_from(["Bernoulli", "RandomUniformLike"]),
)
def test_dtype_and_shape_as_onnx_reference(shape: tuple[int, ...], dtype: Any, op: str) -> None:
    if op == "RandomUniformLike" and dtype in (TensorProto.BOOL, TensorProto.INT64):
        dtype = TensorProto.FLOAT16
    x = np.full(shape, 0.5, F32)
    attrs = {"dtype": dtype} if dtype is not None else {}
    expected = onnx_reference(op, [x], [((), F32)], {**attrs, "seed": 1.0})[0]
    ours = run_kernel(op, [x], [(expected.shape, expected.dtype)], attrs)[0]
    assert ours is not None and ours.shape == expected.shape and ours.dtype == expected.dtype
    if op == "RandomUniformLike":
        assert ours.size == 0 or (ours.min() >= 0 and ours.max() <= 1)


def test_refuses_unsupported_dtypes() -> None:
    spec = TensorSpec((3,), np.dtype(F32))
    with pytest.raises(BindError, match="not supported"):
        lookup("", "RandomUniformLike").bind({"dtype": TensorProto.INT32}, [spec], [spec])
    with pytest.raises(BindError, match="expected a float tensor"):
        lookup("", "Bernoulli").bind({}, [TensorSpec((3,), np.dtype(np.int64))], [spec])


def test_scratch_is_one_chunk_of_two_uint32_arrays() -> None:
    f32 = np.dtype(F32)

    def scratch(shape: tuple[int, ...]) -> int:
        spec = TensorSpec(shape, f32)
        return int(lookup("", "Bernoulli").bind({}, [spec], [spec]).scratch_bytes)

    assert scratch((8, 1, 1, 1)) == 2 * 8 * 4
    assert scratch((64, 197, 768)) == 2 * CHUNK_ROWS * ROW * 4


def _two_bernoulli_model(path: Path) -> Path:
    """Two Bernoulli nodes with the same attributes and a RandomUniformLike."""
    shape = [4, 1, 1, 1]
    nodes = [
        helper.make_node("Bernoulli", ["p"], ["keep1"], name="drop_path1"),
        helper.make_node("Bernoulli", ["p"], ["keep2"], name="drop_path2"),
        helper.make_node("RandomUniformLike", ["p"], ["noise"], name="noise", seed=5.0),
    ]
    infos = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
        for n in ("keep1", "keep2", "noise")
    ]
    graph = helper.make_graph(
        nodes, "stochastic", [helper.make_tensor_value_info("p", TensorProto.FLOAT, shape)], infos
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_bind_node_gives_each_node_and_run_seed_its_own_stream(tmp_path: Path) -> None:
    graph = load_graph(_two_bernoulli_model(tmp_path / "model.onnx"))
    p = np.full((4, 1, 1, 1), 0.5, F32)

    def draws(seed: int) -> list[int]:
        keys = []
        for node in graph.nodes:
            kernel: Any = bind_node(graph, node, seed=seed)
            keys.append(int(kernel.key[0]) | int(kernel.key[1]) << 32)
            out = np.empty(p.shape, F32)
            kernel.run(np, [p], [out], np.empty(kernel.scratch_bytes, np.uint8))
        return keys

    first, again, other = draws(0), draws(0), draws(1)
    assert first == again
    assert len(set(first)) == 3 and not set(first) & set(other)
    assert first[0] == stream_key(0, "keep1", None)
    assert first[2] == stream_key(0, "noise", 5.0)
