"""The profile of one training graph: what to time, the cache, the timing loop, the outputs.

Steps, in order:

1. load and check the training graph; key every node (:func:`autotm_graph.ir.kernel_key`),
   decide fixed tiers and configurations (:mod:`autotm_profile.configs`);
2. bind every unique kernel at the graph's batch (its scratch bytes go to nodes.parquet);
   with ``--measure-batch`` also re-batch the graph (:mod:`autotm_profile.rebatch`);
3. open the tiers small to learn the machine fingerprint, and look every (kernel,
   configuration) to time up in the cache, in the namespace of the kernels' implementation
   (:mod:`autotm_profile.identity`);
4. open the tiers at the size the missing kernels need, time them kernel by kernel
   (committing each kernel to the cache), and measure copy bandwidths unless cached;
5. apply batch scaling and the emulated penalty, and write PROFILE_DIR atomically.

**Derived configurations.** On an emulated slow tier (the default on a CPU; also
``--device-model none``) the slow pool is host DRAM like the fast one: every configuration of a
kernel runs the same code on the same kind of memory, and an emulated run differs between them
only by the penalty the executor adds. Timing each configuration would only measure the same
thing again, with fresh noise (on a shared machine, a configuration timed during a stall came
out hundreds of times slower than its siblings), make the optimizer's kernel times
non-additive, and cost most of the profile's time. So each unique kernel is timed once, all
fast, and every configuration's row is that measurement shifted by the configuration's penalty
(the executor's own: ``emulation.slow_traffic`` priced by ``Tiers.kernel_penalty_s``), same
sample count. With a real slow tier (``--slow-dir``, ``--slow-numa-node``) every configuration
is timed in its own placement; on a GPU each kernel has one configuration anyway.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from autotm_execute.machine import machine_fields, machine_fingerprint
from autotm_execute.tiers import TierOptions, Tiers, open_tiers
from autotm_graph.ir import Graph, kernel_key, load_graph, verify_training_graph
from autotm_schemas import BadInputError
from autotm_schemas.progress import Progress
from autotm_schemas.provenance import combine
from autotm_schemas.units import format_bytes

from . import __version__
from .cache import Entry, KernelCache, default_cache_dir
from .configs import (
    DEFAULT_FIXED_BELOW,
    DEFAULT_MAX_VARIED,
    SLOW,
    Config,
    UniqueKernel,
    fixed_tiers,
    unique_kernels,
)
from .copies import DEFAULT_SIZES, CopySample, bandwidths, measure_copies, pool_needs
from .identity import implementation, namespace
from .measure import KernelTimer, bind, footprint, penalty_s, pool_sizes
from .output import KernelRow, kernels_table, nodes_table, tensors_table, write_profile_dir
from .rebatch import batch_dims, rebatch
from .timing import Protocol, Stats


@dataclass(frozen=True)
class Options:
    """Everything a profile run is asked to do."""

    tiers: TierOptions = field(default_factory=TierOptions)
    measure_batch: int | None = None
    recache: bool = False
    cache_dir: Path | None = None
    protocol: Protocol = field(default_factory=Protocol)
    fixed_below: int = DEFAULT_FIXED_BELOW
    max_varied: int = DEFAULT_MAX_VARIED
    quiet: bool = False
    copy_sizes: tuple[int, ...] = DEFAULT_SIZES

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.tiers.device,
            "slow_dir": self.tiers.slow_dir,
            "slow_numa_node": self.tiers.slow_numa_node,
            "device_model": self.tiers.model_name,
            "fast_memory": self.tiers.fast_memory,
            "measure_batch": self.measure_batch,
            "recache": self.recache,
            "cache": str(self.cache_dir or default_cache_dir()),
            "protocol": self.protocol.to_json(),
            "fixed_below": self.fixed_below,
            "max_varied": self.max_varied,
            "copy_sizes": list(self.copy_sizes),
        }


@dataclass(frozen=True)
class Plan:
    """What a graph reduces to before anything is timed."""

    graph: Graph
    keys: list[str]  # kernel key by node index
    fixed: dict[str, str | None]
    kernels: list[UniqueKernel]
    timed_graph: Graph  # the graph at the batch kernels are timed at
    timed_keys: dict[str, str]  # graph kernel key -> key at the timed batch (the cache key)
    factors: dict[str, float]  # graph kernel key -> time scale factor to the graph's batch
    measure_batch: int | None
    derived: bool = False  # only all-fast configurations are timed (see the module docstring)

    @property
    def batch(self) -> int:
        assert self.graph.meta is not None  # plan_profile verified the training graph
        return self.graph.meta.batch

    @property
    def configurations(self) -> int:
        return sum(len(k.configs) for k in self.kernels)

    def timed_configs(self, kernel: UniqueKernel) -> tuple[Config, ...]:
        """The configurations of a kernel that are measured: all, or all-fast only."""
        return kernel.configs[:1] if self.derived else kernel.configs

    def source(self, kernel: UniqueKernel, config: Config) -> Config:
        """The measured configuration a row's time comes from."""
        return kernel.configs[0] if self.derived else config

    @property
    def measurements(self) -> int:
        return sum(len(self.timed_configs(k)) for k in self.kernels)


def derives(options: Options) -> bool:
    """Whether rows are derived from one all-fast timing per kernel: every configuration would
    run in host DRAM (an emulated or plain slow tier on a CPU; see the module docstring)."""
    return not options.tiers.real_slow_tier


def plan_profile(graph: Graph, options: Options) -> Plan:
    """Steps 1-2 without binding: keys, fixed tiers, configurations, the re-batched graph."""
    verify_training_graph(graph)
    assert graph.meta is not None
    keys = [kernel_key(graph, node) for node in graph.nodes]
    fixed = fixed_tiers(graph, options.fixed_below)
    kernels = unique_kernels(
        graph, fixed, options.max_varied, single_config=options.tiers.device == "cuda", keys=keys
    )
    derived = derives(options)
    # configurations come all-fast first: that is the one a derived profile times
    assert all(k.configs[0].slow_positions == 0 for k in kernels)
    batch = graph.meta.batch
    measure = options.measure_batch
    if measure is not None and not 1 <= measure <= batch:
        raise BadInputError(
            f"--measure-batch: expected a batch between 1 and the graph's batch {batch}, "
            f"got {measure}"
        )
    if measure is None or measure == batch:
        return Plan(
            graph, keys, fixed, kernels, graph, {k.key: k.key for k in kernels},
            {k.key: 1.0 for k in kernels}, None, derived,
        )  # fmt: skip
    dims = batch_dims(graph)
    timed = rebatch(graph, measure, dims)
    timed_keys = {k.key: kernel_key(timed, k.node) for k in kernels}
    factors = {
        k.key: batch / measure if dims.carries_batch((*k.node.inputs, *k.node.outputs)) else 1.0
        for k in kernels
    }
    return Plan(graph, keys, fixed, kernels, timed, timed_keys, factors, measure, derived)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions() -> list[dict[str, str]]:
    import autotm_execute
    import autotm_graph
    import autotm_schemas

    return [
        {"name": "autotm-profile", "version": __version__},
        {"name": "autotm-execute", "version": autotm_execute.__version__},
        {"name": "autotm-graph", "version": autotm_graph.__version__},
        {"name": "autotm-schemas", "version": autotm_schemas.__version__},
        {"name": "numpy", "version": np.__version__},
        {"name": "python", "version": platform.python_version()},
    ]


def _weight(graph: Graph, kernel: UniqueKernel, protocol: Protocol) -> float:
    """Estimated seconds to time one configuration: the budget plus moving its bytes."""
    nbytes = sum(graph.tensors[n].nbytes for n in (*kernel.node.inputs, *kernel.node.outputs) if n)
    return protocol.budget_s + 3 * nbytes / 2e9 + 1e-3


def profile(
    graph_path: str, output: Path, options: Options, stderr: TextIO | None = None
) -> dict[str, Any]:
    """Profile a training graph into ``output``; returns the manifest (profile.json)."""
    err = stderr or sys.stderr
    started, clock = _now(), time.monotonic()
    graph = load_graph(graph_path)
    plan = plan_profile(graph, options)
    say = (lambda text: None) if options.quiet else (lambda text: print(text, file=err))
    say(
        f"autotm-profile: {graph.network} batch {plan.batch}: {len(graph.nodes)} nodes -> "
        f"{len(plan.kernels)} unique kernels, {plan.configurations} configurations"
        + (f" (timed at batch {plan.measure_batch})" if plan.measure_batch else "")
        + (
            f"; slow tier in DRAM: {plan.measurements} all-fast timings, the other "
            f"{plan.configurations - plan.measurements} configurations derived"
            if plan.derived
            else ""
        )
    )
    bound = {k.key: bind(graph, k.node) for k in plan.kernels}
    scratch = {key: int(kernel.scratch_bytes) for key, kernel in bound.items()}

    parts = implementation()
    with open_tiers(options.tiers, 4096, 4096) as probe:
        fingerprint = machine_fingerprint(probe)
        space = namespace(fingerprint, parts)
        with KernelCache(options.cache_dir or default_cache_dir(), __version__) as cache:
            measured, todo = _lookup(plan, cache, space, options.recache)
            copy_samples = [
                CopySample(*row) for row in ([] if options.recache else cache.lookup_copies(space))
            ]
            counts = {
                "nodes": len(graph.nodes),
                "tensors": len(graph.tensors),
                "unique_kernels": len(plan.kernels),
                "configurations": plan.configurations,
                "timed": sum(len(configs) for _, configs in todo),
                "from_cache": len(measured),
                "derived": plan.configurations - plan.measurements,
                "discarded_calls": 0,
                "unsettled": 0,
                "fixed_tensors": sum(1 for tier in plan.fixed.values() if tier is not None),
            }
            say(
                f"autotm-profile: machine {fingerprint}, kernels {space.split('/')[-1]}: "
                f"{counts['from_cache']} timings from the cache ({cache.path}), "
                f"{counts['timed']} to take"
            )
            if todo or not copy_samples:
                _time_missing(plan, options, todo, bound, cache, space, measured, copy_samples, err)
                counts["discarded_calls"] = sum(stats.discarded for stats in measured.values())
                counts["unsettled"] = sum(not stats.settled for stats in measured.values())
            elif not options.quiet:
                Progress("profiling", 1, err, quiet=False).finish("all from cache")
        rows = _rows(plan, probe, measured)
        machine = {
            "format": "autotm.machine/1",
            **machine_fields(probe),
            "copy_bandwidth": bandwidths(copy_samples),
            "copy_samples": [s.to_json() for s in copy_samples],
            "provenance": probe.provenance,
        }
        scaled = any(f != 1.0 for f in plan.factors.values())
        provenance = combine(probe.provenance, f"scaled:{plan.measure_batch}" if scaled else None)
    manifest = {
        "format": "autotm.profile/1",
        "graph": {
            "path": str(graph_path),
            "sha256": graph.sha256,
            "batch": plan.batch,
            "network": graph.network,
        },
        "measure_batch": plan.measure_batch,
        "tools": _versions(),
        "options": options.to_json(),
        "started": started,
        "finished": _now(),
        "counts": counts,
        "provenance": provenance,
        "machine_fingerprint": fingerprint,
        "configuration_times": "derived" if plan.derived else "measured",
        "cache_namespace": space,
        "kernel_implementation": parts,
        "seconds": round(time.monotonic() - clock, 3),
    }
    write_profile_dir(
        output,
        kernels_table(graph, rows),
        nodes_table(graph, plan.keys, scratch),
        tensors_table(graph, plan.fixed),
        machine,
        manifest,
    )
    say(
        f"autotm-profile: {counts['unique_kernels']} unique kernels, "
        f"{counts['configurations']} configurations ({counts['timed']} timed, "
        f"{counts['from_cache']} from cache, {counts['derived']} derived"
        + (
            f"; {counts['discarded_calls']} stalled calls set aside"
            if counts["discarded_calls"]
            else ""
        )
        + f") in {manifest['seconds']:.1f} s -> {output}"
    )
    if counts["unsettled"]:
        say(
            f"autotm-profile: warning: {counts['unsettled']} timing(s) kept a median over "
            f"{options.protocol.spread_limit:g}x their fastest call through the whole extension "
            "(a busy machine); rerun with --recache when it is quieter"
        )
    return manifest


def _lookup(
    plan: Plan, cache: KernelCache, space: str, recache: bool
) -> tuple[dict[tuple[str, str], Stats], list[tuple[UniqueKernel, list[Config]]]]:
    """Step 3: the cached timings by (kernel key, configuration), and what is left to time.

    ``space`` is the cache namespace (machine and implementation, :mod:`.identity`).
    """
    measured: dict[tuple[str, str], Stats] = {}
    todo: list[tuple[UniqueKernel, list[Config]]] = []
    for kernel in plan.kernels:
        wanted = plan.timed_configs(kernel)
        texts = [c.text for c in wanted]
        hits = {} if recache else cache.lookup(space, plan.timed_keys[kernel.key], texts)
        for text, entry in hits.items():
            measured[(kernel.key, text)] = entry.stats
        missing = [c for c in wanted if c.text not in hits]
        if missing:
            todo.append((kernel, missing))
    return measured, todo


def _rows(plan: Plan, tiers: Tiers, measured: dict[tuple[str, str], Stats]) -> list[KernelRow]:
    """Step 5: every configuration's time at the graph's batch, with its provenance.

    The measured time (of the configuration itself, or of the kernel all fast when the plan
    derives) is scaled to the graph's batch first, then the emulated penalty of the
    configuration's bytes at that batch is added (0 on real tiers). A row whose tensors are all
    fast has no emulated part: it is ``measured`` (or only ``scaled``).
    """
    rows = []
    for kernel in plan.kernels:
        factor = plan.factors[kernel.key]
        for config in kernel.configs:
            base = measured[(kernel.key, plan.source(kernel, config).text)]
            penalty = penalty_s(tiers, kernel.node, plan.graph, config)
            emulated = config.slow_positions > 0 and tiers.emulated
            provenance = combine(
                tiers.provenance if emulated else "measured",
                f"scaled:{plan.measure_batch}" if factor != 1.0 else None,
            )
            rows.append(KernelRow(kernel, config, base.scaled(factor).shifted(penalty), provenance))
    return rows


def _retry_unsettled(
    plan: Plan,
    timer: KernelTimer,
    todo: Sequence[tuple[UniqueKernel, list[Config]]],
    prepared_kernels: dict[str, Any],
    cache: KernelCache,
    space: str,
    measured: dict[tuple[str, str], Stats],
    progress: Progress,
) -> None:
    """Time once more, after every other kernel, each configuration whose timing ended with a
    wide spread (a burst of slow calls outlasting the protocol's extension; see
    :mod:`autotm_profile.timing`): bursts come and go, and a later try often misses it. The
    settled timing wins, else the lower median; the stalled calls of both tries are counted."""
    retry = [
        (kernel, config)
        for kernel, configs in todo
        for config in configs
        if not measured[(kernel.key, config.text)].settled
    ]
    for number, (kernel, config) in enumerate(retry, 1):
        prepared = timer.prepare(kernel.node, prepared_kernels[kernel.key])
        first = measured[(kernel.key, config.text)]
        second = timer.time(prepared, config)
        best = second if second.settled or second.median_s < first.median_s else first
        best = replace(best, discarded=first.discarded + second.discarded)
        measured[(kernel.key, config.text)] = best
        cache.store(
            space, plan.timed_keys[kernel.key], {config.text: Entry(best, prepared.scratch_bytes)}
        )
        progress.advance(0.0, f"again: {number}/{len(retry)} {kernel.node.op_type}")


def _time_missing(
    plan: Plan,
    options: Options,
    todo: Sequence[tuple[UniqueKernel, list[Config]]],
    bound: dict[str, Any],
    cache: KernelCache,
    space: str,
    measured: dict[tuple[str, str], Stats],
    copy_samples: list[CopySample],
    err: TextIO,
) -> None:
    """Step 4: time what the cache lacks, committing each kernel; measure copies if needed.

    ``space`` is the cache namespace the timings are stored under.
    """
    graph = plan.timed_graph
    prepared_kernels = (
        bound if graph is plan.graph else {k.key: bind(graph, k.node) for k, _ in todo}
    )
    needs = [footprint(graph, k.node, int(prepared_kernels[k.key].scratch_bytes)) for k, _ in todo]
    need_copies = not copy_samples
    extra_fast, extra_slow = pool_needs(options.copy_sizes) if need_copies else (0, 0)
    fast_bytes, slow_bytes = pool_sizes([*needs, (extra_fast, extra_slow)])
    weights = {k.key: _weight(graph, k, options.protocol) for k, _ in todo}
    total = sum(weights[k.key] * len(c) for k, c in todo) + (0.5 if need_copies else 0.0)
    with (
        open_tiers(options.tiers, fast_bytes, slow_bytes) as tiers,
        Progress("profiling", total, err, quiet=options.quiet) as progress,
    ):
        if not options.quiet:
            print(
                f"autotm-profile: pools fast {format_bytes(fast_bytes)}, "
                f"slow {format_bytes(slow_bytes)}",
                file=err,
            )
        timer = KernelTimer(graph, tiers, options.protocol)
        for number, (kernel, configs) in enumerate(todo, 1):
            prepared = timer.prepare(kernel.node, prepared_kernels[kernel.key])
            entries: dict[str, Entry] = {}
            previous: float | None = None
            for config in configs:
                stats = timer.time(prepared, config, previous)
                previous = stats.median_s
                entries[config.text] = Entry(stats, prepared.scratch_bytes)
                measured[(kernel.key, config.text)] = stats
                slow = sum(t == SLOW for t in (*config.input_tiers, *config.output_tiers))
                progress.advance(
                    weights[kernel.key],
                    f"kernel {number}/{len(todo)} {kernel.node.op_type}"
                    + ("" if plan.derived else f" {slow} slow"),
                )
            cache.store(space, plan.timed_keys[kernel.key], entries)
        _retry_unsettled(plan, timer, todo, prepared_kernels, cache, space, measured, progress)
        if need_copies:
            samples = measure_copies(tiers, options.copy_sizes)
            cache.store_copies(space, [(s.direction, s.mode, s.nbytes, s.seconds) for s in samples])
            copy_samples.extend(samples)
            progress.advance(0.5, "copy bandwidth")
