"""Run every torchvision export through `autotm-graph train` and record what happens.

Writes STATUS.md (per file and batch: passes, or the exact error; failures grouped by cause)
and known_gaps.json (the failing cases, which tests/graph/test_train_torchvision.py expects
to fail: they xfail there until they pass). Run it from the repository root with the
project's venv after the corpus or `train` changes:

    .venv/bin/python tests/graph/data/torchvision/status.py

It runs exactly the checks of the test (tests.graph.test_train_torchvision.check).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
sys.path.insert(0, str(ROOT))

from tests.graph import test_train_torchvision as corpus  # noqa: E402


def cause(message: str) -> str:
    """What a failure is about, without node names and files: the key failures group by."""
    unsupported = re.search(r"unsupported ops: (.*)", message)
    if unsupported:
        ops = re.findall(r"([\w:.]+) \(node '[^']*'\)", unsupported.group(1))
        return f"unsupported ops: {', '.join(ops)}"
    message = re.sub(r"^exit \d+: autotm-graph train: ", "", message)
    message = re.sub(r"[\w.]+\.onnx: ", "", message)
    message = re.sub(r"node '[^']*'", "node ...", message)
    message = re.sub(r"'[^']*' \(", "... (", message)
    return message[:160]


def main() -> int:
    rows: list[tuple[str, int, str, str]] = []  # file, batch, outcome, detail
    gaps: dict[str, dict[str, str]] = defaultdict(dict)
    worst: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in corpus.FILES:
            for batch in corpus.BATCHES:
                work = Path(tmp) / f"{name}.{batch}"
                work.mkdir()
                try:
                    result = corpus.check(name, batch, work)
                except Exception as exc:
                    message = corpus.describe(exc)
                    rows.append((name, batch, "fails", message))
                    gaps[name][str(batch)] = message
                else:
                    expected = result.get("expected")
                    detail = f"{result['nodes']} nodes, loss {result.get('loss', float('nan')):.6f}"
                    if expected is not None:
                        worst.append(result["rel"])
                        detail += (
                            f" (exported model: {expected:.6f}, rel. diff {result['rel']:.1e})"
                        )
                    rows.append((name, batch, "passes", detail))
                print(f"{name} batch {batch}: {rows[-1][2]}: {rows[-1][3]}", flush=True)
    elapsed = time.perf_counter() - started
    (HERE / "known_gaps.json").write_text(json.dumps(gaps, indent=1, sort_keys=True) + "\n")
    (HERE / "STATUS.md").write_text(render(rows, elapsed, max(worst, default=0.0)))
    return 0


NOTES = """## About the files

`{family}_{exporter}_{mode}.onnx` (`.onnx.gz` above 100 kB: `gunzip -k` gives the ONNX file),
made by make_torchvision_exports.py (its docstring has the recipe per family and how to
regenerate): batch 2, 10 classes, parameters as graph inputs with seeded init specs.

- TorchScript (`dynamo=False`, opset 17, dynamic batch). Training mode: BatchNormalization
  with `training_mode=1`, Dropout in training mode (ratio 0 included), stochastic depth as
  RandomUniformLike + Less. Eval mode (constant folding): every BatchNormalization after a
  Conv folded into it, Dropout gone, and computations on parameters alone folded into
  constants: the relative position bias that Swin and MaxViT gather from their tables
  stays as data in the eval files (not trainable there).
- Dynamo (`dynamo=True`, opset 20, static batch 2; the exporter's optimizer is run after
  the parameters became inputs). Training mode keeps Dropout (an in-place dropout becomes
  RandomUniformLike + Less) and stochastic depth (RandomUniformLike + Less, its shape
  template a constant at batch 2), but writes BatchNormalization in inference mode
  (running statistics): a dynamo "train" file differs from its "eval" file only by its
  random ops.

Seen on the first run of this corpus (an earlier `train`), since closed: unsupported ops
Einsum (MaxViT), GatherND (dynamo Swin, Swin v2, MaxViT), ReduceL2 (Swin v2), ScatterND with
computed inputs (Swin, Swin v2), and dynamo ConvNeXt (eval and train) at batch 3 refused
with "output 'logits': expected logits of shape [batch, classes], got [2, 10]" (a shape
constant at the export batch that re-batching missed).
"""


def render(rows: list[tuple[str, int, str, str]], elapsed: float, worst: float) -> str:
    passing = sum(1 for r in rows if r[2] == "passes")
    files = sorted({r[0] for r in rows})
    lines = [
        "# torchvision exports through `autotm-graph train`",
        "",
        "Written by `status.py` (same checks as tests/graph/test_train_torchvision.py: train at",
        f"batch {corpus.BATCHES[0]} and {corpus.BATCHES[1]}, validate, forward loss against the "
        "exported model in onnxruntime).",
        f"{passing} of {len(rows)} cases pass ({len(files)} files; checked in {elapsed:.0f} s);",
        f"largest relative loss difference from the exported model: {worst:.1e}.",
        "",
        "## Failures by cause",
        "",
    ]
    by_cause: dict[str, list[str]] = defaultdict(list)
    for name, batch, outcome, detail in rows:
        if outcome == "fails":
            by_cause[cause(detail)].append(f"{corpus.stem(name).removesuffix('.onnx')}@{batch}")
    for key, cases in sorted(by_cause.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"- **{key}** ({len(cases)}): {', '.join(cases)}")
    if not by_cause:
        lines.append("none")
    lines += [
        "",
        NOTES,
        "## Per file",
        "",
        "| file | bytes | batch | outcome | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, batch, outcome, detail in rows:
        size = (corpus.DATA / name).stat().st_size
        lines.append(f"| {name} | {size:,} | {batch} | {outcome} | {detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
