"""The executor: run training iterations of a graph along a schedule, on open tiers.

Set-up (untimed) takes the bound kernels (:func:`bind_kernels`, one per node, bound before the
pools are opened so that their scratch can be sized), every input and output as a view of its
pool at the schedule's offset, each kernel's scratch (where the plan places it, else one shared
region as large as the largest such request, appended to the scratch tier and aligned by
:mod:`autotm_schemas.alignment`), and each kernel's emulated slow-tier cost. Each iteration
then

1. writes the initial values (parameters, inputs, constants) into their first residencies
   (untimed: every iteration starts from the same state, so they are comparable);
2. walks the nodes in order: waits for the asynchronous moves due, runs the synchronous ones,
   starts the asynchronous ones that begin here on the copy thread (CUDA stream), runs the
   kernel and holds it for its emulated penalty;
3. waits for moves due at the end.

The hot loop touches only precomputed per-node tuples, so the executor's own Python cost per
kernel stays well under a microsecond (benchmarks/execute_dispatch.py measures it).

On a GPU, kernels and synchronous copies run on the current stream and are timed with CUDA
events (kernel start and end; for nodes with moves also the waits for copy events and the
synchronous copies); asynchronous copies run on the copier's own stream, ordered by events in
both directions (:class:`autotm_execute.copies.CudaAsyncCopier`); the host synchronises once
per iteration. Initial values are written before the iteration and, for a managed pool (the
unified-memory baseline), each part of it is prefetched back to its preferred location then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from autotm_graph.ir import Graph, Node
from autotm_schemas import BadInputError, SchemaError
from autotm_schemas.alignment import alignment, padded_size

from .copies import AsyncCopier, Ticket, copy_into, copy_sync, hold_until
from .emulation import CachePenalties, kernel_penalties
from .pools import align_up
from .schedule import Move, Residency, Schedule
from .tiers import Tiers

Binder = Callable[[Graph, Node], Any]


def bind_kernels(graph: Graph, binder: Binder | None = None) -> list[Any]:
    """One bound kernel per node (``autotm_execute.kernels.bind_node`` by default)."""
    if binder is None:
        from .kernels import bind_node

        binder = bind_node
    return [binder(graph, node) for node in graph.nodes]


def scratch_bytes_of(kernels: Sequence[Any], schedule: Schedule | None = None) -> int:
    """The shared scratch region's size: the largest scratch a kernel asks for, over the
    kernels whose scratch the schedule does not place itself (one region serves them all, in
    turn)."""
    placed = {k.node for k in schedule.kernels if k.scratch is not None} if schedule else set[int]()
    return max(
        (int(k.scratch_bytes) for node, k in enumerate(kernels) if node not in placed), default=0
    )


def check_plan_scratch(schedule: Schedule, kernels: Sequence[Any], path: str) -> None:
    """Refuse a plan whose scratch for a kernel is smaller than the kernel binds (SchemaError,
    exit 2): the plan was made from a profile of other kernel code or another batch."""
    for placement in schedule.kernels:
        if placement.scratch is None:
            continue
        need = int(kernels[placement.node].scratch_bytes)
        if need > placement.scratch[1]:
            raise SchemaError(
                path,
                f"kernels[{placement.node}].scratch_bytes",
                f"at least {need} (the scratch the kernel binds; re-profile and re-plan), got "
                f"{placement.scratch[1]}",
            )


@dataclass
class _Step:
    """Everything the hot loop needs for one node."""

    node: int
    run: Callable[..., None]
    inputs: list[Any]
    outputs: list[Any]
    scratch: Any
    waits: list[Move]
    syncs: list[tuple[Any, Any, float]]  # dst, src, hold seconds
    asyncs: list[tuple[int, Any, Any, float]]  # move index, dst, src, hold seconds

    @property
    def has_moves(self) -> bool:
        return bool(self.waits or self.syncs or self.asyncs)


@dataclass
class Timings:
    """Per-iteration and per-node seconds of a run."""

    iteration_s: list[float] = field(default_factory=list)
    kernel_s: list[list[float]] = field(default_factory=list)
    sync_move_s: list[list[float]] = field(default_factory=list)
    async_wait_s: list[list[float]] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.array(self.kernel_s, np.float64),
            np.array(self.sync_move_s, np.float64),
            np.array(self.async_wait_s, np.float64),
        )


class Executor:
    """Runs iterations of ``graph`` along ``schedule`` in ``tiers``."""

    def __init__(
        self,
        graph: Graph,
        schedule: Schedule,
        tiers: Tiers,
        values: Mapping[str, np.ndarray],
        kernels: Sequence[Any],
        cache: CachePenalties | None = None,
    ) -> None:
        self.graph = graph
        self.schedule = schedule
        self.tiers = tiers
        self.values = values
        self.cache = cache
        self.cuda = tiers.options.device == "cuda"
        self.kernels = list(kernels)
        if schedule.plan_summary is not None:
            check_plan_scratch(schedule, self.kernels, schedule.plan_summary["path"])
        self.scratch_bytes = scratch_bytes_of(self.kernels, schedule)
        self._views: dict[tuple[str, str, int], Any] = {}
        if cache is not None:
            self.penalties_cold = cache.cold
            self.penalties_steady = cache.steady
        else:
            self.penalties_steady = kernel_penalties(schedule, tiers.device_model)
            self.penalties_cold = self.penalties_steady
        self._copier: AsyncCopier | None = None
        self._tickets: list[Ticket | None] = [None] * len(schedule.moves)
        self._steps = self._build_steps()
        # The hot loop unpacks plain tuples: attribute lookups cost as much as the bookkeeping.
        self._hot = [
            (st.run, st.inputs, st.outputs, st.scratch, st.node, st if st.has_moves else None)
            for st in self._steps
        ]
        self._initial = [
            (value, [self.view(r) for r in schedule.initial(name)])
            for name, value in values.items()
            if name in graph.tensors
        ]
        self.timings = Timings()
        if self.cuda:
            self._prepare_cuda_events()

    # -- set-up -----------------------------------------------------------------------------

    @staticmethod
    def scratch_offset(schedule: Schedule, scratch_bytes: int) -> int:
        """Where the shared scratch region starts: after the schedule's pool, aligned."""
        return align_up(schedule.pool_bytes[schedule.scratch_tier], alignment(scratch_bytes))

    @staticmethod
    def pool_sizes(schedule: Schedule, scratch_bytes: int) -> dict[str, int]:
        """Pool sizes to open: the schedule's, with the shared scratch region (of
        :func:`scratch_bytes_of`) appended to the scratch tier."""
        sizes = dict(schedule.pool_bytes)
        if scratch_bytes:
            tier = schedule.scratch_tier
            sizes[tier] = Executor.scratch_offset(schedule, scratch_bytes) + padded_size(
                scratch_bytes
            )
        return sizes

    def view(self, place: Residency) -> Any:
        key = (place.tensor, place.tier, place.offset)
        array = self._views.get(key)
        if array is None:
            tensor = self.graph.tensors[place.tensor]
            pool = self.tiers.fast if place.tier == "fast" else self.tiers.slow
            array = pool.view(place.offset, tensor.shape, tensor.dtype)
            self._views[key] = array
        return array

    def _scratch(self) -> Any:
        """The shared scratch region, for kernels whose scratch the schedule does not place."""
        if not self.scratch_bytes:
            return None
        tier = self.schedule.scratch_tier
        pool = self.tiers.fast if tier == "fast" else self.tiers.slow
        offset = self.scratch_offset(self.schedule, self.scratch_bytes)
        return pool.bytes_view(offset, self.scratch_bytes)

    def _kernel_scratch(self, placement: Any, kernel: Any, shared: Any) -> Any:
        """A kernel's scratch: the plan's bytes for it (fast pool), else the shared region."""
        need = int(kernel.scratch_bytes)
        if not need:
            return None
        if placement.scratch is None:
            return shared
        return self.tiers.fast.bytes_view(placement.scratch[0], need)

    def _build_steps(self) -> list[_Step]:
        schedule, tiers = self.schedule, self.tiers
        scratch = self._scratch()
        steps = []
        for placement, kernel in zip(schedule.kernels, self.kernels, strict=True):
            k = placement.node
            syncs = [
                (
                    self.view(m.dst),
                    self.view(m.src),
                    tiers.copy_hold_s(m.direction, "sync", m.nbytes),
                )
                for m in schedule.syncs_before[k]
            ]
            asyncs = [
                (
                    m.index,
                    self.view(m.dst),
                    self.view(m.src),
                    tiers.copy_hold_s(m.direction, "async", m.nbytes),
                )
                for m in schedule.asyncs_at[k]
            ]
            steps.append(
                _Step(
                    node=k,
                    run=kernel.run,
                    inputs=[self.view(r) if r is not None else None for r in placement.inputs],
                    outputs=[self.view(r) if r is not None else None for r in placement.outputs],
                    scratch=self._kernel_scratch(placement, kernel, scratch),
                    waits=list(schedule.waits_before[k]),
                    syncs=syncs,
                    asyncs=asyncs,
                )
            )
        return steps

    def _prepare_cuda_events(self) -> None:
        """Timing events per node: kernel start and end, and (nodes with moves) the start of
        the waits for copy events and of the synchronous copies."""
        import cupy

        self._events = [
            [cupy.cuda.Event() for _ in range(4 if step.has_moves else 2)] for step in self._steps
        ]

    # -- running ----------------------------------------------------------------------------

    def write_initial_values(self) -> None:
        for value, views in self._initial:
            for target in views:
                copy_into(target, value)
        if self.cuda:
            import cupy

            cupy.cuda.get_current_stream().synchronize()
            settle = getattr(self.tiers.fast, "settle", None)
            if settle is not None:  # a managed pool: each part back where it is preferred
                settle()

    @property
    def copier(self) -> AsyncCopier:
        if self._copier is None:
            self._copier = self.tiers.async_copier()
        return self._copier

    def run(self, iterations: int, progress: Callable[[int, float], None] | None = None) -> Timings:
        """Run ``iterations`` iterations, each from the initial values."""
        for index in range(iterations):
            self.write_initial_values()
            penalties = self.penalties_cold if index == 0 else self.penalties_steady
            if self.cuda:
                self._iteration_cuda_checked(index)
            else:
                self._iteration_cpu([float(p) for p in penalties])
            if progress is not None:
                progress(index, self.timings.iteration_s[-1])
        return self.timings

    def _iteration_cpu(self, penalties: Sequence[float]) -> None:
        n = len(self._steps)
        kernel_s = [0.0] * n
        sync_s = [0.0] * n
        wait_s = [0.0] * n
        tickets = self._tickets
        xp = self.tiers.xp
        clock = time.perf_counter
        copier = self.copier if self.schedule.moves else None
        started = clock()
        for run, inputs, outputs, scratch, k, moving in self._hot:
            if moving is not None:
                assert copier is not None
                if moving.waits:
                    t0 = clock()
                    for move in moving.waits:
                        ticket = tickets[move.index]
                        assert ticket is not None
                        copier.wait(ticket)
                    wait_s[k] = clock() - t0
                if moving.syncs:
                    t1 = clock()
                    for dst, src, hold in moving.syncs:
                        copy_sync(dst, src, hold)
                    sync_s[k] = clock() - t1
                for index, dst, src, hold in moving.asyncs:
                    tickets[index] = copier.submit(dst, src, hold)
            t3 = clock()
            run(xp, inputs, outputs, scratch)
            if penalties[k]:
                hold_until(clock() + penalties[k])
            kernel_s[k] = clock() - t3
        for move in self.schedule.waits_before[n]:
            ticket = tickets[move.index]
            assert copier is not None and ticket is not None
            copier.wait(ticket)
        self.timings.iteration_s.append(clock() - started)
        self.timings.kernel_s.append(kernel_s)
        self.timings.sync_move_s.append(sync_s)
        self.timings.async_wait_s.append(wait_s)

    def _iteration_cuda_checked(self, index: int) -> None:
        """One GPU iteration; running out of device memory becomes a one-line error."""
        import cupy

        try:
            self._iteration_cuda()
        except cupy.cuda.memory.OutOfMemoryError as exc:
            raise BadInputError(
                f"iteration {index + 1}: device memory ran out beside the pools ({exc}); kernel "
                "temporaries need more than is left: lower --fast-memory or the plan's budget"
            ) from None

    def _iteration_cuda(self) -> None:
        """Kernels and synchronous copies on the current stream, asynchronous copies on the
        copier's stream ordered by events; device times from events, one host sync at the end."""
        import cupy

        stream = cupy.cuda.get_current_stream()
        copier = self.copier if self.schedule.moves else None
        tickets = self._tickets
        n = len(self._steps)
        stream.synchronize()
        started = time.perf_counter()
        for step, events in zip(self._steps, self._events, strict=True):
            if step.has_moves:
                events[2].record(stream)
                for move in step.waits:
                    ticket = tickets[move.index]
                    assert copier is not None and ticket is not None
                    copier.wait(ticket)
                events[3].record(stream)
                for dst, src, _ in step.syncs:  # the host does not wait: the stream orders it
                    copy_into(dst, src, stream=stream, blocking=False)
                for index, dst, src, hold in step.asyncs:
                    assert copier is not None
                    tickets[index] = copier.submit(dst, src, hold)
            events[0].record(stream)
            step.run(cupy, step.inputs, step.outputs, step.scratch)
            events[1].record(stream)
        for move in self.schedule.waits_before[n]:
            ticket = tickets[move.index]
            assert copier is not None and ticket is not None
            copier.wait(ticket)
        stream.synchronize()
        self.timings.iteration_s.append(time.perf_counter() - started)
        elapsed = cupy.cuda.get_elapsed_time
        kernel_s, wait_s, sync_s = [0.0] * n, [0.0] * n, [0.0] * n
        for step, e in zip(self._steps, self._events, strict=True):
            kernel_s[step.node] = float(elapsed(e[0], e[1])) / 1e3
            if step.has_moves:  # the compute stream's stall on copy events, then its copies
                wait_s[step.node] = float(elapsed(e[2], e[3])) / 1e3
                sync_s[step.node] = float(elapsed(e[3], e[0])) / 1e3
        self.timings.kernel_s.append(kernel_s)
        self.timings.async_wait_s.append(wait_s)
        self.timings.sync_move_s.append(sync_s)

    # -- results ----------------------------------------------------------------------------

    def read(self, name: str) -> list[np.ndarray]:
        """Host copies of a tensor's value in each of its final residencies."""
        out = []
        for place in self.schedule.final(name):
            array = self.view(place)
            host = array if isinstance(array, np.ndarray) else array.get()
            out.append(np.array(host, copy=True))
        return out

    def close(self) -> None:
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        self._views.clear()
        self._steps.clear()
        self._hot.clear()
        self._initial.clear()
