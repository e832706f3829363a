"""Dropout's reproducible mask and DropoutGrad against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from autotm_execute.kernels import TensorSpec, lookup
from autotm_execute.kernels.dropout import keep_fraction

from tests.execute.kernel_refs import MS, assert_close, ort_reference, run_kernel

RATIO = np.array(0.3, np.float32)
TRAINING = np.array(True)


def dropout(x: np.ndarray, seed: int, ratio: np.ndarray = RATIO) -> tuple[np.ndarray, np.ndarray]:
    y, mask = run_kernel(
        "Dropout", [x, ratio, TRAINING], [(x.shape, x.dtype), (x.shape, np.bool_)], {"seed": seed}
    )
    assert y is not None and mask is not None
    return y, mask


def test_mask_is_reproducible_and_seeded() -> None:
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    y1, m1 = dropout(x, seed=5)
    y2, m2 = dropout(x, seed=5)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)
    _, other = dropout(x, seed=6)
    assert (m1 != other).mean() > 0.3


def test_output_is_scaled_input_where_kept() -> None:
    x = np.random.default_rng(1).standard_normal((50, 400)).astype(np.float32)
    y, mask = dropout(x, seed=1)
    assert abs(mask.mean() - 0.7) < 0.01  # keeps 1 - ratio of 20000 elements
    keep = keep_fraction(0.3, np.dtype(np.float32))
    np.testing.assert_array_equal(y, np.where(mask, x / keep, 0))
    # no visible structure: kept fractions agree over rows and over columns
    assert np.abs(mask.mean(axis=1) - 0.7).max() < 0.12
    assert np.abs(mask.mean(axis=0) - 0.7).max() < 0.3


@pytest.mark.parametrize(
    ("ratio", "training"), [(np.array(0.0, np.float32), TRAINING), (RATIO, np.array(False))]
)
def test_inactive_dropout_copies(ratio: np.ndarray, training: np.ndarray) -> None:
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    for consts in [(), (1, 2)]:  # scalars known at bind time, or read at run time
        y, mask = run_kernel(
            "Dropout",
            [x, ratio, training],
            [(x.shape, np.float32), (x.shape, np.bool_)],
            consts=consts,
        )
        np.testing.assert_array_equal(y, x)
        assert mask is not None and mask.all()


def test_scratch_needed_only_when_dropping() -> None:
    f32 = np.dtype(np.float32)
    x, y, mask = (
        TensorSpec((3, 5), f32),
        TensorSpec((3, 5), f32),
        TensorSpec((3, 5), np.dtype(bool)),
    )
    off = TensorSpec((), f32, np.array(0.0, np.float32))
    assert lookup("", "Dropout").bind({}, [x, off], [y, mask]).scratch_bytes == 0
    on = TensorSpec((), f32, np.array(0.5, np.float32))
    training = TensorSpec((), np.dtype(bool), np.array(True))
    assert (
        lookup("", "Dropout").bind({}, [x, on, training], [y, mask]).scratch_bytes == 2 * 4096 * 4
    )
    (y_only,) = run_kernel(
        "Dropout", [np.ones((3, 5), np.float32), on.value, training.value], [((3, 5), np.float32)]
    )
    assert y_only is not None and set(np.unique(y_only)) <= {0.0, 2.0}


@pytest.mark.oracle
@pytest.mark.parametrize("training", [True, False])  # onnxruntime ignores training_mode here
def test_grad_matches_onnxruntime(training: bool) -> None:
    rng = np.random.default_rng(3)
    dy = rng.standard_normal((4, 6)).astype(np.float32)
    mask = rng.random((4, 6)) > 0.3
    ins = [dy, mask, RATIO, np.array(training)]
    expected = ort_reference("DropoutGrad", ins, [(dy.shape, np.float32)], {}, MS)[0]
    ours = run_kernel("DropoutGrad", ins, [(dy.shape, np.float32)], {}, MS)[0]
    assert_close(ours, expected, rtol=0, atol=0)
