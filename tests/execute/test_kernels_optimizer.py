"""SGDOptimizer against onnxruntime, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.execute.kernel_refs import MS, ort_reference, run_kernel


@pytest.mark.oracle
@pytest.mark.parametrize("outputs", [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 2)])
def test_sgd_matches_onnxruntime_exactly(
    outputs: tuple[bool, bool], shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(0)
    eta = np.array([0.037], np.float32)
    w, g = (
        rng.standard_normal(shape).astype(np.float32),
        rng.standard_normal(shape).astype(np.float32),
    )
    outs = [(shape, np.float32) if want else None for want in outputs]
    expected = ort_reference("SGDOptimizer", [eta, w, g], outs, {}, MS)
    ours = [o for o in run_kernel("SGDOptimizer", [eta, w, g], outs, {}, MS) if o is not None]
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    if outputs[0]:
        np.testing.assert_array_equal(ours[0], w - eta[0] * g)
