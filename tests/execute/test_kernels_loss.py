"""SoftmaxCrossEntropyLoss against onnx.reference; its gradient against onnxruntime and
finite differences, over reductions, class weights, ignore_index and spatial labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.execute.kernel_refs import (
    MS,
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    run_kernel,
)


@st.composite
def loss_cases(draw: Any) -> dict[str, Any]:
    n, c = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    spatial = draw(st.sampled_from([(), (3,), (2, 2)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scores = (rng.standard_normal((n, c, *spatial)) * 3).astype(np.float32)
    labels = rng.integers(0, c, (n, *spatial)).astype(draw(st.sampled_from([np.int64, np.int32])))
    attrs: dict[str, Any] = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if draw(st.booleans()):
        attrs["ignore_index"] = int(labels.reshape(-1)[0])  # at least one sample is ignored
    weights = rng.uniform(0.5, 2, c).astype(np.float32) if draw(st.booleans()) else None
    return {"scores": scores, "labels": labels, "weights": weights, "attrs": attrs, "rng": rng}


def loss_shape(case: dict[str, Any]) -> tuple[int, ...]:
    return case["labels"].shape if case["attrs"]["reduction"] == "none" else ()


@settings(max_examples=80, deadline=None)
@given(loss_cases(), st.booleans())
def test_loss_matches_onnx_reference(case: dict[str, Any], with_log_prob: bool) -> None:
    ins = [case["scores"], case["labels"], case["weights"]]
    outs = [(loss_shape(case), np.float32), (case["scores"].shape, np.float32)]
    # Every sample ignored under 'mean': onnx.reference divides 0 by 0, onnxruntime (and we)
    # return 0; test_loss_grad_matches_onnxruntime covers that case.
    assume(not np.all(case["labels"] == case["attrs"].get("ignore_index")))
    expected = onnx_reference("SoftmaxCrossEntropyLoss", ins, outs, case["attrs"])
    if not with_log_prob:
        outs[1] = None  # type: ignore[call-overload]
    ours = run_kernel("SoftmaxCrossEntropyLoss", ins, outs, case["attrs"])
    assert_close(ours[0], expected[0], rtol=1e-5, atol=1e-5)
    if with_log_prob:
        assert_close(ours[1], expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
@settings(max_examples=80, deadline=None)
@given(loss_cases())
def test_loss_grad_matches_onnxruntime(case: dict[str, Any]) -> None:
    scores, labels, weights = case["scores"], case["labels"], case["weights"]
    outs = [(loss_shape(case), np.float32), (scores.shape, np.float32)]
    _, log_prob = run_kernel(
        "SoftmaxCrossEntropyLoss", [scores, labels, weights], outs, case["attrs"]
    )
    dy = case["rng"].standard_normal(loss_shape(case)).astype(np.float32)
    ins = [dy, log_prob, labels, weights]
    expected = ort_reference("SoftmaxCrossEntropyLossGrad", ins, [outs[1]], case["attrs"], MS)[0]
    ours = run_kernel("SoftmaxCrossEntropyLossGrad", ins, [outs[1]], case["attrs"], MS)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(loss_cases())
def test_loss_grad_matches_finite_differences(case: dict[str, Any]) -> None:
    scores = case["scores"].astype(np.float64)
    labels, attrs = case["labels"], case["attrs"]
    weights = None if case["weights"] is None else case["weights"].astype(np.float64)
    outs = [(loss_shape(case), np.float64), (scores.shape, np.float64)]

    def loss(v: np.ndarray) -> np.ndarray:
        got = run_kernel("SoftmaxCrossEntropyLoss", [v, labels, weights], outs, attrs, repeat=1)
        assert got[0] is not None
        return got[0]

    _, log_prob = run_kernel("SoftmaxCrossEntropyLoss", [scores, labels, weights], outs, attrs)
    dy = case["rng"].standard_normal(loss_shape(case))
    ours = run_kernel(
        "SoftmaxCrossEntropyLossGrad", [dy, log_prob, labels, weights], [outs[1]], attrs, MS
    )[0]
    assert_close(ours, numeric_gradient(loss, scores, dy), rtol=1e-6, atol=1e-8)


def test_scratch_holds_log_prob_when_not_an_output() -> None:
    scores = np.zeros((4, 3), np.float32)
    labels = np.array([0, 1, 2, 0])
    loss = run_kernel("SoftmaxCrossEntropyLoss", [scores, labels], [((), np.float32), None])[0]
    assert_close(loss, np.log(3), rtol=1e-6)
