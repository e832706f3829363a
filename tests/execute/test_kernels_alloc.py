"""No kernel allocates anything of tensor size while it runs.

numpy reports its data allocations to ``tracemalloc``, so the peak of traced memory during
``run`` bounds every temporary a kernel makes. Two kinds are fine: small per-channel and
per-row arrays, and numpy's own iterator buffers for strided operands (8192 elements per
operand, at most about 200 KiB, whatever the tensor size). Cases use tensors of about 1 MiB,
where a tensor-size temporary stands out from both; anything a kernel needs of tensor size
must come from its scratch.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import TensorSpec, lookup
from onnx import numpy_helper

from tests.execute.kernel_refs import MS, spec_of

R = np.random.default_rng(0)
F = np.float32
D = np.float64


def f(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(F)


def i(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


X = f(8, 16, 40, 40)  # 800 KiB
XS = X.shape
POOL = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
P = (8, 16, 20, 20)
ROWS = f(512, 600)  # 1.2 MiB
LABELS = R.integers(0, 600, 512)
C16 = [f(16), f(16), f(16), np.ones(16, F)]

# (domain, op, attributes, inputs, outputs, constant input positions)
CASES: list[tuple[str, str, dict[str, Any], list[Any], list[Any], tuple[int, ...]]] = [
    ("", "Relu", {}, [X], [(XS, F)], ()),
    (MS, "ReluGrad", {}, [X, X], [(XS, F)], ()),
    ("", "Sigmoid", {}, [X], [(XS, F)], ()),
    (MS, "SigmoidGrad", {}, [X, X], [(XS, F)], ()),
    ("", "HardSwish", {}, [X], [(XS, F)], ()),
    ("", "Clip", {}, [X, np.array(-1, F), np.array(1, F)], [(XS, F)], ()),
    ("", "Add", {}, [X, f(16, 1, 1)], [(XS, F)], ()),
    ("", "Mul", {}, [X, X], [(XS, F)], ()),
    ("", "Sum", {}, [X, X, X], [(XS, F)], ()),
    ("", "Cast", {"to": 11}, [X], [(XS, np.float64)], ()),
    ("", "Conv", {"pads": [1, 1, 1, 1]}, [X, f(32, 16, 3, 3), f(32)], [((8, 32, 40, 40), F)], ()),
    ("", "Conv", {"group": 4, "strides": [2, 2]}, [X, f(16, 4, 1, 1)], [((8, 16, 20, 20), F)], ()),
    (
        MS,
        "ConvGrad",
        {"pads": [1, 1, 1, 1]},
        [f(8, 32, 40, 40), X, f(32, 16, 3, 3)],
        [(XS, F), ((32, 16, 3, 3), F), ((32,), F)],
        (),
    ),
    (MS, "ConvGrad", {}, [f(8, 32, 40, 40), X, f(32, 16, 1, 1)], [(XS, F), None, None], ()),
    ("", "MaxPool", POOL, [X], [(P, F), (P, np.int64)], ()),
    ("", "AveragePool", POOL, [X], [(P, F)], ()),
    ("", "AveragePoolGrad", POOL, [f(*P)], [(XS, F)], ()),
    ("", "GlobalAveragePool", {}, [X], [((8, 16, 1, 1), F)], ()),
    ("", "BatchNormalization", {}, [X, *C16], [(XS, F)], ()),
    (
        "",
        "BatchNormalization",
        {"training_mode": 1},
        [X, *C16],
        [(XS, F), ((16,), F), ((16,), F)],
        (),
    ),
    (MS, "BatchNormInternal", {}, [X, *C16], [(XS, F)] + [((16,), F)] * 4, ()),
    (
        MS,
        "BatchNormalizationGrad",
        {},
        [X, X, *C16[:2], np.ones(16, F)],
        [(XS, F), ((16,), F), ((16,), F)],
        (),
    ),
    (
        "",
        "Dropout",
        {"seed": 1},
        [X, np.array(0.5, F), np.array(True)],
        [(XS, F), (XS, np.bool_)],
        (1, 2),
    ),
    (MS, "DropoutGrad", {}, [X, X > 0, np.array(0.5, F)], [(XS, F)], ()),
    ("", "Softmax", {}, [ROWS], [(ROWS.shape, F)], ()),
    ("", "LogSoftmax", {}, [ROWS], [(ROWS.shape, F)], ()),
    (MS, "SoftmaxGrad_13", {}, [ROWS, ROWS], [(ROWS.shape, F)], ()),
    (MS, "LogSoftmaxGrad_13", {}, [ROWS, ROWS], [(ROWS.shape, F)], ()),
    ("", "SoftmaxCrossEntropyLoss", {}, [ROWS, LABELS], [((), F), (ROWS.shape, F)], ()),
    (MS, "SoftmaxCrossEntropyLossGrad", {}, [np.array(1, F), ROWS, LABELS], [(ROWS.shape, F)], ()),
    ("", "Gemm", {"transA": 1}, [ROWS, f(512, 200)], [((600, 200), F)], ()),
    (
        "",
        "Gemm",
        {"transB": 1, "beta": 0.5},
        [ROWS, f(200, 600), f(512, 200)],
        [((512, 200), F)],
        (),
    ),
    ("", "MatMul", {}, [f(4, 128, 600), f(600, 200)], [((4, 128, 200), F)], ()),
    (MS, "SGDOptimizer", {}, [np.array([0.1], F), X, X], [(XS, F)], ()),
    ("", "ReduceSum", {"keepdims": 0}, [X, i(0, 2, 3)], [((16,), F)], (1,)),
    ("", "ReduceMean", {"axes": [1]}, [X], [((8, 1, 40, 40), F)], ()),
    ("", "Reshape", {}, [X, i(8, -1)], [((8, 16 * 40 * 40), F)], ()),
    ("", "Transpose", {"perm": [0, 2, 3, 1]}, [X], [((8, 40, 40, 16), F)], ()),
    ("", "Concat", {"axis": 1}, [X, X], [((8, 32, 40, 40), F)], ()),
    ("", "Split", {"axis": 1}, [X, i(4, 12)], [((8, 4, 40, 40), F), ((8, 12, 40, 40), F)], (1,)),
    ("", "Slice", {}, [X, i(1, 2), i(36, 38), i(2, 3)], [((8, 16, 35, 36), F)], (1, 2, 3)),
    (
        MS,
        "SliceGrad",
        {},
        [f(8, 16, 35, 36), i(*XS), i(1, 2), i(36, 38), i(2, 3)],
        [(XS, F)],
        (1, 2, 3, 4),
    ),
    ("", "Expand", {}, [f(16, 1, 1), i(*XS)], [(XS, F)], ()),
    ("", "Gather", {"axis": 0}, [ROWS, i(*range(0, 512, 2))], [((256, 600), F)], ()),
    ("", "Gather", {"axis": 2}, [X, np.array(3, np.int64)], [((8, 16, 40), F)], ()),
    ("", "Exp", {}, [X], [(XS, F)], ()),
    ("", "Tanh", {}, [X], [(XS, F)], ()),
    ("", "Erf", {}, [X], [(XS, F)], ()),
    (MS, "Gelu", {}, [X], [(XS, F)], ()),
    (MS, "GeluGrad", {}, [X, X], [(XS, F)], ()),
    (MS, "TanhGrad", {}, [X, X], [(XS, F)], ()),
    ("", "Pow", {}, [X, np.array(3.0, F)], [(XS, F)], (1,)),
    ("", "Pow", {}, [np.abs(X), f(40)], [(XS, F)], ()),
    ("", "LayerNormalization", {}, [ROWS, f(600), f(600)], [(ROWS.shape, F)], ()),
    (
        "",
        "LayerNormalization",
        {"axis": 1},
        [f(4, 128, 600), f(128, 600)],
        [((4, 128, 600), F), ((4, 1, 1), F), ((4, 1, 1), F)],
        (),
    ),
    (
        MS,
        "LayerNormalizationGrad",
        {},
        [ROWS, ROWS, f(600), f(512, 1), np.ones((512, 1), F)],
        [(ROWS.shape, F), ((600,), F), ((600,), F)],
        (),
    ),
    ("", "MatMul", {}, [f(2, 4, 64, 32), f(1, 4, 32, 64)], [((2, 4, 64, 64), F)], ()),
    (
        MS,
        "GatherGrad",
        {"axis": 0},
        [i(169, 24), R.integers(0, 169, (49, 49)), f(49, 49, 24)],
        [((169, 24), F)],
        (0, 1),
    ),
    (
        MS,
        "GatherGrad",
        {"axis": 1},
        [i(8, 50, 600), np.array(0, np.int64), f(8, 600)],
        [((8, 50, 600), F)],
        (0, 1),
    ),
    ("", "Pad", {}, [X, i(0, 0, 1, 2, 0, 0, 3, 0)], [((8, 16, 44, 42), F)], (1,)),
    ("", "Pad", {"mode": "reflect"}, [X, i(0, 0, 1, 2, 0, 0, 3, 0)], [((8, 16, 44, 42), F)], (1,)),
    ("", "Bernoulli", {}, [np.full(XS, 0.5, F)], [(XS, F)], ()),
    ("", "RandomUniformLike", {}, [X], [(XS, F)], ()),
    # the transformer kernels' other paths: dtypes, constant and run-time operands, modes
    ("", "Sqrt", {}, [np.abs(X)], [(XS, F)], ()),
    ("", "Reciprocal", {}, [X], [(XS, F)], ()),
    ("", "Pow", {}, [X, np.array(2, np.int64)], [(XS, F)], (1,)),
    ("", "Pow", {}, [np.abs(X), np.array(-1.7)], [(XS, F)], (1,)),
    ("", "Pow", {}, [np.abs(X), R.integers(-2, 3, 40)], [(XS, F)], ()),
    ("", "Erf", {}, [X[:4].astype(D)], [((4, 16, 40, 40), D)], ()),
    (MS, "GeluGrad", {}, [X[:4].astype(D), X[:4].astype(D)], [((4, 16, 40, 40), D)], ()),
    (
        "",
        "LayerNormalization",
        {},
        [ROWS.astype(D), f(600).astype(D)],
        [(ROWS.shape, D), ((512, 1), F), ((512, 1), F)],
        (),
    ),
    (
        MS,
        "LayerNormalizationGrad",
        {},
        [ROWS.astype(D), ROWS.astype(D), f(600).astype(D), f(512, 1), np.ones((512, 1), F)],
        [(ROWS.shape, D), ((600,), D), None],
        (),
    ),
    ("", "MatMul", {}, [f(600), f(4, 600, 128)], [((4, 128), F)], ()),
    ("", "MatMul", {}, [f(4, 128, 600), f(600)], [((4, 128), F)], ()),
    ("", "MatMul", {}, [f(128, 600), f(4, 600, 128)], [((4, 128, 128), F)], ()),
    (
        MS,
        "GatherGrad",
        {"axis": 1},
        [i(8, 50, 600), R.permutation(50)[:40], f(8, 40, 600)],
        [((8, 50, 600), F)],
        (0, 1),
    ),
    (
        MS,
        "GatherGrad",
        {"axis": 1},
        [i(8, 50, 600), R.integers(0, 50, 40), f(8, 40, 600)],
        [((8, 50, 600), F)],
        (0,),
    ),
    (
        "",
        "Pad",
        {},
        [X, i(0, -1, 1, 2, 0, 1, -3, 0), np.array(0.5, F)],
        [((8, 16, 38, 42), F)],
        (1,),
    ),
    ("", "Pad", {"mode": "edge"}, [X, i(0, 0, 1, 2, 0, 0, 3, 0)], [((8, 16, 44, 42), F)], (1,)),
    ("", "Pad", {"mode": "wrap"}, [X, i(0, 0, 1, 2, 0, 0, 3, 0)], [((8, 16, 44, 42), F)], (1,)),
    ("", "RandomUniformLike", {"dtype": 11}, [X], [(XS, D)], ()),
    ("", "Bernoulli", {"dtype": 9}, [np.full(XS, 0.5, D)], [(XS, np.bool_)], ()),
    (
        "",
        "ConstantOfShape",
        {"value": numpy_helper.from_array(np.ones(1, F))},
        [i(*XS)],
        [(XS, F)],
        (0,),
    ),
]


#: numpy's iterator buffers: 8192 elements for each of up to three float64 operands.
NUMPY_BUFFERS = 3 * 8192 * 8 + 16 * 1024


def largest(case: Any) -> int:
    _, _, _, inputs, outputs, _ = case
    sizes = [a.nbytes for a in inputs] + [
        int(np.prod(o[0])) * np.dtype(o[1]).itemsize for o in outputs if o
    ]
    return max(sizes)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{n}" for n, c in enumerate(CASES)])
def test_run_allocates_nothing_of_tensor_size(case: Any) -> None:
    domain, op, attrs, inputs, outputs, consts = case
    kernel = lookup(domain, op).bind(
        attrs,
        [spec_of(a, n in consts) for n, a in enumerate(inputs)],
        [TensorSpec(o[0], np.dtype(o[1])) if o else None for o in outputs],
    )
    outs = [np.zeros(o[0], o[1]) if o else None for o in outputs]
    scratch = np.zeros(kernel.scratch_bytes, np.uint8) if kernel.scratch_bytes else None
    kernel.run(np, inputs, outs, scratch)  # warm-up: first-call caches are not temporaries
    tracemalloc.start()
    try:
        kernel.run(np, inputs, outs, scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = NUMPY_BUFFERS + largest(case) // 16
    assert peak <= limit, f"{op} allocated {peak} bytes while running (limit {limit})"
