"""``autotm-optimize explain``: a plan in a few readable lines.

Moves and bytes moved each way, the share of kernel inputs and outputs placed in fast memory,
the predicted time split, and, when the profile is at hand (the plan records its path, or
``--profile`` names it), the same network's predicted time with everything fast and everything
slow, computed from the same kernel table.
"""

from __future__ import annotations

from collections.abc import Sequence

from autotm_schemas.units import format_bytes

from .kernels import estimate_seconds, tiers_at
from .plan import Plan
from .problem import FAST, SLOW, Problem


def static_kernel_seconds(problem: Problem, fast: Sequence[bool]) -> float:
    """Predicted time of a plan where nothing moves: the sum of its kernels' times."""
    total = 0.0
    for node in problem.nodes:
        ins, outs = tiers_at(node, {t: fast[t] for t in node.tensors})
        total += estimate_seconds(problem, node, ins, outs)[0]
    return total


def _share(tiers: list[str], weights: list[int] | None) -> str:
    used = [i for i, tier in enumerate(tiers) if tier]
    if not used:
        return "none"
    fast = [i for i in used if tiers[i] == FAST]
    text = f"{100 * len(fast) / len(used):.1f}% of {len(used)}"
    if weights is not None:
        total = sum(weights[i] for i in used)
        if total:
            text += f" ({100 * sum(weights[i] for i in fast) / total:.1f}% of the bytes)"
    return text


def explain(plan: Plan, problem: Problem | None = None) -> str:
    lines = [
        f"{plan.formulation} plan for {plan.network} (batch {plan.batch})"
        + (f", ratio {plan.ratio} (slow:fast)" if plan.ratio else ""),
        f"fast limit {format_bytes(plan.fast_limit_bytes)} of a {format_bytes(plan.footprint_bytes)} "
        f"all-fast footprint; fast pool {format_bytes(plan.fast_pool_bytes)}, "
        f"slow pool {format_bytes(plan.slow_pool_bytes)}",
    ]
    kinds = {"sync": 0, "async": 0}
    for m in plan.moves:
        kinds[m.kind] += 1
    lines.append(f"moves: {len(plan.moves)} ({kinds['sync']} sync, {kinds['async']} async)")
    for direction, arrow in (("slow_to_fast", "slow -> fast"), ("fast_to_slow", "fast -> slow")):
        chosen = [m for m in plan.moves if m.direction == direction]
        if chosen:
            lines.append(
                f"  {arrow}: {len(chosen)} moves, {format_bytes(sum(m.bytes for m in chosen))}"
            )

    inputs: list[str] = []
    outputs: list[str] = []
    in_bytes: list[int] | None = [] if problem is not None else None
    out_bytes: list[int] | None = [] if problem is not None else None
    for k in plan.kernels:
        inputs += k.input_tiers
        outputs += k.output_tiers
        if problem is not None and in_bytes is not None and out_bytes is not None:
            node = problem.nodes[k.node]
            in_bytes += [problem.tensors[t].bytes if t is not None else 0 for t in node.inputs]
            out_bytes += [problem.tensors[t].bytes if t is not None else 0 for t in node.outputs]
    lines.append(f"kernel inputs in fast memory: {_share(inputs, in_bytes)}")
    lines.append(f"kernel outputs in fast memory: {_share(outputs, out_bytes)}")

    p = plan.predicted
    lines.append(
        f"predicted: {p.total_s:.6g} s = kernels {p.kernel_s:.6g} s + sync moves "
        f"{p.sync_move_s:.6g} s + async moves {p.async_move_s:.6g} s - {p.async_overlap_s:.6g} s hidden"
    )
    if problem is not None:
        fast_s = static_kernel_seconds(problem, [t.fixed_tier != SLOW for t in problem.tensors])
        slow_s = static_kernel_seconds(problem, [t.fixed_tier == FAST for t in problem.tensors])
        lines.append(
            f"  against all-fast {fast_s:.6g} s: {p.total_s / fast_s:.3f}x the time; "
            f"against all-slow {slow_s:.6g} s: {p.total_s / slow_s:.3f}x"
            if fast_s > 0 and slow_s > 0
            else f"  all-fast {fast_s:.6g} s, all-slow {slow_s:.6g} s"
        )
    else:
        lines.append("  (pass --profile PROFILE_DIR to compare with all-fast and all-slow)")

    s = plan.solver
    gap = "" if s.gap is None else f", gap {100 * s.gap:.2f}%"
    if s.name == "heuristic":
        lines.append("solver: none (a baseline heuristic)")
    else:
        lines.append(
            f"solver: {s.name}, {s.status}{gap}; {s.variables} variables, {s.constraints} "
            f"constraints; build {s.build_s:.2f} s, solve {s.solve_s:.2f} s, {s.rounds} solve(s)"
        )
    notes = plan.reductions
    if notes.get("fragmentation_resolves"):
        headroom = int(notes.get("fragmentation_headroom_bytes", 0))
        line = (
            f"fragmentation: {notes['fragmentation_resolves']} re-solve(s), a headroom of "
            f"{format_bytes(headroom)} ({100 * headroom / max(plan.fast_limit_bytes, 1):.1f}% "
            "of the limit)"
        )
        if "fragmentation_cost" in notes:
            line += f" costing {100 * notes['fragmentation_cost']:.3f}% against the first solve"
        if "gap_against_limit" in notes:
            line += f"; gap against the limit {100 * notes['gap_against_limit']:.2f}%"
        lines.append(line)
    if notes.get("model_error_bound_s"):
        lines.append(
            f"model: kernel times within {notes['model_error_bound_s']:.3g} s of the profile's "
            "in total (collapsed and affine nodes)"
        )
    if "fallback" in notes:
        lines.append(f"fallback: {notes['fallback']}")
    reductions = {
        k: v
        for k, v in notes.items()
        if isinstance(v, int) and not isinstance(v, bool) and v and not k.startswith("frag")
    }
    if reductions:
        lines.append("reductions: " + ", ".join(f"{k} {v}" for k, v in reductions.items()))
    lines.append(f"provenance of the kernel times: {plan.provenance}")
    return "\n".join(lines) + "\n"
