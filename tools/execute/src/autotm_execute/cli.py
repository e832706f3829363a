"""autotm-execute: run training iterations under a placement plan, and record what they cost.

    autotm-execute train.onnx [--plan plan.json] [--iterations N] [--warmup W] [--seed S]
                   [--verify] [--mode plan|all-fast|2lm|unified] -o run.json
    autotm-execute train.onnx [--plan plan.json | --mode 2lm] --simulate --profile DIR -o run.json

Writes run.json and, beside it, run.kernels.parquet. Everything is checked before the pools
are allocated (plan against graph, pools against tiers), and nothing is written on error.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from autotm_graph.ir import Graph, load_graph, verify_training_graph
from autotm_schemas import EXIT_CODES_HELP, BadInputError, ToolError, read_document
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool
from autotm_schemas.progress import Progress
from autotm_schemas.units import fast_limit_from_ratio, format_bytes, parse_ratio

from . import __version__
from .emulation import CachePenalties, cache_penalties
from .executor import Executor, bind_kernels, check_plan_scratch, scratch_bytes_of
from .kernels import bind_node
from .machine import machine_fingerprint
from .record import (
    TOOL,
    KernelStats,
    graph_record,
    iterations_record,
    kernels_table,
    now_iso,
    peak_rss_bytes,
    pools_record,
    write_run,
)
from .schedule import Schedule, plan_schedule, require_fast_kernels, unplanned_schedule
from .simulate import load_profile, simulate
from .tiers import (
    TierOptions,
    Tiers,
    add_tier_arguments,
    open_tiers,
    open_unified,
    resolve_device_model,
    tier_options_from_args,
)
from .values import initial_values

PROG = "autotm-execute"
EXIT_VERIFY = 1

EPILOG = f"""{EXIT_CODES_HELP}
  --verify failing (placement changed the numbers) exits 1 with a line starting
  'verify failed', and writes nothing.

examples:
  autotm-execute train.onnx -o allfast.json
  autotm-execute train.onnx --plan plan.json --iterations 10 --verify -o run.json
  autotm-execute train.onnx --mode 2lm --fast-memory 2GiB -o 2lm.json
  autotm-execute train.onnx --plan plan.json --device cuda --verify -o gpu.json
  autotm-execute train.onnx --mode unified --device cuda --fast-memory 10GB -o unified.json
  autotm-execute train.onnx --plan plan.json --simulate --profile profile/ -o predicted.json"""


class VerifyError(ToolError):
    """The planned run's results differ from the all-fast run's: exit 1."""

    exit_code = EXIT_VERIFY


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Run training iterations of an ONNX training graph under a placement plan "
        "on real or emulated memory tiers; write run.json and run.kernels.parquet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("graph", help="training graph (autotm-graph train)")
    parser.add_argument("--plan", metavar="PLAN", help="plan.json from autotm-optimize")
    parser.add_argument(
        "--mode",
        choices=("plan", "all-fast", "2lm", "unified"),
        help="plan (with --plan, the default then), all-fast (the default without), 2lm (DRAM "
        "as a cache of the slow tier), unified (CUDA managed memory; with --fast-memory or "
        "--ratio only that much of it is preferred on the device, the rest on the host)",
    )
    parser.add_argument(
        "--ratio",
        metavar="SLOW:FAST",
        help="2lm/unified: fast budget as a share of the all-fast footprint, e.g. 4:1",
    )
    parser.add_argument("--iterations", type=int, default=5, metavar="N", help="iterations (5)")
    parser.add_argument(
        "--warmup", type=int, metavar="W", help="leading iterations left out of medians (1)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the example inputs and of random ops such as stochastic depth (0)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run one all-fast iteration; fail unless the loss and every updated "
        "parameter are bit-identical",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="predict instead of running: replay against --profile without allocating tensors",
    )
    parser.add_argument("--profile", metavar="DIR", help="profile directory for --simulate")
    parser.add_argument("-o", "--output", required=True, metavar="RUN", help="run.json to write")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_tier_arguments(parser)
    add_verbose(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_or_exit(parser, argv)
    if isinstance(args, int):
        return args
    return run_tool(PROG, execute, args)


# -- argument checks ---------------------------------------------------------------------------


def resolve_mode(args: argparse.Namespace) -> str:
    mode = args.mode or ("plan" if args.plan else "all-fast")
    if mode == "plan" and not args.plan:
        raise BadInputError("--mode plan: expected --plan PLAN")
    if mode != "plan" and args.plan:
        raise BadInputError(f"--plan: a plan places tensors itself; drop --mode {mode}")
    return mode


def check_counts(args: argparse.Namespace) -> int:
    """The warm-up count; BadInputError when it leaves nothing to measure."""
    if args.iterations < 1:
        raise BadInputError(f"--iterations: expected at least 1, got {args.iterations}")
    warmup = args.warmup if args.warmup is not None else min(1, args.iterations - 1)
    if warmup < 0 or warmup >= args.iterations:
        raise BadInputError(
            f"--warmup: expected 0 <= W < --iterations ({args.iterations}), got {warmup}"
        )
    if args.seed < 0:
        raise BadInputError(f"--seed: expected a non-negative integer, got {args.seed}")
    return warmup


def fast_budget(args: argparse.Namespace, options: TierOptions, graph: Graph) -> int | None:
    """The fast budget of 2lm/unified runs: --fast-memory, else --ratio of the footprint."""
    if args.ratio is not None:
        if options.fast_memory is not None:
            raise BadInputError("--ratio and --fast-memory: expected one of them")
        return fast_limit_from_ratio(graph.peak_live_bytes(), parse_ratio(args.ratio))
    return options.fast_memory


# -- the run -----------------------------------------------------------------------------------


def execute(args: argparse.Namespace) -> int:
    options = tier_options_from_args(args)
    mode = resolve_mode(args)
    warmup = check_counts(args)
    if args.ratio is not None and mode not in ("2lm", "unified"):
        raise BadInputError("--ratio: only for --mode 2lm or unified (a plan has its own budget)")
    if mode == "2lm" and options.real_slow_tier:
        raise BadInputError(
            "--mode 2lm: the hardware manages both tiers; drop --slow-dir/--slow-numa-node "
            "(use --device-model none on a real Memory Mode machine)"
        )
    if mode == "unified" and options.device != "cuda":
        raise BadInputError("--mode unified: expected --device cuda")
    if args.simulate and not args.profile:
        raise BadInputError("--simulate: expected --profile PROFILE_DIR")
    if args.profile and not args.simulate:
        raise BadInputError("--profile: only with --simulate")
    if str(args.output) == "-":
        raise BadInputError("-o: expected a file path (run.json has a kernel table beside it)")

    graph = load_graph(args.graph)
    verify_training_graph(graph)
    schedule = build_schedule(graph, mode, args.plan)
    if options.device == "cuda":
        require_fast_kernels(schedule, args.plan or args.graph)
    budget = fast_budget(args, options, graph)
    if args.simulate:
        return run_simulation(args, graph, schedule, options, budget)
    return run_real(args, graph, schedule, options, budget, warmup)


def build_schedule(graph: Graph, mode: str, plan_path: str | None) -> Schedule:
    if mode == "plan":
        assert plan_path is not None
        return plan_schedule(graph, read_document(plan_path, "plan"), plan_path)
    return unplanned_schedule(graph, mode)


def open_run_tiers(
    mode: str, options: TierOptions, sizes: dict[str, int], budget: int | None
) -> Tiers:
    if mode == "unified":
        # --fast-memory (or --ratio) is the budget here, not a cap on the pool: the managed
        # pool holds the whole footprint and only its first `budget` bytes prefer the device.
        return open_unified(replace(options, fast_memory=None), sizes["fast"], budget)
    if mode == "2lm":
        model = resolve_device_model(options)
        if model is not None and budget is None:
            raise BadInputError(
                "--mode 2lm: expected the DRAM cache size (--fast-memory BYTES or --ratio S:F)"
            )
        # The cache is not a pool: everything lives in the one (slow) pool.
        tiers = open_tiers(replace(options, fast_memory=None), 0, sizes["slow"])
        fast = {
            "kind": "dram",
            "description": (
                "emulated DRAM cache in front of the slow tier: direct-mapped, 4 KiB lines, "
                "write-back (Intel Memory Mode)"
                if model is not None
                else "DRAM as the hardware-managed cache of Memory Mode (plain allocation)"
            ),
            "capacity_bytes": budget,
        }
        tiers.description = {"fast": fast, "slow": tiers.description["slow"]}
        return tiers
    return open_tiers(options, sizes["fast"], sizes["slow"])


def run_real(
    args: argparse.Namespace,
    graph: Graph,
    schedule: Schedule,
    options: TierOptions,
    budget: int | None,
    warmup: int,
) -> int:
    started = now_iso()
    values = initial_values(graph, args.seed)
    # Random kernels (stochastic depth) draw from the run's seed, the same in every iteration.
    kernels = bind_kernels(graph, functools.partial(bind_node, seed=args.seed))
    if schedule.plan_summary is not None:
        check_plan_scratch(schedule, kernels, schedule.plan_summary["path"])
    scratch = scratch_bytes_of(kernels, schedule)  # the shared region; a plan may place its own
    sizes = Executor.pool_sizes(schedule, scratch)
    tiers = open_run_tiers(schedule.mode, options, sizes, budget)
    cache: CachePenalties | None = None
    try:
        if schedule.mode == "2lm" and tiers.device_model is not None:
            assert budget is not None
            cache = cache_penalties(schedule, tiers.device_model, budget)
        executor = Executor(graph, schedule, tiers, values, kernels, cache)
        with Progress(PROG, args.iterations, quiet=args.quiet or args.iterations < 2) as bar:
            executor.run(
                args.iterations,
                lambda i, s: bar.advance(1, f"iteration {i + 1}: {s * 1e3:.2f} ms"),
            )
        # Copies of the results only when they will be compared: they would count in peak RSS.
        wanted = result_names(graph) if args.verify else [graph.meta.loss] if graph.meta else []
        outputs = {name: executor.read(name) for name in wanted}
        timings = executor.timings
        penalties = executor.penalties_steady
        executor.close()
        rss = peak_rss_bytes()
        description = tiers.describe()
        temporaries = tiers.temporaries_bytes()
        if temporaries is not None:  # GPU: device memory kernels took beside the pools
            description["fast"]["temporaries_bytes"] = temporaries
        model = tiers.device_model
        fingerprint = machine_fingerprint(tiers)
        # Emulation shaped the timings only where it charged something: a penalty, a held copy.
        charged = bool(np.any(penalties > 0)) or bool(schedule.moves) or cache is not None
        run_provenance = tiers.provenance if charged else "measured"
    finally:
        tiers.close()

    verify = None
    if args.verify:
        verify = verify_against_all_fast(graph, options, values, kernels, outputs)
    loss = loss_of(graph, outputs)
    kernel_s, sync_s, wait_s = timings.arrays()
    stats = KernelStats.from_samples(kernel_s, sync_s, wait_s, warmup)
    # A row is emulated where the model charged it: its penalty, or copies held before it.
    held = {m.start for m in schedule.moves if m.kind == "sync"}
    held |= {m.done_by for m in schedule.moves if m.kind == "async"}
    rows = [
        run_provenance if (penalties[k] > 0 or cache is not None or k in held) else "measured"
        for k in range(schedule.n_nodes)
    ]
    detail = {
        "iterations": run_provenance,
        "kernel_s": run_provenance,
        "moves": "measured",
        "pools": "measured",
        "peak_rss_bytes": "measured",
        "loss": "measured",
    }
    if cache is not None:
        detail["cache"] = "simulated"
    doc: dict[str, Any] = {
        "format": "autotm.run/1",
        "graph": graph_record(graph),
        "plan": schedule.plan_summary,
        "mode": schedule.mode,
        "fast_limit_bytes": budget if schedule.mode in ("2lm", "unified") else None,
        "device": options.device,
        "tiers": description,
        "device_model": model.to_json() if model is not None else None,
        "iterations": iterations_record(timings.iteration_s, warmup),
        "kernel_s": float(stats.median_s.sum()),
        "loss": loss,
        "moves": schedule.move_counts(),
        "pools": pools_record(schedule, sizes),
        "cache": cache.result.describe() if cache is not None else None,
        "peak_rss_bytes": rss,
        "verify": verify,
        "provenance": run_provenance,
        "provenance_detail": detail,
        "seed": args.seed,
        "scratch_bytes": scratch,
        "machine_fingerprint": fingerprint,
        "profile": None,
        "kernels_table": "",
        "tool": dict(TOOL),
        "started": started,
        "finished": now_iso(),
    }
    write_run(args.output, doc, kernels_table(graph, schedule, stats, rows))
    if not args.quiet:
        median = doc["iterations"]["median_s"]
        print(
            f"{PROG}: {schedule.mode}: median {median * 1e3:.3f} ms over "
            f"{args.iterations - warmup} iteration(s) ({run_provenance}), pools "
            f"{format_bytes(sizes['fast'])} fast + {format_bytes(sizes['slow'])} slow -> "
            f"{args.output}",
            file=sys.stderr,
        )
    return 0


def result_names(graph: Graph) -> list[str]:
    """The loss and every updated parameter: the graph outputs, in file order."""
    return [o.name for o in graph.model.graph.output if o.name in graph.tensors]


def loss_of(graph: Graph, outputs: dict[str, list[np.ndarray]]) -> float | None:
    if graph.meta is None or graph.meta.loss not in outputs or not outputs[graph.meta.loss]:
        return None
    value = float(np.asarray(outputs[graph.meta.loss][0]).reshape(-1)[0])
    return value if np.isfinite(value) else None


def verify_against_all_fast(
    graph: Graph,
    options: TierOptions,
    values: dict[str, np.ndarray],
    kernels: list[Any],
    outputs: dict[str, list[np.ndarray]],
) -> dict[str, Any]:
    """Run one all-fast iteration and compare results bit for bit; VerifyError if they differ."""
    reference = unplanned_schedule(graph, "all-fast")
    sizes = Executor.pool_sizes(reference, scratch_bytes_of(kernels))
    plain = TierOptions(device=options.device, device_model="none")
    with open_tiers(plain, sizes["fast"], sizes["slow"]) as tiers:
        executor = Executor(graph, reference, tiers, values, kernels)
        executor.run(1)
        expected = {name: executor.read(name)[0] for name in outputs}
        executor.close()
    checked = 0
    for name, copies in outputs.items():
        want = expected[name]
        for got in copies:
            checked += 1
            if got.shape != want.shape or got.tobytes() != want.tobytes():
                diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
                raise VerifyError(
                    f"verify failed: tensor {name!r} differs from the all-fast run "
                    f"(max abs difference {float(np.nanmax(diff)) if diff.size else 0:.3g})"
                )
    reference_loss = loss_of(graph, {name: [value] for name, value in expected.items()})
    return {"identical": True, "loss": reference_loss, "checked_tensors": checked}


def run_simulation(
    args: argparse.Namespace,
    graph: Graph,
    schedule: Schedule,
    options: TierOptions,
    budget: int | None,
) -> int:
    started = now_iso()
    if schedule.mode == "unified":
        raise BadInputError("--simulate: unified memory is not simulated (the driver pages it)")
    profile = load_profile(args.profile, graph)
    model = resolve_device_model(options) if options.device_model is not None else None
    result = simulate(graph, schedule, profile, model, budget)
    scratch = 0  # not allocated: the profile's nodes table carries scratch for the optimizer
    stats = KernelStats(
        result.kernel_s, result.min_s, result.max_s, result.sync_move_s, result.async_wait_s
    )
    used_model = model or profile.device_model
    detail = {
        "iterations": result.provenance,
        "kernel_s": result.provenance,
        "moves": "simulated",
        "pools": "simulated",
        "peak_rss_bytes": "measured",
    }
    if result.cache is not None:
        detail["cache"] = "simulated"
    doc: dict[str, Any] = {
        "format": "autotm.run/1",
        "graph": graph_record(graph),
        "plan": schedule.plan_summary,
        "mode": schedule.mode,
        "fast_limit_bytes": budget if schedule.mode == "2lm" else None,
        "device": profile.machine.get("device", options.device),
        "tiers": profile.machine["tiers"],
        "device_model": used_model.to_json() if used_model is not None else None,
        "iterations": iterations_record([result.iteration_s], 0),
        "kernel_s": float(result.kernel_s.sum()),
        "loss": None,
        "moves": schedule.move_counts(),
        "pools": pools_record(schedule, schedule.pool_bytes),
        "cache": result.cache.result.describe() if result.cache is not None else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "verify": None,
        "provenance": result.provenance,
        "provenance_detail": detail,
        "seed": args.seed,
        "scratch_bytes": scratch,
        "machine_fingerprint": profile.machine.get("fingerprint"),
        "profile": {
            "path": profile.path,
            "machine_fingerprint": profile.machine.get("fingerprint"),
            "provenance": profile.provenance,
        },
        "kernels_table": "",
        "tool": dict(TOOL),
        "started": started,
        "finished": now_iso(),
    }
    write_run(args.output, doc, kernels_table(graph, schedule, stats, result.row_provenance))
    if not args.quiet:
        print(
            f"{PROG}: {schedule.mode}: predicted {result.iteration_s * 1e3:.3f} ms per iteration "
            f"({result.provenance}) -> {args.output}",
            file=sys.stderr,
        )
    return 0


__all__ = ["VerifyError", "build_parser", "main"]
