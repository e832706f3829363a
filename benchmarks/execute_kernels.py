"""Our conv and gemm kernels against onnxruntime-training-cpu, on the same shapes, side by side.

For every layer shape this times, in one process and one run, the forward and the backward
pass of our kernels (Conv, ConvGrad; Gemm and the two Gemms of its backward) and of
onnxruntime's CPU provider on single-node models of the same ops, and prints
``ort_ms / ours_ms`` (above 1: we are faster). For the conv shapes it also times our kernels
with their scratch bounded by chunks of images (``conv.COLUMNS_CAP``, the default) against
the same kernels with whole-batch columns (the cap lifted), with both scratch sizes. And it
measures the Python dispatch overhead of a bound kernel call on tiny tensors.

    .venv/bin/python benchmarks/execute_kernels.py            # every shape
    .venv/bin/python benchmarks/execute_kernels.py --quick    # a few shapes, fewer repeats

By default both sides use their own thread counts (numpy's OpenBLAS and onnxruntime's
intra-op pool both take every core); ``--threads 1`` pins both to one thread, which is the
fairer comparison on a loaded machine (a spinning BLAS pool suffers most from
oversubscription). Times are the best of the repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _option_from_argv(argv: Sequence[str], name: str) -> str | None:
    """An option that must act before numpy loads OpenBLAS, so it is read here, at import."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _threads_from_argv(argv: Sequence[str]) -> int | None:
    value = _option_from_argv(argv, "--threads")
    return int(value) if value is not None else None


ARGV = sys.argv[1:] if __name__ == "__main__" else []
THREADS = _threads_from_argv(ARGV)
if THREADS is not None:
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(THREADS)
CORE = _option_from_argv(ARGV, "--openblas-core")
if CORE:
    os.environ["OPENBLAS_CORETYPE"] = CORE

import numpy as np  # noqa: E402  (after the thread variables)
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from autotm_execute.kernels import TensorSpec, conv, lookup  # noqa: E402
from onnx import helper  # noqa: E402

MS = "com.microsoft"


@dataclass(frozen=True)
class ConvShape:
    name: str
    n: int
    c: int
    hw: int
    m: int
    k: int
    stride: int = 1
    pad: int = 0

    @property
    def out(self) -> int:
        return (self.hw + 2 * self.pad - self.k) // self.stride + 1


@dataclass(frozen=True)
class GemmShape:
    name: str
    batch: int
    inputs: int
    outputs: int


CONVS = [
    ConvShape("vgg19-mini conv3x3 16>16 @32", 16, 16, 32, 16, 3, 1, 1),
    ConvShape("vgg19-mini conv3x3 64>64 @8", 16, 64, 8, 64, 3, 1, 1),
    ConvShape("resnet50-mini conv1x1 64>16 @8", 16, 64, 8, 16, 1),
    ConvShape("resnet50-mini conv3x3 32>32 s2 @8", 16, 32, 8, 32, 3, 2, 1),
    ConvShape("resnet50 conv7x7 3>64 s2 @224", 2, 3, 224, 64, 7, 2, 3),
    ConvShape("resnet50 conv3x3 64>64 @56", 4, 64, 56, 64, 3, 1, 1),
    ConvShape("resnet50 conv1x1 256>64 @56", 4, 256, 56, 64, 1),
    ConvShape("resnet50 conv3x3 256>256 @14", 8, 256, 14, 256, 3, 1, 1),
    ConvShape("inception_v4 conv3x3 64>96 @35", 4, 64, 35, 96, 3, 1, 1),
]
GEMMS = [
    GemmShape("vgg19-mini fc 512>256", 16, 512, 256),
    GemmShape("resnet50 fc 2048>1000", 16, 2048, 1000),
    GemmShape("vgg19 fc 4096>4096", 16, 4096, 4096),
]
QUICK = (CONVS[1], CONVS[5], GEMMS[1])
#: the default suite's networks (suites/default.mk), whose every conv layer is timed
NETWORKS = ("vgg19-mini", "resnet200-mini", "inception_v4-mini", "densenet264-mini")


def best_ms(fn: Callable[[], Any], repeat: int, budget_s: float = 2.0) -> float:
    """The fastest of up to ``repeat`` runs: on a shared machine the minimum is the run least
    disturbed by other processes, for both sides alike."""
    fn()  # warm-up (first-touch page faults, BLAS thread start)
    times = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return 1000 * min(times)


def ort_session(
    op: str,
    domain: str,
    inputs: dict[str, np.ndarray],
    outputs: Mapping[str, Sequence[int]],
    attrs: dict[str, Any],
) -> Callable[[], Any]:
    node = helper.make_node(op, list(inputs), list(outputs), domain=domain, **attrs)
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(k, f32, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, f32, list(s)) for k, s in outputs.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    )
    model.ir_version = 8
    options = ort.SessionOptions()
    if THREADS is not None:
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda: session.run(None, inputs)


def ours(
    op: str,
    domain: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[Sequence[int]],
    attrs: dict[str, Any],
) -> Callable[[], None]:
    call, _ = ours_with_scratch(op, domain, inputs, outputs, attrs)
    return call


def ours_with_scratch(
    op: str,
    domain: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[Sequence[int] | None],
    attrs: dict[str, Any],
) -> tuple[Callable[[], None], int]:
    """A bound kernel's call on fresh buffers, and its scratch bytes (None: output left out)."""
    f32 = np.dtype(np.float32)
    kernel = lookup(domain, op).bind(
        attrs,
        [TensorSpec(a.shape, a.dtype) for a in inputs],
        [None if s is None else TensorSpec(tuple(s), f32) for s in outputs],
    )
    outs = [None if s is None else np.empty(s, np.float32) for s in outputs]
    scratch = np.empty(kernel.scratch_bytes, np.uint8) if kernel.scratch_bytes else None
    ins = list(inputs)
    return (lambda: kernel.run(np, ins, outs, scratch)), kernel.scratch_bytes


def conv_problem(
    shape: ConvShape,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """X, W, B, dY and the attributes of one conv shape (seeded)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.n, shape.c, shape.hw, shape.hw)).astype(np.float32)
    w = (rng.standard_normal((shape.m, shape.c, shape.k, shape.k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(shape.m).astype(np.float32)
    y_shape = (shape.n, shape.m, shape.out, shape.out)
    dy = rng.standard_normal(y_shape).astype(np.float32)
    attrs = {
        "kernel_shape": [shape.k, shape.k],
        "strides": [shape.stride] * 2,
        "pads": [shape.pad] * 4,
        "dilations": [1, 1],
        "group": 1,
    }
    return x, w, b, dy, attrs


def conv_rows(shape: ConvShape, repeat: int) -> list[tuple[str, float, float]]:
    x, w, b, dy, attrs = conv_problem(shape)
    y_shape = dy.shape
    fwd_ours = ours("Conv", "", [x, w, b], [y_shape], attrs)
    fwd_ort = ort_session("Conv", "", {"x": x, "w": w, "b": b}, {"y": y_shape}, attrs)
    grads = {"dx": x.shape, "dw": w.shape, "db": b.shape}
    bwd_ours = ours("ConvGrad", MS, [dy, x, w], list(grads.values()), attrs)
    bwd_ort = ort_session("ConvGrad", MS, {"dy": dy, "x": x, "w": w}, grads, attrs)
    return [
        (f"{shape.name} N={shape.n} Conv", best_ms(fwd_ours, repeat), best_ms(fwd_ort, repeat)),
        (f"{shape.name} N={shape.n} ConvGrad", best_ms(bwd_ours, repeat), best_ms(bwd_ort, repeat)),
    ]


def chunked_vs_whole(
    op: str,
    domain: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[Sequence[int] | None],
    attrs: dict[str, Any],
    repeat: int,
) -> tuple[float, float, int, int]:
    """ms and scratch bytes of our kernel with its scratch bounded by chunks of images (the
    default ``conv.COLUMNS_CAP``) and with whole-batch columns (the cap lifted), timed in
    alternation so that a change of machine load hits both alike."""
    chunked, chunked_scratch = ours_with_scratch(op, domain, inputs, outputs, attrs)
    default_cap = conv.COLUMNS_CAP
    conv.COLUMNS_CAP = 1 << 62
    try:
        whole, whole_scratch = ours_with_scratch(op, domain, inputs, outputs, attrs)
    finally:
        conv.COLUMNS_CAP = default_cap
    chunked_ms = whole_ms = float("inf")
    for _ in range(2):
        chunked_ms = min(chunked_ms, best_ms(chunked, max(1, repeat // 2), budget_s=1.0))
        whole_ms = min(whole_ms, best_ms(whole, max(1, repeat // 2), budget_s=1.0))
    return chunked_ms, whole_ms, chunked_scratch, whole_scratch


def chunk_rows(shape: ConvShape, repeat: int) -> list[tuple[str, float, float, int, int]]:
    """Conv and ConvGrad of one shape, chunked and whole-batch."""
    x, w, b, dy, attrs = conv_problem(shape)
    return [
        (
            f"{shape.name} N={shape.n} Conv",
            *chunked_vs_whole("Conv", "", [x, w, b], [dy.shape], attrs, repeat),
        ),
        (
            f"{shape.name} N={shape.n} ConvGrad",
            *chunked_vs_whole(
                "ConvGrad", MS, [dy, x, w], [x.shape, w.shape, b.shape], attrs, repeat
            ),
        ),
    ]


def network_row(network: str, batch: int, repeat: int) -> tuple[str, float, float, int, int]:
    """Every Conv and ConvGrad node of a zoo network's training graph (autotm-graph zoo and
    train), chunked and whole-batch: the sum of their times over one iteration (identical
    nodes timed once, counted as often as they occur) and the largest scratch."""
    import tempfile

    from autotm_execute.kernels import tensor_spec
    from autotm_graph.cli import main as graph_main
    from autotm_graph.ir import load_graph

    with tempfile.TemporaryDirectory() as folder:
        inference, training = f"{folder}/net.onnx", f"{folder}/train.onnx"
        graph_main(["zoo", network, "--batch", str(batch), "-q", "-o", inference])
        graph_main(["train", "--batch", str(batch), inference, "-o", training])
        graph = load_graph(training)
    rng = np.random.default_rng(0)
    counts: dict[str, int] = {}
    nodes = {}
    for node in graph.nodes:
        if node.op_type in ("Conv", "ConvGrad"):
            ins = [tensor_spec(graph, name) for name in node.inputs]
            outs = [tensor_spec(graph, name) if name else None for name in node.outputs]
            key = repr((node.op_type, sorted(node.attributes.items()), ins, outs))
            counts[key] = counts.get(key, 0) + 1
            nodes[key] = (node, ins, outs)
    chunked_total = whole_total = 0.0
    chunked_max = whole_max = 0
    for key, (node, ins, outs) in nodes.items():
        arrays = [rng.standard_normal(spec.shape).astype(spec.dtype) for spec in ins if spec]
        out_shapes = [None if spec is None else spec.shape for spec in outs]
        chunked, whole, chunked_bytes, whole_bytes = chunked_vs_whole(
            node.op_type, node.domain, arrays, out_shapes, dict(node.attributes), repeat
        )
        chunked_total += counts[key] * chunked
        whole_total += counts[key] * whole
        chunked_max, whole_max = max(chunked_max, chunked_bytes), max(whole_max, whole_bytes)
    label = f"{network} N={batch}: all {sum(counts.values())} Conv+ConvGrad nodes"
    return label, chunked_total, whole_total, chunked_max, whole_max


def gemm_rows(shape: GemmShape, repeat: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.batch, shape.inputs)).astype(np.float32)
    w = (rng.standard_normal((shape.outputs, shape.inputs)) * 0.01).astype(np.float32)
    b = rng.standard_normal(shape.outputs).astype(np.float32)
    dy = rng.standard_normal((shape.batch, shape.outputs)).astype(np.float32)
    y = (shape.batch, shape.outputs)
    cases = [  # forward, then the two Gemms of the backward (as autotm-graph writes them)
        ("Gemm fwd", [x, w, b], y, {"transB": 1}),
        ("Gemm dX", [dy, w], x.shape, {}),
        ("Gemm dW", [dy, x], w.shape, {"transA": 1}),
    ]
    rows = []
    for label, ins, out, attrs in cases:
        mine = ours("Gemm", "", ins, [out], attrs)
        theirs = ort_session("Gemm", "", {f"i{i}": a for i, a in enumerate(ins)}, {"y": out}, attrs)
        rows.append(
            (
                f"{shape.name} N={shape.batch} {label}",
                best_ms(mine, repeat),
                best_ms(theirs, repeat),
            )
        )
    return rows


def dispatch_rows(repeat: int) -> list[tuple[str, float, float]]:
    """Microseconds per bound-kernel call on 1x4 tensors, and of the bare ufunc it wraps."""
    a = np.ones((1, 4), np.float32)
    rows = []
    for op, domain, ins, raw in [
        ("Relu", "", [a], lambda o: np.maximum(a, 0, out=o)),
        ("Add", "", [a, a], lambda o: np.add(a, a, out=o)),
        ("ReluGrad", MS, [a, a], None),
        ("Gemm", "", [a, a.T.copy()], lambda o: None),
    ]:
        out_shape = (1, 1) if op == "Gemm" else (1, 4)
        call = ours(op, domain, ins, [out_shape], {})
        loops = 20000
        start = time.perf_counter()
        for _ in range(loops):
            call()
        per_call = (time.perf_counter() - start) / loops * 1e6
        bare = float("nan")
        if raw is not None and op != "Gemm":
            o = np.empty(out_shape, np.float32)
            start = time.perf_counter()
            for _ in range(loops):
                raw(o)
            bare = (time.perf_counter() - start) / loops * 1e6
        rows.append((f"dispatch {op} (us per call; bare ufunc)", per_call, bare))
    del repeat
    return rows


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def openblas_core() -> str:
    """The kernel family numpy's OpenBLAS runs (``Haswell``, ``SkylakeX`` ...), if it says."""
    import ctypes
    import glob

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for symbol in (
            "scipy_openblas_get_corename64_",
            "openblas_get_corename64_",
            "openblas_get_corename",
        ):
            if hasattr(lib, symbol):
                function = getattr(lib, symbol)
                function.restype = ctypes.c_char_p
                return str(function().decode())
    return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three shapes, fewer repeats")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per measurement")
    parser.add_argument(
        "--openblas-core",
        default=None,
        help="OPENBLAS_CORETYPE for numpy's OpenBLAS (e.g. SkylakeX on an AVX-512 CPU that "
        "OpenBLAS would run with its Haswell kernels); default: OpenBLAS's own choice",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (OpenBLAS and onnxruntime's intra-op pool); default: "
        "each library's own default (every core)",
    )
    parser.add_argument(
        "--networks",
        default=None,
        help="zoo networks whose Conv and ConvGrad nodes are timed chunked and whole-batch, "
        f"comma-separated (default: {','.join(NETWORKS)}; none with --quick)",
    )
    parser.add_argument("--batch", type=int, default=16, help="batch of those networks")
    args = parser.parse_args(argv)
    if args.networks is None:
        networks = [] if args.quick else list(NETWORKS)
    else:
        networks = [name for name in args.networks.split(",") if name]
    repeat = 5 if args.quick else args.repeat
    shapes: Sequence[Any] = QUICK if args.quick else [*CONVS, *GEMMS]
    print(
        f"# {cpu_model()}, {os.cpu_count()} cpus, OpenBLAS core {openblas_core()}, numpy "
        f"{np.__version__}, onnxruntime {ort.__version__}; threads {args.threads or 'default'}; "
        f"best of up to {repeat} runs"
    )
    print(f"{'case':58s} {'ours ms':>9s} {'ort ms':>9s} {'ort/ours':>8s}")
    ratios = []
    for shape in shapes:
        rows = (
            conv_rows(shape, repeat) if isinstance(shape, ConvShape) else gemm_rows(shape, repeat)
        )
        for label, mine, theirs in rows:
            ratios.append(theirs / mine)
            print(f"{label:58s} {mine:9.3f} {theirs:9.3f} {theirs / mine:8.2f}", flush=True)
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"{'geometric mean of ort/ours':58s} {'':9s} {'':9s} {geo:8.2f}")
    print(
        f"{'case (chunks of COLUMNS_CAP = ' + str(conv.COLUMNS_CAP >> 10) + ' KiB)':58s} "
        f"{'chunk ms':>9s} {'whole ms':>9s} {'speedup':>8s} {'chunk KiB':>10s} {'whole KiB':>10s}"
    )
    speedups = []
    for shape in shapes:
        if isinstance(shape, ConvShape):
            for label, chunked, whole, chunk_bytes, whole_bytes in chunk_rows(shape, repeat):
                speedups.append(whole / chunked)
                print(
                    f"{label:58s} {chunked:9.3f} {whole:9.3f} {whole / chunked:8.2f} "
                    f"{chunk_bytes / 1024:10.1f} {whole_bytes / 1024:10.1f}",
                    flush=True,
                )
    geo = float(np.exp(np.mean(np.log(speedups))))
    print(f"{'geometric mean of whole/chunked':58s} {'':9s} {'':9s} {geo:8.2f}")
    for network in networks:
        label, chunked, whole, chunk_bytes, whole_bytes = network_row(network, args.batch, repeat)
        print(
            f"{label:58s} {chunked:9.3f} {whole:9.3f} {whole / chunked:8.2f} "
            f"{chunk_bytes / 1024:10.1f} {whole_bytes / 1024:10.1f}",
            flush=True,
        )
    print(f"{'case':58s} {'ours us':>9s} {'bare us':>9s}")
    for label, mine, bare in dispatch_rows(repeat):
        print(f"{label:58s} {mine:9.2f} {bare:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
