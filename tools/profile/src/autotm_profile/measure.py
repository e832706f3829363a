"""Time one kernel in one configuration: the executor's own kernel on the executor's own pools.

The kernel is bound with ``autotm_execute.kernels.bind_node`` (the very object autotm-execute
runs), its inputs and outputs are arrays viewed in the fast and slow pools of
``autotm_execute.tiers.open_tiers`` as the configuration says, laid out one after the other by
the pools' alignment rule (:mod:`autotm_schemas.alignment`: pages for tensors of a page or
more, cache lines for smaller ones, as in a run), its scratch space is in the fast pool (as in
a run), and :mod:`autotm_profile.timing` times ``run`` on them.

Input data is what the kernel would plausibly see: constants are the graph's own values (shape
tensors, axes, learning rate), data inputs come from ``autotm_graph.weights.example_inputs``
(labels within the class count), an integer or boolean tensor produced by another node (a
MaxPool's indices) is computed by running that node's kernel once, and float tensors are drawn
uniformly from [0.5, 1.5) (finite for log, sqrt and division). The values never change what
is timed beyond that: the kernels have no data-dependent fast paths.

On a GPU (``--device cuda``) every tensor is in device memory (the one configuration the GPU
rule allows), the data is copied in with ``ndarray.set`` before timing, and each call is timed
with CUDA events on the current stream (:class:`autotm_execute.gpu.EventClock`) rather than the
host clock: the device time of the kernel's launches, as the executor measures it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from autotm_execute.emulation import slow_traffic
from autotm_execute.pools import align_up
from autotm_execute.schedule import KernelPlacement, Residency
from autotm_execute.tiers import Tiers
from autotm_graph.ir import Graph, Node
from autotm_schemas.alignment import alignment, padded_size

from .configs import FAST, SLOW, Config
from .timing import Protocol, Stats, time_call

Array = Any


def bind(graph: Graph, node: Node) -> Any:
    """The executor's bound kernel for a node (BadInputError naming the node on failure)."""
    from autotm_execute.kernels import bind_node

    return bind_node(graph, node)


def distinct_tensors(node: Node) -> list[str]:
    """A node's tensors, each once, inputs first, in position order."""
    return [n for n in dict.fromkeys((*node.inputs, *node.outputs)) if n]


def footprint(graph: Graph, node: Node, scratch_bytes: int) -> tuple[int, int]:
    """Pool bytes one configuration may need: (fast, slow), each tensor possibly in either.

    An upper bound: whole pages per tensor covers any alignment gap :meth:`KernelTimer.place`
    leaves (untouched pages of a pool cost nothing).
    """
    tensors = sum(align_up(graph.tensors[n].nbytes) for n in distinct_tensors(node))
    return tensors + align_up(scratch_bytes), tensors


def synchronizer(xp: ModuleType) -> Callable[[], None]:
    """A function waiting for queued device work: a no-op for numpy."""
    if xp is np:
        return lambda: None
    stream = xp.cuda.get_current_stream()
    return stream.synchronize


@dataclass
class Prepared:
    """A bound kernel and host copies of the data its inputs start from."""

    node: Node
    kernel: Any
    data: dict[str, np.ndarray]

    @property
    def scratch_bytes(self) -> int:
        return int(self.kernel.scratch_bytes)


class KernelTimer:
    """Binds, fills and times kernels of one graph on one set of open tiers."""

    def __init__(self, graph: Graph, tiers: Tiers, protocol: Protocol, seed: int = 0) -> None:
        self.graph = graph
        self.tiers = tiers
        self.protocol = protocol
        self.seed = seed
        self._examples: dict[str, np.ndarray] | None = None
        self._sync = synchronizer(tiers.xp)

    # --- input data ---------------------------------------------------------------------

    def _example_inputs(self) -> dict[str, np.ndarray]:
        if self._examples is None:
            try:
                from autotm_graph.weights import example_inputs

                self._examples = example_inputs(self.graph, seed=self.seed)
            except Exception:  # no label-reading loss, or no weights module: synthesise
                self._examples = {}
        return self._examples

    def host_value(self, name: str, depth: int = 0) -> np.ndarray:
        """Plausible data for a tensor (see the module docstring)."""
        graph = self.graph
        tensor = graph.tensors[name]
        if name in graph.initializer_names and tensor.kind != "parameter":
            return np.ascontiguousarray(np.asarray(graph.initializer(name), dtype=tensor.dtype))
        examples = self._example_inputs()
        if name in examples:
            return np.ascontiguousarray(examples[name])
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        kind = tensor.dtype.kind
        if kind == "f":
            return rng.uniform(0.5, 1.5, size=tensor.shape).astype(tensor.dtype)
        if kind == "b":
            return rng.random(size=tensor.shape) < 0.5
        if tensor.producer is not None and depth < 3:
            return self._produce(name, depth)
        return np.zeros(tensor.shape, dtype=tensor.dtype)

    def _produce(self, name: str, depth: int) -> np.ndarray:
        """Run the producer of an integer tensor once, on the host, to get real values."""
        producer = self.graph.nodes[self.graph.tensors[name].producer or 0]
        kernel = bind(self.graph, producer)
        inputs = [self.host_value(n, depth + 1) if n else None for n in producer.inputs]
        outputs = [
            np.empty(self.graph.tensors[n].shape, self.graph.tensors[n].dtype) if n else None
            for n in producer.outputs
        ]
        scratch = np.empty(int(kernel.scratch_bytes), np.uint8) if kernel.scratch_bytes else None
        kernel.run(np, inputs, outputs, scratch)
        result = outputs[list(producer.outputs).index(name)]
        assert result is not None
        return result

    # --- timing -------------------------------------------------------------------------

    def prepare(self, node: Node, kernel: Any = None) -> Prepared:
        """Bind (unless given the bound kernel) and make the inputs' starting data."""
        kernel = kernel if kernel is not None else bind(self.graph, node)
        data = {n: self.host_value(n) for n in node.inputs if n}
        return Prepared(node, kernel, data)

    def place(self, prepared: Prepared, config: Config) -> tuple[list[Any], list[Any], Any]:
        """Views of every input and output in the pool its configuration says, data copied in."""
        node, xp = prepared.node, self.tiers.xp
        tier_of: dict[str, str] = {}
        for names, tiers in (
            (node.inputs, config.input_tiers),
            (node.outputs, config.output_tiers),
        ):
            for name, tier in zip(names, tiers, strict=True):
                if name:
                    tier_of[name] = tier
        offsets = {FAST: 0, SLOW: 0}
        views: dict[str, Array] = {}
        for name in distinct_tensors(node):
            tensor = self.graph.tensors[name]
            tier = tier_of[name]
            pool = self.tiers.fast if tier == FAST else self.tiers.slow
            offset = align_up(offsets[tier], alignment(tensor.nbytes))
            views[name] = pool.view(offset, tensor.shape, tensor.dtype)
            offsets[tier] = offset + padded_size(tensor.nbytes)
            if name in prepared.data:
                source = prepared.data[name]
                if xp is np:
                    np.copyto(views[name], source)
                else:
                    views[name].set(source)
            else:
                views[name].fill(0)  # first touch now, not in the first timed call
        scratch = None
        if prepared.scratch_bytes:
            offset = align_up(offsets[FAST], alignment(prepared.scratch_bytes))
            scratch = self.tiers.fast.view(offset, (prepared.scratch_bytes,), np.uint8)
            scratch.fill(0)
        inputs = [views[n] if n else None for n in node.inputs]
        outputs = [views[n] if n else None for n in node.outputs]
        return inputs, outputs, scratch

    def time(self, prepared: Prepared, config: Config, previous_s: float | None = None) -> Stats:
        """Median, min and max of the kernel's own time in this configuration (no penalty).

        ``previous_s``: the median of an earlier configuration of this kernel (it is warm).
        """
        inputs, outputs, scratch = self.place(prepared, config)
        kernel, xp = prepared.kernel, self.tiers.xp
        self._sync()

        def call() -> None:
            kernel.run(xp, inputs, outputs, scratch)

        if xp is np:
            return time_call(
                call, self.protocol, self._sync, previous_s=previous_s, cpu_clock=time.process_time
            )
        # On a GPU: device time between CUDA events around each call (the launch queue is
        # drained before each timed call, so no earlier work is counted).
        from autotm_execute.gpu import EventClock

        clock = EventClock(xp)
        return time_call(
            clock.wrap(call), self.protocol, clock.sync, clock=clock.clock, previous_s=previous_s
        )


def placement(node: Node, graph: Graph, config: Config, key: str = "") -> KernelPlacement:
    """The executor's description of a kernel whose tensors sit where ``config`` says."""

    def residency(name: str, tier: str) -> Residency | None:
        if not name:
            return None
        return Residency(name, tier, 0, graph.tensors[name].nbytes, node.index, node.index)

    return KernelPlacement(
        node=node.index,
        kernel_key=key,
        inputs=tuple(residency(n, t) for n, t in zip(node.inputs, config.input_tiers, strict=True)),
        outputs=tuple(
            residency(n, t) for n, t in zip(node.outputs, config.output_tiers, strict=True)
        ),
    )


def penalty_s(tiers: Tiers, node: Node, graph: Graph, config: Config) -> float:
    """The emulated slow-tier penalty of a configuration: the executor's own arithmetic.

    ``autotm_execute.emulation.slow_traffic`` counts the bytes and tensors (each distinct
    tensor once) exactly as an emulated run and a simulation do, and ``Tiers.kernel_penalty_s``
    prices them with the device model (0 on real tiers).
    """
    traffic = slow_traffic(placement(node, graph, config))
    return tiers.kernel_penalty_s(
        traffic.read_bytes, traffic.write_bytes, traffic.read_tensors, traffic.write_tensors
    )


def pool_sizes(
    needs: Sequence[tuple[int, int]], extra: Mapping[str, int] | None = None
) -> tuple[int, int]:
    """Pool sizes for a set of kernels' footprints, at least one page each."""
    extra = extra or {}
    fast = max([n[0] for n in needs] + [0]) + extra.get(FAST, 0)
    slow = max([n[1] for n in needs] + [0]) + extra.get(SLOW, 0)
    return max(align_up(fast), 4096), max(align_up(slow), 4096)
