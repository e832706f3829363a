"""SoftmaxCrossEntropyLoss and onnxruntime-training's SoftmaxCrossEntropyLossGrad.

Scores are ``[N, C, D1...]`` and labels ``[N, D1...]``; both kernels view them as
``[N, C, D]``. Temporaries are of the labels' size (picked log-probabilities, weights, flat
indices), never of the scores' size: log_prob is computed in its output buffer, or in scratch
when the node does not ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, spec_text, view
from autotm_execute.kernels.softmax import log_softmax

REDUCTIONS = ("mean", "sum", "none")


class _CrossEntropy(Kernel):
    """Shared binding: shapes, reduction, ignore_index, optional class weights."""

    attributes: ClassVar = {"reduction": "mean", "ignore_index": None}
    scores_at: ClassVar[int] = 0

    def bind_shapes(self, scores: TensorSpec, labels: TensorSpec, weights_at: int) -> None:
        if len(scores.shape) < 2:
            raise BindError(f"expected scores of rank >= 2 [N, C, ...], got {spec_text(scores)}")
        if labels.dtype.kind not in "iu":
            raise BindError(f"expected integer labels, got {spec_text(labels)}")
        want = (scores.shape[0], *scores.shape[2:])
        if labels.shape != want:
            raise BindError(
                f"labels {spec_text(labels)} do not fit scores {spec_text(scores)}: "
                f"expected shape [{','.join(map(str, want))}]"
            )
        self.reduction = str(self.attrs["reduction"])
        if self.reduction not in REDUCTIONS:
            raise BindError(f"attribute 'reduction': expected one of {list(REDUCTIONS)}")
        self.n, self.c = scores.shape[0], scores.shape[1]
        self.d = int(np.prod(scores.shape[2:], dtype=np.int64))
        self.dtype = scores.dtype
        ignore = self.attrs["ignore_index"]
        self.ignore = None if ignore is None else int(ignore)
        self.weighted = self.has_input(weights_at)
        if self.weighted and self.x(weights_at).shape != (self.c,):
            raise BindError(
                f"input {weights_at} (weights): expected shape [{self.c}], "
                f"got {spec_text(self.x(weights_at))}"
            )

    def sample_weights(
        self, xp: ModuleType, labels: Array, weights: Array | None
    ) -> tuple[Array, Array | None]:
        """Labels safe to index with (ignored ones replaced by 0) and per-sample weights
        (None when every sample weighs 1), both ``[N, 1, D]``."""
        lab = labels.reshape(self.n, 1, self.d)
        if self.ignore is None:
            return lab, (weights[lab] if weights is not None else None)
        keep = lab != self.ignore
        safe = xp.where(keep, lab, 0)
        sample = keep.astype(self.dtype)
        if weights is not None:
            sample *= weights[safe]
        return safe, sample

    def denominator(self, xp: ModuleType, sample: Array | None) -> Any:
        """What a 'mean' reduction divides by: the weight sum (1 where it is 0) or N*D."""
        if sample is None:
            return self.dtype.type(self.n * self.d)
        total = xp.sum(sample)
        return xp.where(total == 0, self.dtype.type(1), total)


@register("", "SoftmaxCrossEntropyLoss")
class SoftmaxCrossEntropyLoss(_CrossEntropy):
    """``loss = -sum(w[label] * log_softmax(scores)[label]) / sum(w[label])`` (mean);
    log_prob is output 1. Scratch: the scores' size when log_prob is not an output."""

    inputs = "scores labels weights?"
    outputs = "loss log_prob?"

    def setup(self) -> Sequence[TensorSpec | None]:
        scores, labels = self.float_input(0), self.x(1)
        self.bind_shapes(scores, labels, 2)
        self.log_prob_scratch = None
        if not self.has_output(1):
            regions = ScratchLayout()
            self.log_prob_scratch = regions.add(scores.shape, scores.dtype)
            self.layout(regions)
        loss_shape = labels.shape if self.reduction == "none" else ()
        return [TensorSpec(loss_shape, scores.dtype), TensorSpec(scores.shape, scores.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        scores, labels = inputs[0], inputs[1]
        weights = inputs[2] if self.weighted else None
        loss = outputs[0]
        lp = outputs[1] if self.log_prob_scratch is None else view(scratch, self.log_prob_scratch)
        lp3 = lp.reshape(self.n, self.c, self.d)
        log_softmax(xp, scores.reshape(self.n, self.c, self.d), lp3, 1)
        safe, sample = self.sample_weights(xp, labels, weights)
        per_sample = xp.take_along_axis(lp3, safe, axis=1)
        xp.negative(per_sample, out=per_sample)
        if sample is not None:
            xp.multiply(per_sample, sample, out=per_sample)
        if self.reduction == "none":
            xp.copyto(loss, per_sample.reshape(loss.shape))
            return
        xp.sum(per_sample, out=loss)
        if self.reduction == "mean":
            xp.divide(loss, self.denominator(xp, sample), out=loss)


@register("com.microsoft", "SoftmaxCrossEntropyLossGrad")
class SoftmaxCrossEntropyLossGrad(_CrossEntropy):
    """``d_scores = (exp(log_prob) - onehot(label)) * w[label] * dY / denominator``,
    0 for ignored samples, as onnxruntime-training computes it."""

    inputs = "dY log_prob labels weights? ignore_index?"
    outputs = "d_scores"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, log_prob, labels = self.float_input(0), self.float_input(1), self.x(2)
        self.bind_shapes(log_prob, labels, 3)
        if self.has_input(4):
            self.ignore = int(self.const(4).reshape(()))
        want = labels.shape if self.reduction == "none" else ()
        if dy.shape != want and not (self.reduction != "none" and dy.shape == (1,)):
            raise BindError(
                f"input 0 (dY): expected shape [{','.join(map(str, want))}] for reduction "
                f"{self.reduction!r}, got {spec_text(dy)}"
            )
        return [TensorSpec(log_prob.shape, log_prob.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, log_prob, labels = inputs[0], inputs[1], inputs[2]
        weights = inputs[3] if self.weighted else None
        dx = outputs[0]
        n, c, d = self.n, self.c, self.d
        dx3 = dx.reshape(n, c, d)
        xp.exp(log_prob.reshape(n, c, d), out=dx3)
        safe, sample = self.sample_weights(xp, labels, weights)
        rows = xp.arange(n).reshape(n, 1, 1) * (c * d) + xp.arange(d).reshape(1, 1, d)
        flat = dx.reshape(-1)
        flat[rows + safe * d] -= 1
        if self.reduction == "none":
            factor = dy.reshape(n, 1, d)
        elif self.reduction == "mean":
            factor = dy.reshape(()) / self.denominator(xp, sample)
        else:
            factor = dy.reshape(())
        if sample is not None:
            factor = sample * factor
        xp.multiply(dx3, factor, out=dx3)
