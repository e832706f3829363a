"""`info`'s numbers on graphs whose answers are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import onnx
from autotm_graph import zoo
from autotm_graph.info import FOOTPRINT_NOTE, describe, render_text
from autotm_graph.ir import load_graph

from tests.handmade import write_tiny_mlp

# tests/handmade.py's tiny_mlp at batch 4, 8 features, 16 hidden, 3 classes (float32):
# parameters w1 16x8 (512 B), b1 16 (64 B), w2 3x16 (192 B), b2 3 (12 B) = 780 B, 195 values.
# Live bytes per node, worked out from each tensor's producer and last user; parameters and
# the learning rate (4 B) live throughout (784 B); node 12 (sgd_w1) holds w1_grad, w1.updated,
# h_pre_grad, w2.updated, b2.updated, loss, axes0 and the parameters: 2280 B.
LIVE = [1212, 1468, 1260, 1312, 1312, 1420, 1612, 1432, 1444, 1688, 1896, 1896, 2280, 1832, 1632]


def test_tiny_mlp_summary(tmp_path: Path) -> None:
    path = write_tiny_mlp(tmp_path / "mlp.onnx")
    summary = describe(load_graph(path))
    assert summary["graph"] == "training"
    assert summary["network"] == "tiny_mlp"
    assert summary["batch"] == 4
    assert summary["nodes"] == 15
    assert summary["ops"] == {
        "Gemm": 5,
        "com.microsoft.SGDOptimizer": 4,
        "ReduceSum": 2,
        "Relu": 1,
        "SoftmaxCrossEntropyLoss": 1,
        "com.microsoft.ReluGrad": 1,
        "com.microsoft.SoftmaxCrossEntropyLossGrad": 1,
    }
    assert summary["parameters"] == {
        "tensors": 4,
        "elements": 195,
        "trainable_elements": 195,
        "bytes": 780,
        "seeded": 0,
    }
    assert summary["tensors"] == {
        "count": 25,
        "by_kind": {
            "parameter": {"count": 4, "bytes": 780},
            "input": {"count": 2, "bytes": 160},
            "activation": {"count": 4, "bytes": 608},
            "gradient": {"count": 7, "bytes": 1340},
            "updated_parameter": {"count": 4, "bytes": 780},
            "constant": {"count": 3, "bytes": 16},
            "output": {"count": 1, "bytes": 4},
        },
    }
    assert summary["peak_live_bytes"] == max(LIVE) == 2280
    assert summary["peak_node"] == {"index": 12, "name": "sgd_w1"}
    assert summary["footprint_note"] == FOOTPRINT_NOTE
    assert load_graph(path).live_bytes_per_node().tolist() == LIVE


def test_tiny_mlp_lifetimes(tmp_path: Path) -> None:
    summary = describe(load_graph(write_tiny_mlp(tmp_path / "mlp.onnx")))
    rows = {r["name"]: r for r in summary["lifetimes"]}
    assert len(rows) == 25
    assert (rows["x"]["first"], rows["x"]["last"]) == (0, 11)  # read again by fc1_dw
    assert (rows["h"]["first"], rows["h"]["last"]) == (1, 10)  # read by relu1_grad
    assert (rows["w1"]["first"], rows["w1"]["last"]) == (0, 14)
    assert (rows["w1.updated"]["first"], rows["w1.updated"]["last"]) == (12, 14)
    assert rows["logits_grad"] == {
        "name": "logits_grad",
        "kind": "gradient",
        "dtype": "float32",
        "shape": [4, 3],
        "bytes": 48,
        "producer": 4,
        "first": 4,
        "last": 9,
    }


def test_text_report(tmp_path: Path) -> None:
    text = render_text(describe(load_graph(write_tiny_mlp(tmp_path / "mlp.onnx"))), top=3)
    assert "nodes       15\n" in text
    assert "2.2 KiB (2,280 B) at node 12 'sgd_w1'" in text
    assert "excludes kernel scratch" in text
    table = text.split("largest tensors (top 3 of 25):\n")[1].splitlines()
    assert table[0].split() == ["name", "kind", "shape", "bytes", "live"]
    assert [line.split()[0] for line in table[1:]] == ["w1", "w1.updated", "w1_grad"]


def test_inference_graph_from_the_zoo(tmp_path: Path) -> None:
    path = tmp_path / "whatever.onnx"
    onnx.save(zoo.build("resnet50-tiny", batch=2), path)
    summary = describe(load_graph(path), with_lifetimes=False)
    b = zoo.builder("resnet50-tiny", batch=2)
    assert summary["graph"] == "inference"
    assert summary["network"] == "resnet50-tiny"  # from the autotm.zoo metadata
    assert summary["batch"] == 2
    assert summary["nodes"] == len(b.nodes)
    assert summary["parameters"]["trainable_elements"] == b.parameter_count() == 34_286
    assert summary["parameters"]["elements"] == b.parameter_count(trainable_only=False)
    assert summary["parameters"]["seeded"] == len(b.params)
    assert summary["parameters"]["bytes"] == b.parameter_bytes()
    assert "lifetimes" not in summary
    # Node 0 (the stem's convolution) holds the parameters, the images and its output; later
    # activations are smaller (stride 2 and the pool shrink the 32x32 images at once).
    assert b.shape("stem.conv.out") == (2, 4, 16, 16)
    stem = 4 * 2 * 4 * 16 * 16
    assert summary["peak_node"] == {"index": 0, "name": "stem.conv"}
    assert summary["peak_live_bytes"] == b.parameter_bytes() + 4 * 2 * 3 * 32 * 32 + stem
