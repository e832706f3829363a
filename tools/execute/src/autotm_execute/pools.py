"""Memory pools: one large allocation per tier, tensors viewed at byte offsets inside it.

The plan gives every tensor residency a byte offset in its tier's pool (aligned by the shared
rule of :mod:`autotm_schemas.alignment`: a page for tensors of 4 KiB or more, a cache line for
smaller ones, which share pages), so a pool is nothing but one allocation and :meth:`Pool.view`, which returns an array of the
requested shape and dtype at an offset, sharing the pool's memory. No tensor is ever allocated
on its own: what the run uses is what the pools hold, which is what peak RSS is compared with.

Kinds:

* :class:`AnonymousPool` -- anonymous memory (``mmap``), optionally bound to a NUMA node;
  pages are committed on first touch, so untouched parts of a pool cost nothing.
* :class:`FilePool` -- a pool file in a directory, preallocated and mapped shared; on an
  fsdax-mounted PMM namespace this is App Direct persistent memory. The file is unlinked right
  after mapping, so a crash leaves nothing behind.
* :class:`CudaDevicePool`, :class:`PinnedHostPool`, :class:`ManagedPool` -- the GPU tiers
  (cupy is imported only when one is opened).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from autotm_schemas import BadInputError
from autotm_schemas.alignment import PAGE_BYTES

from . import numa

#: A page: the alignment of tensors of 4 KiB or more (``autotm_schemas.alignment`` gives every
#: tensor its own: smaller ones need only a cache line).
ALIGNMENT = PAGE_BYTES
Array = Any  # numpy or cupy array


def align_up(nbytes: int, alignment: int = ALIGNMENT) -> int:
    """``nbytes`` rounded up to a multiple of ``alignment`` (a page by default)."""
    return -(-int(nbytes) // alignment) * alignment


class Pool:
    """One tier's allocation. Subclasses set ``_buffer`` (1-D uint8) and ``xp``."""

    xp: ModuleType = np
    kind: str = "dram"

    def __init__(self, size_bytes: int) -> None:
        self.size_bytes = int(size_bytes)
        self._buffer: Array = np.empty(0, np.uint8)

    def view(self, offset: int, shape: tuple[int, ...], dtype: Any) -> Array:
        """An array of ``shape``/``dtype`` over ``[offset, offset + nbytes)`` of the pool."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset < 0 or offset + nbytes > self.size_bytes:
            raise ValueError(
                f"view [{offset}, {offset + nbytes}) outside the pool of {self.size_bytes} bytes"
            )
        return self._buffer[offset : offset + nbytes].view(dtype).reshape(shape)

    def bytes_view(self, offset: int, nbytes: int) -> Array:
        """The raw bytes ``[offset, offset + nbytes)`` as a 1-D uint8 array."""
        return self.view(offset, (int(nbytes),), np.uint8)

    def close(self) -> None:
        """Release the memory; views taken earlier must not be used afterwards."""
        self._buffer = self.xp.empty(0, np.uint8)


class AnonymousPool(Pool):
    """Anonymous host memory, page aligned; bound to ``numa_node`` when given."""

    def __init__(self, size_bytes: int, numa_node: int | None = None) -> None:
        super().__init__(size_bytes)
        self.numa_node = numa_node
        self.kind = "dram" if numa_node is None else "numa"
        self._map: mmap.mmap | None = None
        if self.size_bytes == 0:
            return
        self._map = mmap.mmap(-1, self.size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._buffer = np.frombuffer(self._map, dtype=np.uint8)
        if numa_node is not None:
            numa.bind(int(self._buffer.ctypes.data), self.size_bytes, numa_node)

    def close(self) -> None:
        super().close()
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: GC frees it
                self._map.close()
            self._map = None


def check_slow_dir(directory: str | os.PathLike[str], nbytes: int) -> None:
    """Refuse a slow-tier directory that is missing, unwritable or too full; one line each."""
    path = Path(directory)
    if not path.is_dir():
        raise BadInputError(f"--slow-dir {directory}: expected an existing directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise BadInputError(f"--slow-dir {directory}: expected a writable directory")
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    if nbytes > free:
        raise BadInputError(
            f"--slow-dir {directory}: the slow pool needs {nbytes} bytes, the file system has "
            f"{free} bytes free"
        )


def mount_of(directory: str | os.PathLike[str], mounts: str | None = None) -> tuple[str, str, str]:
    """(mount point, file system type, options) of the mount holding ``directory``."""
    target = os.path.realpath(directory)
    text = mounts if mounts is not None else Path("/proc/mounts").read_text()
    best = ("/", "", "")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2], fields[3])
    return best


def is_dax(directory: str | os.PathLike[str], mounts: str | None = None) -> bool | None:
    """Whether ``directory`` is on a DAX mount: True, False, or None when per-inode (unknown).

    ext4 and xfs mounted with ``dax`` or ``dax=always`` map files straight onto the persistent
    memory; ``dax=inode`` leaves it to a per-file flag, which this does not inspect.
    """
    _, _, options = mount_of(directory, mounts)
    for option in options.split(","):
        if option in ("dax", "dax=always"):
            return True
        if option == "dax=inode":
            return None
    return False


class FilePool(Pool):
    """A pool file in ``directory``, preallocated and mapped shared, unlinked once mapped."""

    kind = "file"

    def __init__(self, size_bytes: int, directory: str | os.PathLike[str]) -> None:
        super().__init__(size_bytes)
        self.directory = str(directory)
        self.dax = is_dax(directory)
        self._map: mmap.mmap | None = None
        check_slow_dir(directory, self.size_bytes)
        if self.size_bytes == 0:
            return
        try:
            fd, name = tempfile.mkstemp(prefix="autotm-pool-", suffix=".bin", dir=directory)
        except OSError as exc:
            raise BadInputError(
                f"--slow-dir {directory}: expected a writable directory ({exc.strerror})"
            ) from None
        try:
            try:
                os.posix_fallocate(fd, 0, self.size_bytes)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    what = "is full" if exc.errno == errno.ENOSPC else f"failed: {exc.strerror}"
                    raise BadInputError(
                        f"--slow-dir {directory}: preallocating the {self.size_bytes}-byte slow "
                        f"pool {what}"
                    ) from None
                os.ftruncate(fd, self.size_bytes)  # file systems without fallocate
            self._map = mmap.mmap(fd, self.size_bytes, flags=mmap.MAP_SHARED)
        finally:
            os.close(fd)
            os.unlink(name)
        self._buffer = np.frombuffer(self._map, dtype=np.uint8)

    def close(self) -> None:
        super().close()
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None


def _cupy() -> ModuleType:
    """cupy with a usable device, or BadInputError (see :func:`autotm_execute.gpu.cupy_module`)."""
    from .gpu import cupy_module

    return cupy_module()


def _allocation_failed(what: str, nbytes: int, exc: BaseException) -> BadInputError:
    return BadInputError(f"{what}: allocating {nbytes} bytes failed ({exc})")


class CudaDevicePool(Pool):
    """Device memory of the current GPU, one ``cudaMalloc`` of the pool's size: the fast tier.

    Allocated as a ``cupy.cuda.Memory`` (RAII) rather than through cupy's caching pool, so the
    bytes go back to the device as soon as the pool and every view of it are gone, and free
    device memory stays an honest measure for the next pool (``--verify`` opens one).
    """

    kind = "cuda-device"

    def __init__(self, size_bytes: int) -> None:
        super().__init__(size_bytes)
        cp = _cupy()
        self.xp = cp
        try:
            memory = cp.cuda.Memory(max(self.size_bytes, 1))
        except (cp.cuda.runtime.CUDARuntimeError, cp.cuda.memory.OutOfMemoryError) as exc:
            raise _allocation_failed("fast pool (device memory)", self.size_bytes, exc) from None
        pointer = cp.cuda.MemoryPointer(memory, 0)
        self._buffer = cp.ndarray((self.size_bytes,), np.uint8, memptr=pointer)

    def close(self) -> None:
        self._buffer = None


class PinnedHostPool(Pool):
    """Page-locked host memory the GPU copies to and from at full speed: the slow tier.

    One ``cudaHostAlloc`` (``cupy.cuda.PinnedMemory``, not cupy's caching pinned pool), seen as
    a numpy array: copies between it and device memory are truly asynchronous.
    """

    kind = "cuda-pinned-host"

    def __init__(self, size_bytes: int) -> None:
        super().__init__(size_bytes)
        cp = _cupy()
        try:
            memory = cp.cuda.PinnedMemory(max(self.size_bytes, 1))
        except (cp.cuda.runtime.CUDARuntimeError, cp.cuda.memory.OutOfMemoryError) as exc:
            raise _allocation_failed(
                "slow pool (pinned host memory)", self.size_bytes, exc
            ) from None
        pointer = cp.cuda.PinnedMemoryPointer(memory, 0)
        self._buffer = np.frombuffer(pointer, np.uint8, self.size_bytes)


class ManagedPool(Pool):
    """CUDA managed (unified) memory: the pool of the unified-memory baseline.

    ``budget_bytes`` below the pool's size splits it (:func:`autotm_execute.gpu.unified_split`):
    the first part preferred on the device, the rest preferred on the host and mapped for the
    device. :meth:`settle` moves each part where it is preferred; the executor calls it after
    writing the initial values, before every iteration.
    """

    kind = "cuda-device"

    def __init__(self, size_bytes: int, budget_bytes: int | None = None) -> None:
        from .gpu import advise_split, unified_split

        super().__init__(size_bytes)
        cp = _cupy()
        self.xp = cp
        self.split = unified_split(self.size_bytes, budget_bytes)
        self.device_id = int(cp.cuda.Device().id)
        try:
            pointer = cp.cuda.malloc_managed(max(self.size_bytes, 1))
        except (cp.cuda.runtime.CUDARuntimeError, cp.cuda.memory.OutOfMemoryError) as exc:
            raise _allocation_failed("managed pool", self.size_bytes, exc) from None
        self._pointer = pointer
        self._buffer = cp.ndarray((self.size_bytes,), np.uint8, memptr=pointer)
        advise_split(cp, int(pointer.ptr), self.split, self.device_id)
        self.settle()

    def settle(self) -> None:
        """Prefetch each part of the pool to its preferred location and wait (untimed)."""
        from .gpu import prefetch_split

        if self.size_bytes:
            prefetch_split(self.xp, int(self._pointer.ptr), self.split, self.device_id)

    def close(self) -> None:
        self._buffer = None
        self._pointer = None
