"""The rewrites of autotm_graph.train.lower compute what the op they replace computes:
Einsum against numpy.einsum over generated equations, GatherND against numpy indexing,
ReduceL2 and tanh-GELU against their formulas. Each lowered node list is run with the ONNX
reference evaluator."""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from autotm_graph.train import lower
from autotm_graph.train.graph import TensorInfo, WorkGraph
from autotm_schemas import BadInputError
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

Lowering = Callable[[WorkGraph, onnx.NodeProto], list[onnx.NodeProto]]


def _run(
    lowering: Lowering, node: onnx.NodeProto, inputs: dict[str, np.ndarray]
) -> tuple[np.ndarray, list[onnx.NodeProto]]:
    """Lower ``node`` with ``inputs`` as graph inputs (or constants, named ``c*``) and run it."""
    g = WorkGraph("test.onnx")
    for name, value in inputs.items():
        g.names.take(name)
        g.info[name] = TensorInfo(value.shape, value.dtype)
        if name.startswith("c"):
            g.consts[name] = value
    g.names.take(node.output[0])
    nodes = lowering(g, node)
    feeds = {k: v for k, v in inputs.items() if k not in g.consts}
    graph = helper.make_graph(
        nodes,
        "lowered",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in feeds.items()
        ],
        [helper.make_tensor_value_info(node.output[0], 0, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in g.consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (out,) = ReferenceEvaluator(model).run(None, feeds)
    return np.asarray(out), nodes


@st.composite
def equations(draw: st.DrawFn) -> tuple[str, list[int], list[int]]:
    """A two-operand equation with batch, free, contracted and summed-alone indices in
    random orders, and operand shapes (a batch index may have size 1 in one operand)."""
    letters = iter(draw(st.permutations(string.ascii_lowercase[:12])))
    kinds = {k: draw(st.integers(0, 2)) for k in ("batch", "left", "right", "summed")}
    kinds["alone_a"], kinds["alone_b"] = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    groups = {k: [next(letters) for _ in range(n)] for k, n in kinds.items()}
    sizes = {c: draw(st.integers(1, 3)) for g in groups.values() for c in g}
    a = draw(
        st.permutations(groups["batch"] + groups["left"] + groups["summed"] + groups["alone_a"])
    )
    b = draw(
        st.permutations(groups["batch"] + groups["right"] + groups["summed"] + groups["alone_b"])
    )
    out = draw(st.permutations(groups["batch"] + groups["left"] + groups["right"]))
    if not a or not b:
        a, b = [*a, "y"], [*b, "y"]
        sizes["y"] = 2
    shape_a = [sizes[c] for c in a]
    shape_b = [1 if c in groups["batch"] and draw(st.booleans()) else sizes[c] for c in b]
    return f"{''.join(a)}, {''.join(b)} -> {''.join(out)}", shape_a, shape_b


@settings(max_examples=40, deadline=None)
@given(equations(), st.integers(0, 2**16))
def test_einsum_matches_numpy(case: tuple[str, list[int], list[int]], seed: int) -> None:
    equation, shape_a, shape_b = case
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape_a).astype(np.float32)
    b = rng.standard_normal(shape_b).astype(np.float32)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], name="e", equation=equation)
    got, nodes = _run(lower.einsum, node, {"a": a, "b": b})
    want = np.einsum(equation.replace(" ", ""), a, b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert sum(n.op_type == "MatMul" for n in nodes) == 1
    assert {n.op_type for n in nodes} <= {"Transpose", "Reshape", "MatMul", "ReduceSum"}


def test_einsum_attention_is_one_transpose_and_matmul() -> None:
    rng = np.random.default_rng(0)
    q, k = (rng.standard_normal([2, 3, 4, 5]).astype(np.float32) for _ in range(2))
    node = helper.make_node("Einsum", ["q", "k"], ["s"], equation="B G I D, B G J D -> B G I J")
    got, nodes = _run(lower.einsum, node, {"q": q, "k": k})
    np.testing.assert_allclose(got, q @ k.transpose(0, 1, 3, 2), rtol=1e-5, atol=1e-5)
    assert [n.op_type for n in nodes] == ["Transpose", "MatMul"]


@pytest.mark.parametrize(
    "equation", ["ab,bc,cd->ad", "...ij,...jk->...ik", "ii,ij->j", "ab,bc->aa"]
)
def test_einsum_refuses_what_it_cannot_lower(equation: str) -> None:
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    g = WorkGraph("t.onnx")
    for name in ("a", "b"):
        g.info[name] = TensorInfo((2, 2), np.dtype(np.float32))
    with pytest.raises(BadInputError, match="equation"):
        lower.einsum(g, node)


@pytest.mark.parametrize(
    ("indices", "shape"),
    [
        ([[4], [0], [4], [-2]], [5, 3]),  # one component: a plain Gather
        ([[[1, 2], [0, 0]], [[1, -1], [0, 1]]], [2, 3, 4]),  # two: flattened first
        ([[1, 2, 3]], [2, 3, 4]),  # every axis: scalars gathered
    ],
)
def test_gather_nd_matches_numpy(indices: list, shape: list[int]) -> None:
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    idx = np.array(indices, np.int64)
    node = helper.make_node("GatherND", ["data", "c_idx"], ["y"])
    got, nodes = _run(lower.gather_nd, node, {"data": data, "c_idx": idx})
    want = data[tuple(np.moveaxis(idx, -1, 0))]
    np.testing.assert_array_equal(got, want)
    assert nodes[-1].op_type == "Gather"


def test_reduce_l2_and_tanh_gelu_formulas() -> None:
    x = np.random.default_rng(2).standard_normal([2, 3, 4]).astype(np.float32)
    node = helper.make_node("ReduceL2", ["x"], ["y"], keepdims=0)
    got, _ = _run(lambda g, n: lower.reduce_l2(g, n, [0, 2]), node, {"x": x})
    np.testing.assert_allclose(got, np.sqrt((x * x).sum(axis=(0, 2))), rtol=1e-6)
    node = helper.make_node("Gelu", ["x"], ["y"], approximate="tanh")
    got, nodes = _run(lower.gelu_tanh, node, {"x": x})
    inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    np.testing.assert_allclose(got, 0.5 * x * (1 + np.tanh(inner)), rtol=1e-5, atol=1e-6)
    assert nodes[-1].output[0] == "y" and sum(n.op_type == "Tanh" for n in nodes) == 1


@pytest.mark.parametrize(
    ("indices", "needle"),
    [
        ([[5]], "within data's axes"),  # one past the end: must not wrap to row 0
        ([[-6]], "within data's axes"),
        ([[1, 2, 0]], "1 to 2 components"),  # more components than data has axes
        (np.zeros((2, 0), np.int64), "1 to 2 components"),  # no components: whole data
    ],
    ids=["past the end", "before the start", "too many components", "no components"],
)
def test_gather_nd_refuses_indices_it_would_misread(indices: list, needle: str) -> None:
    g = WorkGraph("t.onnx")
    g.info["data"] = TensorInfo((5, 3), np.dtype(np.float32))
    g.consts["c_idx"] = np.array(indices, np.int64)
    g.info["c_idx"] = TensorInfo(g.consts["c_idx"].shape, np.dtype(np.int64))
    node = helper.make_node("GatherND", ["data", "c_idx"], ["y"], name="g")
    with pytest.raises(BadInputError, match=needle):
        lower.gather_nd(g, node)


def test_gather_nd_of_one_full_index_is_a_scalar_gather() -> None:
    data = np.random.default_rng(4).standard_normal([2, 3, 4]).astype(np.float32)
    node = helper.make_node("GatherND", ["data", "c_idx"], ["y"])
    got, _ = _run(lower.gather_nd, node, {"data": data, "c_idx": np.array([1, -1], np.int64)})
    np.testing.assert_array_equal(got, data[1, -1])


@pytest.mark.parametrize("equation", ["ab,bc->acd", "ab,bc->d"])
def test_einsum_refuses_an_output_index_no_operand_has(equation: str) -> None:
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    g = WorkGraph("t.onnx")
    for name in ("a", "b"):
        g.info[name] = TensorInfo((2, 2), np.dtype(np.float32))
    with pytest.raises(BadInputError, match="output indices"):
        lower.einsum(g, node)


@pytest.mark.parametrize(
    "equation", ["ab,ab->", "a,->a", ",b->b", "Ab,bC", "bij,bjk", "ij,kl->ijkl", "ij,ij->ji"]
)
def test_einsum_edge_equations_match_numpy(equation: str) -> None:
    """Scalar output and operands, implicit output with capitals (ASCII order), outer and
    element-wise products."""
    rng = np.random.default_rng(5)
    lhs = equation.split("->")[0].split(",")
    size = {c: 2 + i for i, c in enumerate(sorted(set(equation) - set(",->")))}
    a, b = (rng.standard_normal([size[c] for c in t]).astype(np.float32) for t in lhs)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    got, _ = _run(lower.einsum, node, {"a": a, "b": b})
    np.testing.assert_allclose(got, np.einsum(equation, a, b), rtol=1e-5, atol=1e-5)
