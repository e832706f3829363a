"""The model zoo: published parameter counts, shapes, and the reduced variants."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from autotm_graph import zoo
from autotm_graph.ir import INIT_METADATA_KEY, ZOO_METADATA_KEY
from autotm_graph.zoo.vgg import vgg19_config, vgg416_config
from autotm_schemas import BadInputError
from hypothesis import given, settings
from hypothesis import strategies as st

FULL = [n for n, e in zoo.NETWORKS.items() if e.size == "full"]
TINY = [n for n, e in zoo.NETWORKS.items() if e.size == "tiny"]
MINI = [n for n, e in zoo.NETWORKS.items() if e.size == "mini"]

# Trainable parameters at 1000 classes and the paper's image size (batch norm running
# statistics are buffers, not parameters, as every published count treats them).
PUBLISHED = {
    # Simonyan & Zisserman, ICLR 2015, Table 2 (configuration E: 144M); exact value as
    # torchvision.models.vgg19 reports it.
    "vgg19": 143_667_240,
    # He et al., CVPR 2016, Table 1 (ResNet-50); exact value as torchvision.models.resnet50.
    "resnet50": 25_557_032,
    # He et al., ECCV 2016 ("Identity Mappings"), ResNet-200 with blocks 3/24/36/3: 64.7M;
    # exact value as timm's resnet200 (same bottleneck layout) reports it.
    "resnet200": 64_673_832,
    # Szegedy et al., AAAI 2017 (arXiv:1602.07261), figures 3-9: 42.7M; exact value of the
    # reference implementation (Cadene's pretrainedmodels / timm inception_v4).
    "inception_v4": 42_679_816,
    # Huang et al., CVPR 2017, Table 1, DenseNet-264 (k=32): 33.3M trainable; PaddleClas's
    # model zoo lists 33.74M, which is this count plus the batch-norm running statistics
    # (checked below).
    "densenet264": 33_337_704,
}


def _vgg416_count(classes: int = 1000) -> int:
    """VGG416 counted from darchr/AutoTM's vgg416() layer list (AutoTM/src/zoo/vgg.jl)."""
    convs = [(3, 64)] + [(64, 64)] * 80 + [(64, 128)]
    convs += [(128, 128)] * 81 + [(128, 256)]
    convs += [(256, 256)] * 82 + [(256, 512)]
    convs += [(512, 512)] * 83 + [(512, 512)] * 83
    assert len(convs) + 3 == 416  # 413 convolutions and three fully connected layers
    conv = sum(9 * cin * cout + cout for cin, cout in convs)
    dense = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * classes + classes)
    return conv + dense


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_the_paper(name: str) -> None:
    entry = zoo.network(name)
    b = zoo.builder(name, batch=1, image_size=entry.image_size, classes=1000)
    assert entry.image_size == (299 if name == "inception_v4" else 224)
    assert b.parameter_count() == PUBLISHED[name]


def test_vgg416_count_follows_its_definition() -> None:
    b = zoo.builder("vgg416", batch=1)
    assert b.parameter_count() == _vgg416_count() == 580_217_064
    convs = [n for n in b.nodes if n.op_type == "Conv"]
    gemms = [n for n in b.nodes if n.op_type == "Gemm"]
    assert (len(convs), len(gemms)) == (413, 3)


def test_densenet264_with_running_statistics_matches_paddleclas() -> None:
    b = zoo.builder("densenet264", batch=1)
    assert round(b.parameter_count(trainable_only=False) / 1e6, 2) == 33.74


@pytest.mark.parametrize("name", FULL)
def test_full_networks_stay_small_files_with_seeded_weights(name: str) -> None:
    model = zoo.build(name, batch=zoo.network(name).batch)
    assert len(model.SerializeToString()) < 1_000_000
    assert not model.graph.initializer
    specs = json.loads({p.key: p.value for p in model.metadata_props}[INIT_METADATA_KEY])
    params = {i.name for i in model.graph.input} - {"images"}
    assert set(specs) == params


def test_vgg416_at_the_large_batch_is_a_650gb_class_network() -> None:
    b = zoo.builder("vgg416", batch=320)
    activations = sum(
        4 * math.prod(s) for n, s in b.shapes.items() if n not in {p.name for p in b.params}
    )
    # Every forward activation is kept for the backward pass: several hundred GB already.
    assert activations > 400e9
    assert len(b.model().SerializeToString()) < 500_000


def _strip_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    return stripped


def _shapes(infos: list[onnx.ValueInfoProto]) -> dict[str, list[int]]:
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in infos}


@pytest.mark.parametrize("name", [*FULL, *MINI, *TINY])
def test_builder_shapes_agree_with_onnx_shape_inference(name: str) -> None:
    model = zoo.build(name, batch=2)
    inferred = onnx.shape_inference.infer_shapes(_strip_value_info(model), strict_mode=True)
    ours = _shapes(list(model.graph.value_info))
    theirs = _shapes(list(inferred.graph.value_info))
    assert ours == {k: theirs[k] for k in ours}
    assert set(theirs) <= set(ours)


@settings(max_examples=8, deadline=None)
@given(
    name=st.sampled_from(TINY),
    batch=st.integers(1, 6),
    image=st.integers(32, 48),
    classes=st.integers(2, 20),
)
def test_tiny_shapes_hold_for_any_batch_image_and_classes(
    name: str, batch: int, image: int, classes: int
) -> None:
    model = zoo.build(name, batch=batch, image_size=image, classes=classes)
    inferred = onnx.shape_inference.infer_shapes(_strip_value_info(model), strict_mode=True)
    out = _shapes(list(inferred.graph.output))
    assert out == {"logits": [batch, classes]}
    assert _shapes([model.graph.input[0]]) == {"images": [batch, 3, image, image]}


@pytest.mark.parametrize("name", [*TINY, *MINI])
def test_reduced_variants_pass_the_checker(name: str) -> None:
    for weights in ("seeded", "embed") if name in TINY else ("seeded",):
        model = zoo.build(name, weights=weights)
        onnx.checker.check_model(model, full_check=True)
        assert model.ir_version == 8
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
        meta = json.loads({p.key: p.value for p in model.metadata_props}[ZOO_METADATA_KEY])
        assert meta["network"] == name and meta["weights"] == weights


PLAIN_OPS = {
    "Conv",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "Add",
    "Flatten",
    "Gemm",
    "Dropout",
    "Constant",
}


@pytest.mark.parametrize("name", list(zoo.NETWORKS))
def test_only_plain_onnx_ops(name: str) -> None:
    b = zoo.builder(name, batch=1)
    assert {n.op_type for n in b.nodes} <= PLAIN_OPS


@pytest.mark.parametrize(
    "family", ["vgg19", "vgg416", "resnet50", "resnet200", "inception_v4", "densenet264"]
)
def test_variants_keep_the_family_pattern(family: str) -> None:
    ops = [
        {n.op_type for n in zoo.builder(f"{family}{suffix}", batch=1).nodes}
        for suffix in ("", "-mini", "-tiny")
    ]
    full, mini, tiny = ({op for op in s if op not in ("Dropout", "Constant")} for s in ops)
    assert full == mini == tiny


@pytest.mark.oracle
@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_run_forward_in_onnxruntime(name: str, tmp_path: object) -> None:
    ort = pytest.importorskip("onnxruntime")
    from autotm_graph.weights import materialize

    b = zoo.builder(name)
    model = b.model("embed")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).standard_normal((b.batch, 3, 32, 32), dtype=np.float32)
    (logits,) = session.run(None, {"images": images})
    assert logits.shape == (b.batch, 10)
    assert np.isfinite(logits).all()
    # The seeded file computes the same function when fed the materialised parameters.
    seeded = ort.InferenceSession(
        b.model("seeded").SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feeds = {p.name: materialize(p.init, p.shape) for p in b.params}
    (again,) = seeded.run(None, {"images": images, **feeds})
    np.testing.assert_allclose(again, logits, rtol=1e-4, atol=1e-5)  # kernels may differ


def test_unknown_network_lists_the_known_ones() -> None:
    with pytest.raises(BadInputError, match="expected one of vgg19, vgg416"):
        zoo.network("alexnet")


@pytest.mark.parametrize(
    ("name", "size"), [("inception_v4", 64), ("vgg19", 16), ("resnet50-tiny", 0)]
)
def test_too_small_images_are_bad_input(name: str, size: int) -> None:
    with pytest.raises(BadInputError, match="image-size"):
        zoo.builder(name, batch=1, image_size=size)


def test_bad_batch_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="--batch"):
        zoo.builder("vgg19-tiny", batch=0)


def test_inception_v4_smallest_image_is_75() -> None:
    # 75 -> 37 -> 35 -> 35 -> 17 -> 15 -> 7 (stem) -> 3 (reduction A) -> 1 (reduction B)
    b = zoo.builder("inception_v4", batch=1, image_size=75)
    assert b.shape("stem.mixed5a.out")[2:] == (7, 7)
    assert b.shape("reduction_b.out")[2:] == (1, 1)
    with pytest.raises(BadInputError):
        zoo.builder("inception_v4", batch=1, image_size=74)


def test_width_and_depth_knobs() -> None:
    config = vgg416_config(extra=(2, 2, 2, 2, 2), width=0.5)
    assert sum(len(s) for s in config.stages) == 4 + 10
    assert config.stages[0] == (32, 32, 32, 64)
    assert vgg19_config(width=0.25).stages[-1] == (128,) * 4


def test_seeds_differ_per_parameter_and_per_base_seed() -> None:
    first = {p.name: p.init["seed"] for p in zoo.builder("resnet50-tiny").params}
    other = {p.name: p.init["seed"] for p in zoo.builder("resnet50-tiny", seed=1).params}
    assert len(set(first.values())) == len(first)
    assert all(first[k] != other[k] for k in first)


def test_conv_and_gemm_weights_are_he_normal_with_their_fan_in() -> None:
    b = zoo.builder("resnet50-tiny")
    specs = {p.name: p.init for p in b.params}
    assert specs["stem.conv.weight"]["distribution"] == "he_normal"
    assert specs["stem.conv.weight"]["fan_in"] == 3 * 7 * 7
    assert specs["fc.weight"]["fan_in"] == b.shape("fc.weight")[1]
    assert specs["fc.bias"]["distribution"] == "zeros"
    assert specs["stem.bn.weight"]["distribution"] == "ones"
    assert specs["stem.bn.running_mean"]["distribution"] == "zeros"
    assert specs["stem.bn.running_var"]["distribution"] == "ones"
