"""GPU helpers of the CUDA tiers: cupy on demand, the measured runtime reserve, the budget split
of the unified-memory baseline, managed-memory advice, and CUDA-event timing.

Why a module of its own: everything here needs a GPU to run, yet the arithmetic it rests on (how
much device memory a run may take, which bytes of a managed pool are preferred where) must be
testable on a machine without one. So cupy is never imported when this module is: functions that
touch a device take the cupy module (from :func:`cupy_module`), and the arithmetic is pure.

Device memory a run may take (the default of ``--fast-memory`` on ``--device cuda``)::

    free_before  = cudaMemGetInfo().free, once the CUDA context exists
    (create the cuBLAS handle, run a matrix product, a reduction and an elementwise kernel,
     synchronise, release cupy's cached blocks)
    free_after   = cudaMemGetInfo().free
    reserve      = free_before - free_after        # measured: what the runtime took
    allowance    = free_after                      # = free_before - reserve

The context itself is already excluded from ``free_before`` (cudaMemGetInfo creates it). The
measurement is made once per process and device: afterwards the runtime has taken its share, so
the allowance of a later call is simply the free memory then. Kernel temporaries that cupy's
memory pool allocates during a run come on top; the run records how much that was
(``tiers.fast.temporaries_bytes`` in run.json) and stops with a one-line error if the device
runs out.

Unified-memory baseline under a budget: one managed allocation of the whole footprint (never
more than is free, so the driver never oversubscribes the card), whose first ``budget`` bytes
(rounded down to 2 MiB) are preferred on the device and the rest preferred on the host and
mapped for the device (``cudaMemAdviseSetPreferredLocation`` = ``cudaCpuDeviceId`` plus
``cudaMemAdviseSetAccessedBy`` = the device): kernels reach the overflow over the interconnect,
as a card whose memory is the budget would have to.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from autotm_schemas import BadInputError
from autotm_schemas.units import format_bytes

#: cudaCpuDeviceId: the host as a "device" in managed-memory advice and prefetches.
CPU_DEVICE_ID = -1
#: cudaMemoryAdvise values (the same numbers in the driver's CUmem_advise).
ADVISE_SET_PREFERRED_LOCATION = 3
ADVISE_SET_ACCESSED_BY = 5
#: cudaDevAttrConcurrentManagedAccess: the device can access managed memory the host may use.
ATTR_CONCURRENT_MANAGED_ACCESS = 89
#: The device part of a managed pool is a multiple of this: the GPU's large-page size, so that
#: no page straddles the two preferred locations.
MANAGED_GRANULE = 2 * 2**20
#: CUmemLocationType CU_MEM_LOCATION_TYPE_HOST (CUDA 12.2+ location-based advice).
_MEM_LOCATION_HOST = 2


def cupy_module() -> ModuleType:
    """cupy, with a usable device; BadInputError (exit 2) in one line when either is missing."""
    try:
        import cupy
    except ImportError:
        raise BadInputError(
            "--device cuda: expected cupy (on a CUDA machine: `uv pip install cupy-cuda12x` "
            "or cupy-cuda13x to match the driver)"
        ) from None
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise BadInputError(f"--device cuda: no usable CUDA device ({exc})") from None
    if count < 1:
        raise BadInputError("--device cuda: no CUDA device")
    return cupy


# -- device memory a run may take -------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeReserve:
    """Device memory before and after the runtime's first use (see the module docstring)."""

    total_bytes: int
    free_before: int
    free_after: int

    @property
    def reserve_bytes(self) -> int:
        """What the cuBLAS handle, its workspace and the loaded kernels took."""
        return max(0, self.free_before - self.free_after)


MemInfo = Callable[[], tuple[int, int]]


def measure_reserve(mem_get_info: MemInfo, warm_up: Callable[[], None]) -> RuntimeReserve:
    """Free device memory around ``warm_up``; ``mem_get_info`` returns (free, total)."""
    free_before, total = mem_get_info()
    warm_up()
    free_after, _ = mem_get_info()
    return RuntimeReserve(int(total), int(free_before), int(free_after))


def device_allowance(free_bytes: int, fast_memory: int | None) -> int:
    """Device memory a pool may take: ``--fast-memory`` when given (at most what is free),
    else everything free (already net of the measured runtime reserve)."""
    if fast_memory is None:
        return max(0, int(free_bytes))
    if fast_memory > free_bytes:
        raise BadInputError(
            f"--fast-memory {fast_memory} ({format_bytes(fast_memory)}): more than the "
            f"{free_bytes} bytes ({format_bytes(free_bytes)}) of device memory free after the "
            "CUDA runtime's reserve"
        )
    return int(fast_memory)


def require_fits(what: str, nbytes: int, allowance: int) -> None:
    """BadInputError unless a pool of ``nbytes`` fits in ``allowance`` bytes."""
    if nbytes > allowance:
        raise BadInputError(
            f"{what}: {nbytes} bytes ({format_bytes(nbytes)}) is larger than the device memory "
            f"allowed ({allowance} bytes, {format_bytes(allowance)})"
        )


def release_cached(cp: ModuleType) -> None:
    """Hand cupy's cached device and pinned blocks back to CUDA, so free memory is honest."""
    cp.get_default_memory_pool().free_all_blocks()
    cp.get_default_pinned_memory_pool().free_all_blocks()


def warm_up_runtime(cp: ModuleType) -> None:
    """Create what the runtime creates on first use: cuBLAS handle and workspace, kernels."""
    a = cp.ones((256, 256), np.float32)
    b = cp.matmul(a, a)  # the cuBLAS handle and its workspace
    cp.add(b, a, out=b)  # an elementwise kernel
    b.sum()  # a reduction kernel
    cp.cuda.get_current_stream().synchronize()
    del a, b
    release_cached(cp)


_RESERVES: dict[int, RuntimeReserve] = {}


def runtime_reserve(cp: ModuleType) -> RuntimeReserve:
    """The runtime reserve of the current device, measured on the first call in the process."""
    device = int(cp.cuda.Device().id)
    if device not in _RESERVES:
        release_cached(cp)

        def mem_get_info() -> tuple[int, int]:
            free, total = cp.cuda.runtime.memGetInfo()
            return int(free), int(total)

        _RESERVES[device] = measure_reserve(mem_get_info, lambda: warm_up_runtime(cp))
    return _RESERVES[device]


def free_device_bytes(cp: ModuleType) -> int:
    """Free device memory now, after the runtime reserve is taken and cupy's cache released."""
    runtime_reserve(cp)
    release_cached(cp)
    free, _ = cp.cuda.runtime.memGetInfo()
    return int(free)


def temporaries_bytes(cp: ModuleType) -> int:
    """Device memory cupy's pool holds (kernel temporaries since the pools were opened)."""
    return int(cp.get_default_memory_pool().total_bytes())


def device_info(cp: ModuleType) -> dict[str, Any]:
    """Name, memory and versions of the current device (machine.json ``gpu``)."""
    device = int(cp.cuda.Device().id)
    props = cp.cuda.runtime.getDeviceProperties(device)
    name = props["name"]
    return {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "memory_bytes": int(props["totalGlobalMem"]),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "cuda_runtime": int(cp.cuda.runtime.runtimeGetVersion()),
        "cuda_driver": int(cp.cuda.runtime.driverGetVersion()),
    }


# -- the unified-memory baseline under a budget ----------------------------------------------


@dataclass(frozen=True)
class UnifiedSplit:
    """A managed pool of ``pool_bytes``: ``[0, device_bytes)`` preferred on the device, the
    rest preferred on the host and mapped for the device."""

    pool_bytes: int
    device_bytes: int
    budget_bytes: int | None

    @property
    def host_bytes(self) -> int:
        return self.pool_bytes - self.device_bytes

    def describe(self) -> str:
        if not self.host_bytes:
            return f"all {format_bytes(self.pool_bytes)} preferred on the device"
        return (
            f"first {format_bytes(self.device_bytes)} preferred on the device, last "
            f"{format_bytes(self.host_bytes)} preferred on the host and mapped for the device "
            f"(budget {format_bytes(self.budget_bytes or 0)}, rounded down to 2 MiB)"
        )


def unified_split(pool_bytes: int, budget_bytes: int | None) -> UnifiedSplit:
    """How a managed pool is split at a fast budget (None: no budget, all on the device)."""
    if pool_bytes < 0 or (budget_bytes is not None and budget_bytes < 0):
        raise ValueError("pool and budget sizes must be non-negative")
    if budget_bytes is None or budget_bytes >= pool_bytes:
        return UnifiedSplit(int(pool_bytes), int(pool_bytes), budget_bytes)
    device = (int(budget_bytes) // MANAGED_GRANULE) * MANAGED_GRANULE
    return UnifiedSplit(int(pool_bytes), device, int(budget_bytes))


class _MemLocation(ctypes.Structure):
    """CUmemLocation: where advice or a prefetch points (CUDA 12.2+)."""

    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


def _driver() -> ctypes.CDLL:
    """The CUDA driver library, with the signatures of the calls made here."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise BadInputError(
            f"--mode unified: cannot load the CUDA driver library ({exc})"
        ) from None
    u64, size, c_int, uint, ptr = (
        ctypes.c_uint64,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    )
    signatures: dict[str, list[Any]] = {
        "cuMemAdvise_v2": [u64, size, c_int, _MemLocation],
        "cuMemAdvise": [u64, size, c_int, c_int],
        "cuMemPrefetchAsync_v2": [u64, size, _MemLocation, uint, ptr],
        "cuMemPrefetchAsync": [u64, size, c_int, ptr],
        "cuGetErrorName": [c_int, ctypes.POINTER(ctypes.c_char_p)],
    }
    for name, argtypes in signatures.items():
        if hasattr(driver, name):
            function = getattr(driver, name)
            function.argtypes = argtypes
            function.restype = c_int
    return driver


def _check_driver(driver: ctypes.CDLL, status: int, what: str) -> None:
    if status == 0:
        return
    name = ctypes.c_char_p()
    driver.cuGetErrorName(status, ctypes.byref(name))
    text = name.value.decode() if name.value else f"CUresult {status}"
    raise BadInputError(f"--mode unified: {what} failed: {text}")


def _host_advice_via_driver(ptr: int, nbytes: int, advice: int) -> None:
    """Advice for the host, through the driver: cupy built for CUDA 13 passes every location
    as a device, so cudaCpuDeviceId cannot go through it. ``cuMemAdvise_v2`` (drivers of CUDA
    12.2 on) takes a location; older drivers only have ``cuMemAdvise``, which takes
    CU_DEVICE_CPU (-1)."""
    driver = _driver()
    if hasattr(driver, "cuMemAdvise_v2"):
        location = _MemLocation(_MEM_LOCATION_HOST, 0)
        status = driver.cuMemAdvise_v2(ptr, nbytes, advice, location)
    else:
        status = driver.cuMemAdvise(ptr, nbytes, advice, CPU_DEVICE_ID)
    _check_driver(driver, int(status), "advising the host as preferred location")


def _host_prefetch_via_driver(ptr: int, nbytes: int, stream_ptr: int) -> None:
    """Prefetch to the host through the driver (see :func:`_host_advice_via_driver`)."""
    driver = _driver()
    stream = stream_ptr or None
    if hasattr(driver, "cuMemPrefetchAsync_v2"):
        location = _MemLocation(_MEM_LOCATION_HOST, 0)
        status = driver.cuMemPrefetchAsync_v2(ptr, nbytes, location, 0, stream)
    else:
        status = driver.cuMemPrefetchAsync(ptr, nbytes, CPU_DEVICE_ID, stream)
    _check_driver(driver, int(status), "prefetching to the host")


def _legacy_locations(cp: ModuleType) -> bool:
    """Whether cupy's memAdvise/memPrefetchAsync take cudaCpuDeviceId (built for CUDA < 13)."""
    return int(cp.cuda.runtime.runtimeGetVersion()) < 13000


def advise_split(cp: ModuleType, ptr: int, split: UnifiedSplit, device_id: int) -> None:
    """Set the preferred locations (and the device's mapping of the host part) of a pool."""
    runtime = cp.cuda.runtime
    if split.device_bytes:
        runtime.memAdvise(ptr, split.device_bytes, ADVISE_SET_PREFERRED_LOCATION, device_id)
    if not split.host_bytes:
        return
    if not runtime.deviceGetAttribute(ATTR_CONCURRENT_MANAGED_ACCESS, device_id):
        raise BadInputError(
            "--mode unified with a budget: the device lacks concurrent managed access, so part "
            "of a managed pool cannot be kept on the host"
        )
    host = ptr + split.device_bytes
    if _legacy_locations(cp):
        runtime.memAdvise(host, split.host_bytes, ADVISE_SET_PREFERRED_LOCATION, CPU_DEVICE_ID)
    else:
        _host_advice_via_driver(host, split.host_bytes, ADVISE_SET_PREFERRED_LOCATION)
    runtime.memAdvise(host, split.host_bytes, ADVISE_SET_ACCESSED_BY, device_id)


def prefetch_split(cp: ModuleType, ptr: int, split: UnifiedSplit, device_id: int) -> None:
    """Move each part of a pool to its preferred location now (untimed), then synchronise."""
    runtime = cp.cuda.runtime
    stream = cp.cuda.get_current_stream()
    if split.device_bytes:
        runtime.memPrefetchAsync(ptr, split.device_bytes, device_id, stream.ptr)
    if split.host_bytes:
        host = ptr + split.device_bytes
        if _legacy_locations(cp):
            runtime.memPrefetchAsync(host, split.host_bytes, CPU_DEVICE_ID, stream.ptr)
        else:
            _host_prefetch_via_driver(host, split.host_bytes, int(stream.ptr))
    stream.synchronize()


# -- timing ------------------------------------------------------------------------------------


class EventClock:
    """Device seconds of timed calls, measured with CUDA events on the current stream.

    A clock for ``autotm_profile.timing.time_call``: :meth:`wrap` records an event before and
    after each call, :meth:`sync` waits for the second and adds the time between them to
    :meth:`clock`. So ``clock() - t0`` around ``call(); sync()`` is the call's device time, and
    the host's own Python cost between launches counts only where it kept the device idle.
    """

    def __init__(self, cp: ModuleType) -> None:
        self._stream = cp.cuda.get_current_stream()
        self._start = cp.cuda.Event()
        self._end = cp.cuda.Event()
        self._elapsed_ms = cp.cuda.get_elapsed_time
        self._pending = False
        self._seconds = 0.0

    def wrap(self, call: Callable[[], None]) -> Callable[[], None]:
        def timed() -> None:
            self._start.record(self._stream)
            call()
            self._end.record(self._stream)
            self._pending = True

        return timed

    def sync(self) -> None:
        if not self._pending:
            self._stream.synchronize()
            return
        self._end.synchronize()
        self._seconds += float(self._elapsed_ms(self._start, self._end)) / 1e3
        self._pending = False

    def clock(self) -> float:
        return self._seconds
