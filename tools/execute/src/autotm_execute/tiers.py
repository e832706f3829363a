"""The two memory tiers of a run: options, opening their pools, describing them.

Stable API (autotm-profile uses the same options and pools to time kernels in isolation)::

    parser = ArgumentParser(...)
    add_tier_arguments(parser)              # --device --slow-dir --slow-numa-node
                                            # --device-model --fast-memory
    options = tier_options_from_args(parser.parse_args(argv))
    with open_tiers(options, fast_bytes, slow_bytes) as tiers:
        x = tiers.fast.view(offset, shape, dtype)   # an array in the fast pool
        tiers.slow.size_bytes
        tiers.xp                    # numpy, or cupy on --device cuda
        tiers.device_model          # DeviceModel when the slow tier is emulated, else None
        tiers.provenance            # "measured" or "emulated:<model>"
        tiers.describe()            # the defs.schema.json `tiers` object
        tiers.kernel_penalty_s(slow_read_bytes, slow_write_bytes)   # 0 on real tiers
        tiers.copy_sync("slow_to_fast", dst, src)                   # held to the model
        tiers.async_copier()        # AsyncCopier (thread) or CudaAsyncCopier (stream)

Slow tier, by option:

* ``--slow-dir DIR``: a pool file in DIR mapped into memory (PMM App Direct when DIR is on an
  fsdax mount; the description records whether it is);
* ``--slow-numa-node N``: anonymous memory bound to NUMA node N (CXL expander, remote socket);
* neither (the default on a CPU): emulated -- host DRAM with the cost of the device model
  (``--device-model``, default ``optane-dc-2019``) injected after each kernel and copy;
  ``--device-model none`` turns emulation off (plain DRAM, for tests and overhead numbers);
* ``--device cuda``: device memory, one ``cudaMalloc`` capped by ``--fast-memory`` (default:
  what is free after the CUDA runtime's measured reserve, :mod:`autotm_execute.gpu`), and
  pinned host memory, one ``cudaHostAlloc``;
* :func:`open_unified` (``--mode unified``): one pool of CUDA managed memory, never more than
  is free, split at the fast budget between device- and host-preferred parts.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
from autotm_schemas import BadInputError
from autotm_schemas.units import format_bytes, parse_bytes

from . import numa
from .copies import AsyncCopier, CudaAsyncCopier, copy_sync
from .device_model import DEFAULT_MODEL, DeviceModel
from .pools import (
    AnonymousPool,
    CudaDevicePool,
    FilePool,
    PinnedHostPool,
    Pool,
)

NO_MODEL = "none"


@dataclass(frozen=True)
class TierOptions:
    """How to build the tiers. ``device_model`` None means the default for the set-up."""

    slow_dir: str | None = None
    slow_numa_node: int | None = None
    device_model: str | None = None
    device: str = "cpu"
    fast_memory: int | None = None

    @property
    def real_slow_tier(self) -> bool:
        return self.slow_dir is not None or self.slow_numa_node is not None or self.device == "cuda"

    @property
    def model_name(self) -> str | None:
        """The device model to emulate with, or None for real (or plain DRAM) tiers."""
        if self.device_model == NO_MODEL or self.real_slow_tier:
            return None
        return self.device_model or DEFAULT_MODEL


def add_tier_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the tier options shared by autotm-execute and autotm-profile."""
    group = parser.add_argument_group("memory tiers")
    group.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where kernels run (default cpu)"
    )
    slow = group.add_mutually_exclusive_group()
    slow.add_argument(
        "--slow-dir",
        metavar="DIR",
        help="slow tier: a pool file in DIR mapped into memory (PMM App Direct on an fsdax mount)",
    )
    slow.add_argument(
        "--slow-numa-node",
        metavar="N",
        type=int,
        help="slow tier: anonymous memory bound to NUMA node N (CXL expander, remote socket)",
    )
    group.add_argument(
        "--device-model",
        metavar="FILE|NAME",
        help=f"emulate the slow tier with this device model (default {DEFAULT_MODEL} when "
        "neither --slow-dir nor --slow-numa-node is given; 'none' for plain DRAM)",
    )
    group.add_argument(
        "--fast-memory",
        metavar="BYTES",
        help="fast-tier capacity, e.g. 8GiB (GPU: default the device memory free after the CUDA "
        "runtime's measured reserve; --mode 2lm/unified: the fast budget)",
    )


def tier_options_from_args(args: argparse.Namespace) -> TierOptions:
    """TierOptions from parsed arguments; BadInputError on contradictory options."""
    fast = getattr(args, "fast_memory", None)
    options = TierOptions(
        slow_dir=getattr(args, "slow_dir", None),
        slow_numa_node=getattr(args, "slow_numa_node", None),
        device_model=getattr(args, "device_model", None),
        device=getattr(args, "device", "cpu") or "cpu",
        fast_memory=parse_bytes(fast, "--fast-memory") if isinstance(fast, str) else fast,
    )
    check_options(options)
    return options


def check_options(options: TierOptions) -> None:
    if options.slow_dir is not None and options.slow_numa_node is not None:
        raise BadInputError("--slow-dir and --slow-numa-node: expected at most one slow tier")
    if options.device not in ("cpu", "cuda"):
        raise BadInputError(f"--device: expected cpu or cuda, got {options.device!r}")
    if options.device == "cuda" and (options.slow_dir or options.slow_numa_node is not None):
        raise BadInputError(
            "--device cuda: the slow tier is pinned host memory; drop --slow-dir/--slow-numa-node"
        )
    if options.slow_numa_node is not None and options.slow_numa_node < 0:
        raise BadInputError(
            f"--slow-numa-node: expected a node number >= 0, got {options.slow_numa_node}"
        )
    if options.device_model not in (None, NO_MODEL) and options.real_slow_tier:
        raise BadInputError(
            f"--device-model {options.device_model}: a device model emulates a slow tier; "
            "it cannot be combined with a real one (--slow-dir, --slow-numa-node, --device cuda)"
        )


def resolve_device_model(options: TierOptions) -> DeviceModel | None:
    """Load the device model the options ask for (None on real or plain tiers)."""
    name = options.model_name
    return DeviceModel.load(name) if name is not None else None


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (empty where there is none)."""
    info: dict[str, int] = {}
    path = Path("/proc/meminfo")
    if not path.exists():
        return info
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key] = int(parts[0]) * (1024 if parts[-1] == "kB" else 1)
    return info


def require_host_memory(what: str, nbytes: int, host: dict[str, int] | None = None) -> None:
    """BadInputError when ``nbytes`` of host memory is more than /proc/meminfo has available."""
    available = (host if host is not None else meminfo()).get("MemAvailable")
    if available is not None and nbytes > available:
        raise BadInputError(
            f"{what}: {nbytes} bytes ({format_bytes(nbytes)}) of host memory requested, "
            f"{available} bytes ({format_bytes(available)}) available"
        )


@dataclass
class Tiers:
    """The open pools of both tiers and what a run must know about them."""

    fast: Pool
    slow: Pool
    options: TierOptions
    device_model: DeviceModel | None
    xp: ModuleType
    description: dict[str, Any]
    _copiers: list[AsyncCopier] = field(default_factory=list)

    @property
    def emulated(self) -> bool:
        return self.device_model is not None

    @property
    def provenance(self) -> str:
        return self.device_model.provenance if self.device_model is not None else "measured"

    def describe(self) -> dict[str, Any]:
        """The defs.schema.json ``tiers`` object (a copy)."""
        return {tier: dict(value) for tier, value in self.description.items()}

    def kernel_penalty_s(
        self,
        slow_read_bytes: int,
        slow_write_bytes: int,
        read_tensors: int | None = None,
        write_tensors: int | None = None,
    ) -> float:
        """Seconds to add to a kernel for its slow-tier traffic; 0 on real tiers."""
        if self.device_model is None:
            return 0.0
        return self.device_model.kernel_penalty_s(
            slow_read_bytes, slow_write_bytes, read_tensors, write_tensors
        )

    def copy_hold_s(self, direction: str, mode: str, nbytes: int) -> float:
        """The least time a copy may take: the model's, under emulation; 0 on real tiers."""
        if self.device_model is None:
            return 0.0
        return self.device_model.copy_s(direction, mode, nbytes)

    def copy_sync(self, direction: str, dst: Any, src: Any) -> float:
        """A synchronous copy between the tiers, held to the model; returns elapsed seconds."""
        return copy_sync(dst, src, self.copy_hold_s(direction, "sync", int(src.nbytes)))

    def async_copier(self) -> AsyncCopier:
        """A new asynchronous copier (closed with the tiers)."""
        copier: AsyncCopier = CudaAsyncCopier() if self.options.device == "cuda" else AsyncCopier()
        self._copiers.append(copier)
        return copier

    def close(self) -> None:
        for copier in self._copiers:
            copier.close()
        self._copiers.clear()
        self.fast.close()
        self.slow.close()
        if self.options.device == "cuda" and self.xp is not np:
            from .gpu import release_cached

            release_cached(self.xp)

    def temporaries_bytes(self) -> int | None:
        """Device memory kernel temporaries took outside the pools (cupy's pool); None on CPU."""
        if self.options.device != "cuda" or self.xp is np:
            return None
        from .gpu import temporaries_bytes

        return temporaries_bytes(self.xp)

    def __enter__(self) -> Tiers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_tiers(options: TierOptions, fast_bytes: int, slow_bytes: int) -> Tiers:
    """Allocate both pools; BadInputError (exit 2) when a pool does not fit its tier."""
    check_options(options)
    model = resolve_device_model(options)
    if options.device == "cuda":
        return _open_cuda(options, fast_bytes, slow_bytes)
    if options.fast_memory is not None and fast_bytes > options.fast_memory:
        raise BadInputError(
            f"fast pool: {fast_bytes} bytes ({format_bytes(fast_bytes)}) is larger than the fast "
            f"tier (--fast-memory {options.fast_memory})"
        )
    host = meminfo()
    in_dram = fast_bytes + (
        slow_bytes if options.slow_dir is None and options.slow_numa_node is None else 0
    )
    require_host_memory("pools", in_dram, host)
    fast_desc: dict[str, Any] = {
        "kind": "dram",
        "description": "anonymous host memory (DRAM)",
        "capacity_bytes": options.fast_memory
        if options.fast_memory is not None
        else host.get("MemTotal"),
    }
    slow: Pool
    if options.slow_dir is not None:
        file_pool = FilePool(slow_bytes, options.slow_dir)
        slow = file_pool
        stats = os.statvfs(options.slow_dir)
        where = (
            f"a DAX mount ({options.slow_dir}): PMM App Direct"
            if file_pool.dax
            else f"{options.slow_dir} (not DAX: through the page cache)"
        )
        slow_desc: dict[str, Any] = {
            "kind": "file",
            "description": f"pool file mapped from {where}",
            "path": os.path.realpath(options.slow_dir),
            "dax": file_pool.dax,
            "capacity_bytes": stats.f_blocks * stats.f_frsize,
        }
    elif options.slow_numa_node is not None:
        info = numa.check_node(options.slow_numa_node, slow_bytes)
        slow = AnonymousPool(slow_bytes, numa_node=options.slow_numa_node)
        slow_desc = {
            "kind": "numa",
            "description": f"anonymous memory bound to NUMA node {options.slow_numa_node}",
            "numa_node": options.slow_numa_node,
            "capacity_bytes": info.get("MemTotal"),
        }
    elif model is not None:
        slow = AnonymousPool(slow_bytes)
        slow_desc = {
            "kind": "emulated",
            "description": f"host DRAM; the slow tier's cost injected from device model {model.name}",
            "capacity_bytes": None,
        }
    else:
        slow = AnonymousPool(slow_bytes)
        slow_desc = {
            "kind": "dram",
            "description": "anonymous host memory, no slow-tier cost (--device-model none)",
            "capacity_bytes": host.get("MemTotal"),
        }
    fast = AnonymousPool(fast_bytes)
    return Tiers(fast, slow, options, model, np, {"fast": fast_desc, "slow": slow_desc})


def _open_cuda(options: TierOptions, fast_bytes: int, slow_bytes: int) -> Tiers:
    """Device memory (one cudaMalloc) fast, pinned host memory (one cudaHostAlloc) slow."""
    from . import gpu

    cp = gpu.cupy_module()
    reserve = gpu.runtime_reserve(cp)
    allowance = gpu.device_allowance(gpu.free_device_bytes(cp), options.fast_memory)
    gpu.require_fits("fast pool", fast_bytes, allowance)
    require_host_memory("slow pool (pinned host memory)", slow_bytes)
    info = gpu.device_info(cp)
    fast = CudaDevicePool(fast_bytes)
    try:
        slow = PinnedHostPool(slow_bytes)
    except BaseException:
        fast.close()
        raise
    description = {
        "fast": {
            "kind": "cuda-device",
            "description": f"device memory of {info['name']} (one cudaMalloc of the pool)",
            "capacity_bytes": allowance,
            "reserve_bytes": reserve.reserve_bytes,
        },
        "slow": {
            "kind": "cuda-pinned-host",
            "description": "pinned host memory (one cudaHostAlloc of the pool)",
            "capacity_bytes": meminfo().get("MemTotal"),
        },
    }
    return Tiers(fast, slow, options, None, cp, description)


def open_unified(options: TierOptions, nbytes: int, budget_bytes: int | None = None) -> Tiers:
    """One pool of CUDA managed memory (the unified-memory baseline), never more than is free.

    With ``budget_bytes`` below ``nbytes`` the pool is split (:func:`gpu.unified_split`): the
    device part is preferred on the device, the rest on the host, mapped for the device.
    """
    from . import gpu
    from .pools import ManagedPool

    if options.device != "cuda":
        raise BadInputError("--mode unified: expected --device cuda (CUDA managed memory)")
    cp = gpu.cupy_module()
    reserve = gpu.runtime_reserve(cp)
    free = gpu.free_device_bytes(cp)
    gpu.require_fits(
        "--mode unified: the managed pool (managed memory is never oversubscribed here; "
        "cap the budget with --fast-memory or --ratio instead)",
        nbytes,
        free,
    )
    info = gpu.device_info(cp)
    pool = ManagedPool(nbytes, budget_bytes)
    split = pool.split
    description = {
        "fast": {
            "kind": "cuda-device",
            "description": f"CUDA managed memory on {info['name']}: {split.describe()}",
            "capacity_bytes": split.device_bytes,
            "reserve_bytes": reserve.reserve_bytes,
            "managed_device_bytes": split.device_bytes,
            "managed_host_bytes": split.host_bytes,
        },
        "slow": {
            "kind": "cuda-pinned-host",
            "description": "host memory holding the managed pool's part beyond the budget",
            "capacity_bytes": meminfo().get("MemTotal"),
        },
    }
    return Tiers(pool, AnonymousPool(0), options, None, cp, description)
