"""Small, realistic input files for the report tests: run records, plans and profile folders.

These are TEST INPUTS made up from a toy timing model, not results of any run. Every document
is written through autotm_schemas.write_document / write_table, so it is validated against the
same schemas the real tools write with. Numbers follow simple rules so that tests can predict
them: a run's median time is ``fast_s * (1 + SLOWDOWN[formulation] * (1 - fast_share))``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from autotm_schemas import write_document, write_table

PROVENANCE = "emulated:optane-dc-2019"
#: Extra time per unit of slow share, by formulation (toy model).
SLOWDOWN = {"numa": 3.0, "static": 1.2, "synchronous": 0.8, "asynchronous": 0.5, "all-slow": 3.5}
#: Relative error of the plan's prediction, by formulation (toy model).
PREDICTION_ERROR = {"numa": 0.2, "static": -0.05, "synchronous": 0.08, "asynchronous": 0.1}
#: 2LM's time relative to all-slow in the large suite (toy model).
TWO_LM_FACTOR = 1.5
#: CUDA unified memory's time relative to all-fast on the GPU (toy model).
UNIFIED_FACTOR = 2.5
KERNELS = 12


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def device_model() -> dict[str, Any]:
    tier = {"read_latency_s": 1e-7, "write_latency_s": 1e-7}
    return {
        "format": "autotm.device-model/1",
        "name": "optane-dc-2019",
        "description": "test input",
        "sources": [{"citation": "test fixture"}],
        "tiers": {
            "fast": {"read_bytes_per_s": 1e11, "write_bytes_per_s": 8e10, **tier},
            "slow": {"read_bytes_per_s": 3e10, "write_bytes_per_s": 1e10, **tier},
        },
        "copy": copy_bandwidth(),
    }


def copy_bandwidth() -> dict[str, Any]:
    return {
        "slow_to_fast": {"sync_bytes_per_s": 29e9, "async_bytes_per_s": 2e9},
        "fast_to_slow": {"sync_bytes_per_s": 12e9, "async_bytes_per_s": 2.5e9},
    }


def tiers(device: str) -> dict[str, Any]:
    if device == "cuda":
        return {
            "fast": {"kind": "cuda-device", "description": "device memory"},
            "slow": {"kind": "cuda-pinned-host", "description": "pinned host memory"},
        }
    return {
        "fast": {"kind": "dram", "description": "DRAM"},
        "slow": {"kind": "emulated", "description": "DRAM with optane-dc-2019 costs injected"},
    }


@dataclass(frozen=True)
class Config:
    """One run to write: workload, placement and budget."""

    network: str
    batch: int
    formulation: str  # numa/static/synchronous/asynchronous/all-slow/all-fast/2lm/unified
    share: Fraction | None  # None: a byte limit without a ratio (large and GPU suites)
    device: str = "cpu"
    fast_s: float = 0.2
    footprint: int = 400_000_000

    @property
    def ratio(self) -> str | None:
        if self.share is None:
            return None
        return f"{self.share.denominator - self.share.numerator}:{self.share.numerator}"

    @property
    def stem(self) -> str:
        budget = (self.ratio or "limit").replace(":", "x")
        return f"{self.network}-b{self.batch}-{self.device}-{self.formulation}-{budget}"

    @property
    def fast_limit(self) -> int:
        if self.share is None:
            return self.footprint // 4
        return int(self.footprint * self.share)

    @property
    def effective_share(self) -> float:
        return float(self.share) if self.share is not None else self.fast_limit / self.footprint

    def median_s(self) -> float:
        if self.formulation == "all-fast":
            return self.fast_s
        if self.formulation == "2lm":
            return self.fast_s * (1 + SLOWDOWN["all-slow"]) / TWO_LM_FACTOR
        if self.formulation == "unified":
            return self.fast_s * UNIFIED_FACTOR
        return self.fast_s * (1 + SLOWDOWN[self.formulation] * (1 - self.effective_share))

    def predicted_s(self) -> float:
        return self.median_s() * (1 + PREDICTION_ERROR.get(self.formulation, 0.0))

    def moved(self) -> tuple[int, int]:
        """(slow_to_fast, fast_to_slow) bytes: only the movement formulations move."""
        if self.formulation not in ("synchronous", "asynchronous"):
            return 0, 0
        slow = 1 - self.effective_share
        return int(self.footprint * slow * 0.6), int(self.footprint * slow * 0.3)

    @property
    def has_plan(self) -> bool:
        return self.formulation not in ("all-fast", "2lm", "unified")


def plan_document(config: Config) -> dict[str, Any]:
    # Static keeps a little less in fast memory than synchronous in this toy model.
    share = config.effective_share * (0.9 if config.formulation == "static" else 1.0)
    tiers_in = ["fast" if i < round(share * KERNELS * 2) else "slow" for i in range(KERNELS * 2)]
    tiers_out = ["fast" if i < round(share * KERNELS) else "slow" for i in range(KERNELS)]
    kernels = [
        {
            "node": i,
            "kernel_key": f"k{i % 4}",
            "input_tiers": tiers_in[2 * i : 2 * i + 2],
            "output_tiers": [tiers_out[i]],
            "predicted_s": config.predicted_s() / KERNELS,
        }
        for i in range(KERNELS)
    ]
    s2f, f2s = config.moved()
    moves = [
        {
            "tensor": f"t{i}",
            "direction": direction,
            "kind": "sync",
            "start_node": 3,
            "done_by_node": 3,
            "bytes": size,
        }
        for i, (direction, size) in enumerate((("slow_to_fast", s2f), ("fast_to_slow", f2s)))
        if size
    ]
    heuristic = config.formulation in ("numa", "all-slow")
    return {
        "format": "autotm.plan/1",
        "graph_sha256": _sha(f"{config.network}/{config.batch}"),
        "network": config.network,
        "batch": config.batch,
        "formulation": config.formulation,
        "ratio": config.ratio,
        "fast_limit_bytes": config.fast_limit,
        "footprint_bytes": config.footprint,
        "tensors": [
            {
                "name": "t0",
                "bytes": 4096,
                "residencies": [{"tier": "slow", "offset": 0, "from_node": 0, "to_node": 1}],
            }
        ],
        "moves": moves,
        "kernels": kernels,
        "predicted": {
            "kernel_s": config.predicted_s(),
            "sync_move_s": 0.0,
            "async_move_s": 0.0,
            "async_overlap_s": 0.0,
            "total_s": config.predicted_s(),
        },
        "pools": {"fast_bytes": config.fast_limit, "slow_bytes": config.footprint},
        "solver": {
            "name": "heuristic" if heuristic else "cp-sat",
            "status": "heuristic" if heuristic else "optimal",
            "gap": None if heuristic else 0.0,
            "variables": 0 if heuristic else 50 * KERNELS * (3 if config.moved()[0] else 1),
            "constraints": 0 if heuristic else 80 * KERNELS * (2 if config.moved()[0] else 1),
            "build_s": 0.01,
            "solve_s": 0.0
            if heuristic
            else 0.1 + config.batch / 100 + 0.5 * config.moved()[0] / 1e9,
        },
        "provenance": PROVENANCE,
        "tool": {"name": "autotm-optimize", "version": "0.1.0"},
    }


def run_document(config: Config, plan_path: str | None) -> dict[str, Any]:
    median = config.median_s()
    s2f, f2s = config.moved()
    counts = {"count": 0, "bytes": 0}
    mode = {"all-fast": "all-fast", "2lm": "2lm", "unified": "unified"}.get(
        config.formulation, "plan"
    )
    plan = None
    if config.has_plan:
        plan = {
            "path": plan_path,
            "formulation": config.formulation,
            "ratio": config.ratio,
            "fast_limit_bytes": config.fast_limit,
            "predicted_s": config.predicted_s(),
        }
    emulated = config.device == "cpu"
    return {
        "format": "autotm.run/1",
        "graph": {
            "path": f"{config.network}.onnx",
            "sha256": _sha(f"{config.network}/{config.batch}"),
            "network": config.network,
            "batch": config.batch,
        },
        "plan": plan,
        "mode": mode,
        "fast_limit_bytes": config.fast_limit if mode in ("2lm", "unified") else None,
        "device": config.device,
        "tiers": tiers(config.device),
        "device_model": device_model() if emulated else None,
        "iterations": {
            "count": 3,
            "warmup": 1,
            "seconds": [median * 1.3, median * 0.99, median, median * 1.01],
            "median_s": median,
        },
        "kernel_s": median * 0.9,
        "moves": {
            "slow_to_fast": {
                "sync": {"count": 2 if s2f else 0, "bytes": s2f},
                "async": dict(counts),
            },
            "fast_to_slow": {
                "sync": {"count": 1 if f2s else 0, "bytes": f2s},
                "async": dict(counts),
            },
        },
        "pools": {
            "fast": {"size_bytes": config.fast_limit, "high_water_bytes": config.fast_limit // 2},
            "slow": {"size_bytes": config.footprint, "high_water_bytes": config.footprint // 2},
        },
        "peak_rss_bytes": config.footprint,
        "verify": {"identical": True, "loss": 2.3, "checked_tensors": 10},
        "provenance": PROVENANCE if emulated else "measured",
        "kernels_table": f"{config.stem}.kernels.parquet",
        "tool": {"name": "autotm-execute", "version": "0.1.0"},
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:01:00Z",
    }


def run_kernels_table(config: Config) -> dict[str, list[Any]]:
    n = 3
    return {
        "index": list(range(n)),
        "name": [f"node{i}" for i in range(n)],
        "op_type": ["Conv"] * n,
        "kernel_key": [f"k{i}" for i in range(n)],
        "input_tiers": [["fast", "slow"]] * n,
        "output_tiers": [["fast"]] * n,
        "median_s": [config.median_s() / n] * n,
        "min_s": [config.median_s() / n * 0.9] * n,
        "max_s": [config.median_s() / n * 1.1] * n,
        "sync_move_s": [0.0] * n,
        "async_wait_s": [0.0] * n,
        "provenance": [PROVENANCE if config.device == "cpu" else "measured"] * n,
    }


def write_profile(folder: Path, network: str, batch: int, device: str = "cpu") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    provenance = PROVENANCE if device == "cpu" else "measured"
    write_document(
        folder / "profile.json",
        {
            "format": "autotm.profile/1",
            "graph": {
                "path": f"{network}.onnx",
                "sha256": _sha(f"{network}/{batch}"),
                "batch": batch,
                "network": network,
            },
            "measure_batch": None,
            "tools": [{"name": "autotm-profile", "version": "0.1.0"}],
            "options": {},
            "started": "2026-01-01T00:00:00Z",
            "finished": "2026-01-01T00:00:10Z",
            "counts": {
                "nodes": KERNELS,
                "tensors": 30,
                "unique_kernels": 4,
                "configurations": 16,
                "timed": 16,
                "from_cache": 0,
            },
            "provenance": provenance,
        },
        "profile",
    )
    write_document(
        folder / "machine.json",
        {
            "format": "autotm.machine/1",
            "fingerprint": "fixture-machine-0001",
            "device": device,
            "cpu": {"model": "Test CPU", "cores": 2},
            "gpu": None,
            "memory_bytes": 24 * 2**30,
            "tiers": tiers(device),
            "device_model": device_model() if device == "cpu" else None,
            "copy_bandwidth": copy_bandwidth(),
            "provenance": provenance,
        },
        "machine",
    )
    write_table(
        folder / "nodes.parquet",
        {
            "index": [0],
            "name": ["n0"],
            "op_type": ["Relu"],
            "domain": [""],
            "kernel_key": ["k0"],
            "inputs": [["x"]],
            "outputs": [["y"]],
            "scratch_bytes": [0],
        },
        "nodes",
    )
    write_table(
        folder / "tensors.parquet",
        {
            "name": ["x", "y"],
            "bytes": [4096, 4096],
            "dtype": ["float32", "float32"],
            "shape": [[batch, 128], [batch, 128]],
            "kind": ["input", "activation"],
            "producer": [None, 0],
            "users": [[0], []],
            "fixed_tier": [None, None],
        },
        "tensors",
    )
    write_table(
        folder / "kernels.parquet",
        {
            "kernel_key": ["k0", "k0"],
            "op_type": ["Relu", "Relu"],
            "domain": ["", ""],
            "attributes": ["{}", "{}"],
            "input_shapes": [[[batch, 128]]] * 2,
            "input_bytes": [[4096]] * 2,
            "output_shapes": [[[batch, 128]]] * 2,
            "output_bytes": [[4096]] * 2,
            "input_tiers": [["fast"], ["slow"]],
            "output_tiers": [["fast"], ["slow"]],
            "median_s": [1e-5, 3e-5],
            "min_s": [0.9e-5, 2.9e-5],
            "max_s": [1.1e-5, 3.1e-5],
            "samples": [5, 5],
            "provenance": [provenance, provenance],
        },
        "kernels",
    )
    return folder


@dataclass
class Suite:
    """Paths of the fixture files and the configurations behind them."""

    root: Path
    runs: list[Path] = field(default_factory=list)
    plans: list[Path] = field(default_factory=list)
    profiles: list[Path] = field(default_factory=list)
    configs: dict[Path, Config] = field(default_factory=dict)


COMMON = (Fraction(1, 9), Fraction(1, 5), Fraction(1, 2))
CASE_STUDY = (
    Fraction(1),
    *(Fraction(1, d) for d in (2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 40, 60, 80, 100)),
    Fraction(2, 3),
    Fraction(3, 4),
)


def conventional_configs(network: str, batch: int, fast_s: float) -> list[Config]:
    configs = [
        Config(network, batch, "all-slow", Fraction(0), fast_s=fast_s),
        Config(network, batch, "all-fast", Fraction(1), fast_s=fast_s),
    ]
    for formulation in ("numa", "static", "synchronous"):
        configs += [Config(network, batch, formulation, s, fast_s=fast_s) for s in COMMON]
    return configs


def default_configs() -> list[Config]:
    """Every suite: conventional (two networks), case study, large, GPU."""
    configs = conventional_configs("vgg19-mini", 16, 0.2)
    configs += conventional_configs("inception_v4-mini", 8, 0.3)
    for formulation in ("static", "synchronous"):
        configs += [
            Config("inception_v4-mini", 8, formulation, s, fast_s=0.3)
            for s in CASE_STUDY
            if s not in COMMON
        ]
    for formulation in ("2lm", "static", "synchronous"):
        configs.append(Config("resnet200-mini", 32, formulation, None, fast_s=1.0))
    for batch in (4, 8):
        for formulation in ("unified", "synchronous", "asynchronous"):
            configs.append(
                Config("densenet264-mini", batch, formulation, None, device="cuda", fast_s=0.05)
            )
    return configs


def write_suite(root: Path, configs: list[Config] | None = None) -> Suite:
    """Write run records (with their kernel tables), plans and profiles under ``root``."""
    suite = Suite(root)
    for config in default_configs() if configs is None else configs:
        plan_path: str | None = None
        if config.has_plan:
            plan_file = root / "plans" / f"{config.stem}.plan.json"
            write_document(plan_file, plan_document(config), "plan")
            suite.plans.append(plan_file)
            plan_path = str(plan_file)
        run_file = root / "runs" / f"{config.stem}.run.json"
        write_document(run_file, run_document(config, plan_path), "run")
        write_table(
            run_file.parent / f"{config.stem}.kernels.parquet",
            run_kernels_table(config),
            "run-kernels",
        )
        suite.runs.append(run_file)
        suite.configs[run_file] = config
        profile = root / "profiles" / f"{config.network}-b{config.batch}"
        if profile not in suite.profiles:
            suite.profiles.append(
                write_profile(profile, config.network, config.batch, config.device)
            )
    return suite


def read_json(path: str | Path) -> dict[str, Any]:
    """A fixture document as written, for checking figure data against the records."""
    document: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return document


def median_of(path: str | Path) -> float:
    """The median iteration time a run record states."""
    return float(read_json(path)["iterations"]["median_s"])
