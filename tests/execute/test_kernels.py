"""The kernel package: every op a training graph may contain has a kernel, bind_node, and
the hand-written training graph run through our kernels against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_execute.kernels import bind_node, supported_ops
from autotm_graph.ir import Graph, load_graph
from autotm_graph.opset import TRAINING_OPS
from autotm_schemas import BadInputError

from tests.execute.kernel_refs import poison
from tests.handmade import write_tiny_mlp


def test_every_training_op_has_a_kernel() -> None:
    missing = sorted(set(TRAINING_OPS) - supported_ops())
    assert not missing, f"ops autotm-graph may write without a kernel: {missing}"


@pytest.mark.parametrize("key", sorted(TRAINING_OPS))
def test_kernel_signature_matches_the_opset(key: tuple[str, str]) -> None:
    """Input and output names (with ? and ...) agree with autotm_graph.opset."""
    from autotm_execute.kernels.base import lookup

    kernel = lookup(*key)
    sig = TRAINING_OPS[key]

    def names(text: str) -> list[str]:
        return [n.rstrip("?").removesuffix("...").rstrip("0123456789") for n in text.split()]

    ours_in = names(kernel.inputs)  # type: ignore[attr-defined]
    ours_out = names(kernel.outputs)  # type: ignore[attr-defined]
    theirs_in = names(" ".join(sig.inputs))
    theirs_out = names(" ".join(sig.outputs))
    assert ours_in[: len(theirs_in)] == theirs_in[: len(ours_in)]
    assert ours_out[: len(theirs_out)] == theirs_out[: len(ours_out)]


def interpret(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A minimal interpreter: bind every node, run in order, fresh buffers (tests only)."""
    values = {n: graph.initializer(n) for n in graph.initializer_names} | dict(feeds)
    for node in graph.nodes:
        kernel = bind_node(graph, node)
        outputs = [
            np.empty(graph.tensors[n].shape, graph.tensors[n].dtype) if n else None
            for n in node.outputs
        ]
        scratch = np.empty(kernel.scratch_bytes, np.uint8) if kernel.scratch_bytes else None
        kernel.run(np, [values[n] if n else None for n in node.inputs], outputs, scratch)
        values.update(
            {n: o for n, o in zip(node.outputs, outputs, strict=True) if n and o is not None}
        )
    return values


def run_graph(path: Path) -> dict[str, np.ndarray]:
    graph = load_graph(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(graph.tensors["x"].shape).astype(np.float32)
    labels = rng.integers(0, 3, graph.tensors["labels"].shape)
    return interpret(graph, {"x": x, "labels": labels})


@pytest.mark.oracle
def test_handmade_training_graph_matches_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = write_tiny_mlp(tmp_path / "mlp.onnx")
    ours = run_graph(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds = {"x": ours["x"], "labels": ours["labels"]}
    for name, theirs in zip(names, session.run(None, feeds), strict=True):
        np.testing.assert_allclose(ours[name], theirs, rtol=1e-5, atol=1e-6, err_msg=name)


TINY = [
    "vgg19-tiny",
    "vgg416-tiny",
    "resnet50-tiny",
    "resnet200-tiny",
    "inception_v4-tiny",
    "densenet264-tiny",
]


def zoo_training_graph(name: str, folder: Path) -> tuple[Graph, dict[str, np.ndarray]]:
    """The training graph of a tiny zoo network at batch 2, and one iteration's feeds."""
    import onnx
    from autotm_graph.train import TrainOptions, build_training_model
    from autotm_graph.weights import example_inputs, parameter_values
    from autotm_graph.zoo import build

    path = folder / f"{name}.onnx"
    model = build_training_model(build(name, batch=2), TrainOptions(batch=2), source=name)
    onnx.save(model, str(path))
    graph = load_graph(path)
    return graph, {**parameter_values(graph), **example_inputs(graph, seed=1)}


def onnxruntime_values(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor of the iteration as onnxruntime computes it (all made graph outputs)."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(v for v in model.graph.value_info if v.name not in present)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(
        zip(names, session.run(None, {k: v for k, v in feeds.items() if k in wanted}), strict=True)
    )


@pytest.mark.oracle
@pytest.mark.parametrize("name", TINY)
def test_zoo_training_graph_nodes_match_onnxruntime(name: str, tmp_path: Path) -> None:
    """Every node of a tiny zoo network's training iteration, run by our kernel on
    onnxruntime's inputs, gives onnxruntime's outputs: the kernels on real graphs, with the
    attributes autotm-graph writes, and no error carried from node to node."""
    graph, feeds = zoo_training_graph(name, tmp_path)
    theirs = {n: graph.initializer(n) for n in graph.initializer_names} | feeds
    theirs |= onnxruntime_values(graph, feeds)
    for node in graph.nodes:
        kernel = bind_node(graph, node)
        outputs = [
            poison(graph.tensors[n].shape, graph.tensors[n].dtype) if n else None
            for n in node.outputs
        ]
        scratch = np.empty(kernel.scratch_bytes, np.uint8) if kernel.scratch_bytes else None
        kernel.run(np, [theirs[n] if n else None for n in node.inputs], outputs, scratch)
        for out, ours in zip(node.outputs, outputs, strict=True):
            if out and ours is not None:
                want = theirs[out]
                # 1e-3 of the largest value: onnxruntime's own float32 rounding differs (its
                # batch variance over 2 samples of 1x1 maps is off by 4e-3 relative, ours by
                # 1e-6); a wrong formula is off by far more.
                tol = 1e-3 * float(np.abs(want).max(initial=0)) + 1e-5
                np.testing.assert_allclose(
                    ours, want, rtol=0, atol=tol, err_msg=f"{node.name} {out}"
                )


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["vgg19-tiny", "resnet50-tiny", "densenet264-tiny"])
def test_zoo_training_iteration_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    """A whole iteration through our kernels alone: loss and every updated parameter."""
    graph, feeds = zoo_training_graph(name, tmp_path)
    ours = interpret(graph, feeds)
    theirs = onnxruntime_values(graph, feeds)
    assert graph.meta is not None
    outputs = [graph.meta.loss] + [p.updated for p in graph.meta.parameters if p.updated]
    for out in outputs:
        np.testing.assert_allclose(ours[out], theirs[out], rtol=1e-3, atol=1e-5, err_msg=out)


def test_bind_node_names_the_node_when_no_kernel(tmp_path: Path) -> None:
    import onnx

    path = write_tiny_mlp(tmp_path / "mlp.onnx")
    model = onnx.load(str(path))
    model.graph.node[1].op_type = "Frobnicate"
    onnx.save(model, str(path))
    graph = load_graph(path)
    with pytest.raises(
        BadInputError, match=r"node 'relu1' \(Frobnicate\): no kernel for Frobnicate; known:"
    ):
        bind_node(graph, graph.nodes[1])


def test_bind_node_names_the_node_when_shapes_disagree(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    path = write_tiny_mlp(tmp_path / "mlp.onnx")
    model = onnx.load(str(path))
    for info in model.graph.value_info:
        if info.name == "h":
            info.CopyFrom(helper.make_tensor_value_info("h", onnx.TensorProto.FLOAT, [4, 15]))
    onnx.save(model, str(path))
    graph = load_graph(path)
    with pytest.raises(
        BadInputError, match=r"node 'relu1' \(Relu\): output 0 \(Y\): expected float32\[4,16\]"
    ):
        bind_node(graph, graph.nodes[1])


def test_bind_node_gives_small_constants_their_values(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "mlp.onnx"))
    reduce_node = next(n for n in graph.nodes if n.op_type == "ReduceSum")
    kernel = bind_node(graph, reduce_node)
    assert kernel.axes == (0,)  # type: ignore[attr-defined]
