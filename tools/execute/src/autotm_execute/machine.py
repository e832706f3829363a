"""What machine and tier set-up a number was taken on, and a stable fingerprint of it.

The fingerprint keys autotm-profile's kernel cache and lets autotm-optimize and autotm-execute
warn when a plan is run on other hardware than it was profiled on. It hashes what changes
kernel times (CPU model and count, memory size, GPU, tier kinds, DAX, NUMA node, the device
model's numbers) and leaves out what does not (free memory, paths, the time of day).

Stable API::

    machine_fingerprint(tiers) -> str            # 16 hex digits
    machine_fields(tiers) -> dict                 # machine.json fields but copy_bandwidth,
                                                  # copy_samples and provenance
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from .tiers import Tiers, meminfo


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform says."""
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_cores() -> int:
    """CPUs this process may run on (the affinity mask), which is what kernels can use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_info(device: str) -> dict[str, Any] | None:
    """Name, memory, compute capability and CUDA versions of the current GPU; None on CPU runs.

    The versions are part of the fingerprint: another cupy or driver may time kernels
    differently, so cached timings from it are not reused.
    """
    if device != "cuda":
        return None
    from .gpu import cupy_module, device_info

    return device_info(cupy_module())


def _identity(tiers: Tiers) -> dict[str, Any]:
    description = tiers.describe()
    return {
        "cpu": cpu_model(),
        "cores": cpu_cores(),
        "memory_bytes": meminfo().get("MemTotal", 0),
        "device": tiers.options.device,
        "gpu": gpu_info(tiers.options.device),
        "tiers": {
            name: {key: tier.get(key) for key in ("kind", "dax", "numa_node")}
            for name, tier in sorted(description.items())
        },
        "device_model": tiers.device_model.sha256 if tiers.device_model is not None else None,
    }


def machine_fingerprint(tiers: Tiers) -> str:
    """16 hex digits naming the hardware and tier set-up."""
    canonical = json.dumps(_identity(tiers), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def machine_fields(tiers: Tiers) -> dict[str, Any]:
    """The machine.json fields this package knows; the profiler adds the copy measurements."""
    return {
        "fingerprint": machine_fingerprint(tiers),
        "device": tiers.options.device,
        "cpu": {"model": cpu_model(), "cores": cpu_cores()},
        "gpu": gpu_info(tiers.options.device),
        "memory_bytes": meminfo().get("MemTotal", 0),
        "tiers": tiers.describe(),
        "device_model": tiers.device_model.to_json() if tiers.device_model is not None else None,
    }
