"""One small case per kernel, run on numpy and (where a GPU and cupy exist) on cupy.

The same kernel code must run on both array namespaces. On a machine without cupy the GPU
test is skipped; the table's coverage and its numpy runs are checked everywhere, so that
the GPU test exercises every kernel the day it runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import TensorSpec, lookup, supported_ops

from tests.execute.kernel_refs import MS, poison, spec_of

R = np.random.default_rng(0)
F = np.float32


def f(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(F)


def i(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def s(value: float) -> np.ndarray:
    return np.array(value, F)


X4 = f(2, 3, 5, 5)
POOL = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
MAX_IDX = np.array(
    [[[[6, 8], [16, 18]]]], np.int64
)  # a valid MaxPool index map for a [1,1,4,5] input, 2x2 windows
LOG_PROB = np.log(np.full((4, 3), 1 / 3, F))
Case = tuple[str, str, dict[str, Any], list[Any], list[Any], tuple[int, ...]]

# (domain, op, attributes, inputs, outputs as (shape, dtype) or None, constant input positions)
CASES: list[Case] = [
    ("", "Relu", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Neg", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Identity", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Sigmoid", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "HardSigmoid", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "HardSwish", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Clip", {}, [f(3, 4), s(-0.5), s(0.5)], [((3, 4), F)], ()),
    ("", "Cast", {"to": 7}, [f(3, 4) * 4], [((3, 4), np.int64)], ()),
    ("", "Add", {}, [f(3, 4), f(4)], [((3, 4), F)], ()),
    ("", "Sub", {}, [f(3, 4), f(3, 1)], [((3, 4), F)], ()),
    ("", "Mul", {}, [f(3, 4), f(4)], [((3, 4), F)], ()),
    ("", "Div", {}, [f(3, 4), np.full(4, 2, F)], [((3, 4), F)], ()),
    ("", "Greater", {}, [f(3, 4), f(4)], [((3, 4), np.bool_)], ()),
    ("", "Less", {}, [f(3, 4), f(4)], [((3, 4), np.bool_)], ()),
    ("", "GreaterOrEqual", {}, [f(3, 4), f(4)], [((3, 4), np.bool_)], ()),
    ("", "LessOrEqual", {}, [f(3, 4), f(4)], [((3, 4), np.bool_)], ()),
    ("", "And", {}, [f(3, 4) > 0, f(4) > 0], [((3, 4), np.bool_)], ()),
    ("", "Sum", {}, [f(3, 4), f(4), f(3, 4)], [((3, 4), F)], ()),
    (MS, "ReluGrad", {}, [f(3, 4), f(3, 4)], [((3, 4), F)], ()),
    (MS, "SigmoidGrad", {}, [f(3, 4), f(3, 4)], [((3, 4), F)], ()),
    ("", "Exp", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Tanh", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Sqrt", {}, [np.abs(f(3, 4))], [((3, 4), F)], ()),
    ("", "Reciprocal", {}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "Erf", {}, [f(3, 4) * 3], [((3, 4), F)], ()),
    ("", "Pow", {}, [np.abs(f(3, 4)), f(4)], [((3, 4), F)], ()),
    ("", "Pow", {}, [f(3, 4), s(2.0)], [((3, 4), F)], (1,)),
    (MS, "TanhGrad", {}, [f(3, 4), np.tanh(f(3, 4))], [((3, 4), F)], ()),
    (MS, "Gelu", {}, [f(3, 4) * 3], [((3, 4), F)], ()),
    (MS, "GeluGrad", {}, [f(3, 4), f(3, 4) * 3], [((3, 4), F)], ()),
    (
        "",
        "LayerNormalization",
        {"axis": 1},
        [f(2, 3, 4), f(3, 4), f(4)],
        [((2, 3, 4), F), ((2, 1, 1), F), ((2, 1, 1), F)],
        (),
    ),
    (
        MS,
        "LayerNormalizationGrad",
        {},
        [f(6, 5), f(6, 5), f(5), f(6, 1), np.ones((6, 1), F)],
        [((6, 5), F), ((5,), F), ((5,), F)],
        (),
    ),
    ("", "MatMul", {}, [f(2, 1, 3, 4), f(3, 4, 5)], [((2, 3, 3, 5), F)], ()),
    ("", "Bernoulli", {"seed": 2.0}, [np.full((30, 40), 0.4, F)], [((30, 40), F)], ()),
    ("", "Bernoulli", {"dtype": 9}, [np.full((7,), 0.5, F)], [((7,), np.bool_)], ()),
    (
        "",
        "RandomUniformLike",
        {"low": -1.0, "high": 2.0},
        [f(30, 40)],
        [((30, 40), F)],
        (),
    ),
    ("", "Gemm", {"transB": 1, "beta": 0.5}, [f(3, 4), f(5, 4), f(5)], [((3, 5), F)], ()),
    ("", "MatMul", {}, [f(2, 3, 4), f(4, 5)], [((2, 3, 5), F)], ()),
    (
        "",
        "Conv",
        {"pads": [1, 1, 1, 1], "group": 3},
        [X4, f(6, 1, 3, 3), f(6)],
        [((2, 6, 5, 5), F)],
        (),
    ),
    (
        MS,
        "ConvGrad",
        {"strides": [2, 2]},
        [f(2, 4, 2, 2), X4, f(4, 3, 3, 3)],
        [(X4.shape, F), ((4, 3, 3, 3), F), ((4,), F)],
        (),
    ),
    ("", "MaxPool", POOL, [X4], [((2, 3, 3, 3), F), ((2, 3, 3, 3), np.int64)], ()),
    (
        "",
        "MaxPoolGrad",
        {"kernel_shape": [2, 2], "strides": [2, 2]},
        [f(1, 1, 2, 2), MAX_IDX],
        [((1, 1, 4, 5), F)],
        (),
    ),
    ("", "AveragePool", POOL, [X4], [((2, 3, 3, 3), F)], ()),
    ("", "AveragePoolGrad", POOL, [f(2, 3, 3, 3)], [(X4.shape, F)], ()),
    ("", "GlobalAveragePool", {}, [X4], [((2, 3, 1, 1), F)], ()),
    ("", "BatchNormalization", {}, [X4, f(3), f(3), f(3), np.ones(3, F)], [(X4.shape, F)], ()),
    (
        MS,
        "BatchNormInternal",
        {},
        [X4, f(3), f(3), f(3), np.ones(3, F)],
        [(X4.shape, F)] + [((3,), F)] * 4,
        (),
    ),
    (
        MS,
        "BatchNormalizationGrad",
        {},
        [X4, X4, f(3), f(3), np.ones(3, F)],
        [(X4.shape, F), ((3,), F), ((3,), F)],
        (),
    ),
    (
        "",
        "Dropout",
        {"seed": 3},
        [f(30, 40), s(0.25), np.array(True)],
        [((30, 40), F), ((30, 40), np.bool_)],
        (1, 2),
    ),
    (MS, "DropoutGrad", {}, [f(3, 4), f(3, 4) > 0, s(0.25), np.array(True)], [((3, 4), F)], ()),
    ("", "Softmax", {"axis": 1}, [f(3, 4)], [((3, 4), F)], ()),
    ("", "LogSoftmax", {}, [f(3, 4)], [((3, 4), F)], ()),
    (MS, "SoftmaxGrad_13", {}, [f(3, 4), f(3, 4)], [((3, 4), F)], ()),
    (MS, "LogSoftmaxGrad_13", {}, [f(3, 4), f(3, 4)], [((3, 4), F)], ()),
    ("", "SoftmaxCrossEntropyLoss", {}, [f(4, 3), i(0, 2, 1, 2)], [((), F), ((4, 3), F)], ()),
    (MS, "SoftmaxCrossEntropyLossGrad", {}, [s(1.0), LOG_PROB, i(0, 2, 1, 2)], [((4, 3), F)], ()),
    (MS, "SGDOptimizer", {}, [np.array([0.1], F), f(3, 4), f(3, 4)], [((3, 4), F), None], ()),
    ("", "ReduceSum", {"keepdims": 0}, [f(3, 4), i(0)], [((4,), F)], (1,)),
    ("", "ReduceMean", {"axes": [1]}, [f(3, 4)], [((3, 1), F)], ()),
    ("", "Reshape", {}, [f(3, 4), i(2, 6)], [((2, 6), F)], ()),
    ("", "Flatten", {}, [X4], [((2, 75), F)], ()),
    ("", "Squeeze", {}, [f(3, 1), i(1)], [((3,), F)], ()),
    ("", "Unsqueeze", {}, [f(3), i(0)], [((1, 3), F)], ()),
    ("", "Expand", {}, [f(3, 1), i(2, 3, 4)], [((2, 3, 4), F)], ()),
    ("", "Transpose", {"perm": [1, 0]}, [f(3, 4)], [((4, 3), F)], ()),
    ("", "Concat", {"axis": 1}, [f(3, 4), f(3, 2)], [((3, 6), F)], ()),
    ("", "Split", {"axis": 1}, [f(3, 6), i(2, 4)], [((3, 2), F), ((3, 4), F)], (1,)),
    ("", "Slice", {}, [f(5, 6), i(1, -1), i(4, 0), i(0, 1), i(2, -2)], [((2, 3), F)], (1, 2, 3, 4)),
    (
        MS,
        "SliceGrad",
        {},
        [f(2, 3), i(5, 6), i(1, -1), i(4, 0), i(0, 1), i(2, -2)],
        [((5, 6), F)],
        (1, 2, 3, 4, 5),
    ),
    ("", "Gather", {"axis": 1}, [f(3, 4), i(3, 0)], [((3, 2), F)], ()),
    (
        MS,
        "GatherGrad",
        {"axis": 1},
        [i(3, 4), np.array([[0, 3], [3, -1], [2, 0]], np.int64), f(3, 3, 2)],
        [((3, 4), F)],
        (0, 1),
    ),
    ("", "Pad", {}, [f(2, 3), i(0, 1, 2, 0), s(0.5)], [((4, 4), F)], (1, 2)),
    (
        "",
        "Pad",
        {"mode": "reflect"},
        [f(2, 3, 4), i(2, 1), s(0.0), i(-1)],
        [((2, 3, 7), F)],
        (1, 3),
    ),
    # other paths of the transformer kernels: float64, erf's tails, 1-D and empty MatMul
    # operands, run-time GatherGrad indices (cupyx.scatter_add), Pad's run-time value and
    # border modes, random ops in other dtypes and on one element
    ("", "Erf", {}, [np.array([np.nan, -9.0, -4.5, 0.2, 3.0, 30.0])], [((6,), np.float64)], ()),
    (MS, "Gelu", {}, [np.array([-12, -7, -4.2, -0.3, 0, 5], F)], [((6,), F)], ()),
    (
        MS,
        "GeluGrad",
        {},
        [f(3, 4).astype(np.float64), (f(3, 4) * 4).astype(np.float64)],
        [((3, 4), np.float64)],
        (),
    ),
    (
        "",
        "LayerNormalization",
        {"stash_type": 11},
        [f(4, 6).astype(np.float64), f(6).astype(np.float64)],
        [((4, 6), np.float64), ((4, 1), np.float64), ((4, 1), np.float64)],
        (),
    ),
    (
        "",
        "LayerNormalization",
        {"axis": 0},
        [f(3, 1), f(3, 1), f(3, 1)],
        [((3, 1), F), ((1, 1), F), ((1, 1), F)],
        (),
    ),
    (
        MS,
        "LayerNormalizationGrad",
        {},
        [f(0, 5), f(0, 5), f(5), f(0, 1), f(0, 1)],
        [((0, 5), F), ((5,), F), ((5,), F)],
        (),
    ),
    ("", "MatMul", {}, [f(4), f(2, 4, 3)], [((2, 3), F)], ()),
    ("", "MatMul", {}, [f(2, 3, 4), f(4)], [((2, 3), F)], ()),
    ("", "MatMul", {}, [f(2, 3, 0), f(0, 4)], [((2, 3, 4), F)], ()),
    ("", "Pow", {}, [np.abs(f(3, 4)), i(2, -1, 0, 3)], [((3, 4), F)], ()),
    ("", "Pow", {}, [np.abs(f(3, 4)), np.array(-1.7)], [((3, 4), F)], (1,)),
    (
        MS,
        "GatherGrad",
        {"axis": 0},
        [i(4, 3), np.array([[1, 3], [1, -3]], np.int64), f(2, 2, 3)],
        [((4, 3), F)],
        (0,),
    ),
    (MS, "GatherGrad", {"axis": 1}, [i(2, 5), np.array(-2, np.int64), f(2)], [((2, 5), F)], (0, 1)),
    ("", "Pad", {}, [f(3, 4), i(-1, 2, 2, -3), s(0.5)], [((4, 3), F)], (1,)),
    ("", "Pad", {"mode": "edge"}, [f(2, 3), i(1, 0, 2, 3)], [((5, 6), F)], (1,)),
    ("", "Pad", {"mode": "wrap"}, [f(2, 3), i(1, 2, 0, 3)], [((3, 8), F)], (1,)),
    ("", "RandomUniformLike", {"dtype": 11}, [f(5000)], [((5000,), np.float64)], ()),
    ("", "RandomUniformLike", {"dtype": 10}, [f(3)], [((3,), np.float16)], ()),
    ("", "Bernoulli", {}, [np.array(0.5)], [((), np.float64)], ()),
    ("", "Constant", {"value_floats": [1.0, 2.0]}, [], [((2,), F)], ()),
    ("", "ConstantOfShape", {}, [i(2, 3)], [((2, 3), F)], (0,)),
]


def run(xp: Any, case: Case) -> list[np.ndarray | None]:
    domain, op, attrs, inputs, outputs, consts = case
    kernel = lookup(domain, op).bind(
        attrs,
        [spec_of(a, n in consts) for n, a in enumerate(inputs)],
        [TensorSpec(o[0], np.dtype(o[1])) if o is not None else None for o in outputs],
    )
    ins = [xp.asarray(a) for a in inputs]
    outs = [xp.asarray(poison(*o)) if o is not None else None for o in outputs]
    scratch = xp.full(kernel.scratch_bytes, 0xAB, np.uint8) if kernel.scratch_bytes else None
    kernel.run(xp, ins, outs, scratch)
    to_host = (lambda a: a) if xp is np else xp.asnumpy
    return [None if o is None else np.asarray(to_host(o)) for o in outs]


def test_cases_cover_every_kernel() -> None:
    covered = {(domain, op) for domain, op, *_ in CASES}
    assert covered == supported_ops()


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_case_runs_on_numpy_and_writes_every_output(case: Case) -> None:
    inputs = case[3]
    nan_in = any(a.dtype.kind == "f" and np.isnan(a).any() for a in inputs)
    for out in run(np, case):
        if out is not None and out.dtype.kind == "f" and not nan_in:
            assert not np.isnan(out).any()


def _cupy() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:  # the CUDA runtime raises its own error types without a driver
        pytest.skip(f"no CUDA device ({type(exc).__name__})")
    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_cupy_matches_numpy(case: Case) -> None:
    cupy = _cupy()
    exact = case[1] in ("Bernoulli", "RandomUniformLike")  # the same draws, bit for bit
    for got, want in zip(run(cupy, case), run(np, case), strict=True):
        if want is None or got is None:
            assert got is None and want is None
        elif want.dtype.kind == "f" and not exact:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
