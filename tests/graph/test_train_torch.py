"""CNNs exported from PyTorch (both exporters, eval and training mode, batch 2) go through
`train`: re-batched, differentiated (gradients match float64 finite differences), the loss
falls over SGD steps, and the forward pass computes what the exported model computes.

The files are made by tests/graph/data/make_torch_exports.py (torch is not a dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from autotm_graph.train import TrainOptions, build_training_model

from .train_oracle import (
    check_gradients,
    feeds_for,
    metadata,
    ort,
    ort_has_training_ops,
    sgd_losses,
)

DATA = Path(__file__).parent / "data"
EXPORTS = sorted(p.name for p in DATA.glob("tiny_cnn_*.onnx"))
oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")


def test_every_export_is_shipped() -> None:
    assert [
        f"tiny_cnn_{e}_{m}.onnx" for e in ("dynamo", "torchscript") for m in ("eval", "train")
    ] == EXPORTS
    assert all((DATA / name).stat().st_size < 200_000 for name in EXPORTS)


@pytest.mark.parametrize("name", EXPORTS)
@pytest.mark.parametrize("batch", [2, 5])
def test_export_trains_at_any_batch(name: str, batch: int) -> None:
    model = build_training_model(onnx.load(DATA / name), TrainOptions(batch=batch), source=name)
    meta = metadata(model)
    assert meta["batch"] == batch
    image = next(v for v in model.graph.input if v.name == meta["data_inputs"][0])
    assert image.type.tensor_type.shape.dim[0].dim_value == batch
    for node in model.graph.node:
        if node.op_type == "Reshape":
            shape = next(
                onnx.numpy_helper.to_array(t)
                for t in model.graph.initializer
                if t.name == node.input[1]
            )
            assert shape[0] == batch and (shape > 0).all(), (node.name, shape)
    trainable = [p for p in meta["parameters"] if p["trainable"]]
    assert len(trainable) >= 10


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("name", EXPORTS)
def test_export_gradients_and_loss(name: str) -> None:
    model = build_training_model(
        onnx.load(DATA / name), TrainOptions(batch=3, learning_rate=0.05), source=name
    )
    feeds = feeds_for(model, seed=2)
    check_gradients(model, feeds, rtol=5e-3, atol=5e-5)
    losses = sgd_losses(model, feeds, steps=6)
    assert losses[-1] < losses[0], losses


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("name", [n for n in EXPORTS if n.endswith("_eval.onnx")])
def test_forward_matches_the_exported_model(name: str) -> None:
    """Eval exports (batch norm folded, no dropout): same logits, hence the same loss."""
    assert ort is not None
    source = onnx.load(DATA / name)
    model = build_training_model(source, TrainOptions(batch=2), source=name)
    feeds = feeds_for(model, seed=3)
    image_name = metadata(model)["data_inputs"][0]
    session = ort.InferenceSession(source.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {image_name: feeds[image_name]})
    labels = feeds[metadata(model)["data_inputs"][1]]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_prob[np.arange(len(labels)), labels].mean()
    train = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (loss,) = train.run([metadata(model)["loss"]], feeds)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
