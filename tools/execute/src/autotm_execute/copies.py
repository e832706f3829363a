"""Copies between the tiers: synchronous, and asynchronous on a copy thread or CUDA stream.

Every copy is a real memcpy. Under emulation the copy is then held to the device model's copy
bandwidth: the caller (sync) or the copy thread (async) waits out the difference between the
model's time and the real one, so a copy never finishes sooner than the modelled slow tier
would allow. With real tiers the copy runs as fast as the hardware does.

Stable API (autotm-profile uses it to measure copy bandwidths)::

    seconds = copy_sync(dst, src, hold_s=model.copy_s("slow_to_fast", "sync", src.nbytes))
    with AsyncCopier() as copier:                 # a thread; CudaAsyncCopier on a GPU
        ticket = copier.submit(dst, src, hold_s=...)
        ...                                       # kernels run meanwhile
        waited_s = copier.wait(ticket)            # explicit wait before first use
        ticket.seconds                            # how long the copy itself took

numpy releases the GIL while it copies plain data, so the copy thread overlaps kernels that
run numpy/BLAS code on the main thread.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

Array = Any

_SPIN_S = 2e-4  # below this, spin instead of sleeping: sleep overshoots by ~50-100 us


def hold_until(deadline: float) -> None:
    """Wait until ``time.perf_counter()`` reaches ``deadline``: sleep, then spin the last bit."""
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return
        if remaining > _SPIN_S:
            time.sleep(remaining - _SPIN_S / 2)


def copy_into(dst: Array, src: Array, stream: Any = None, blocking: bool = True) -> None:
    """Copy ``src`` into ``dst`` between any mix of numpy and cupy arrays of equal shape.

    Between host and device the copy is queued on ``stream``; ``blocking=False`` returns
    before a device-to-host copy is done (the caller orders by events instead).
    """
    dst_host = isinstance(dst, np.ndarray)
    src_host = isinstance(src, np.ndarray)
    if dst_host and src_host:
        np.copyto(dst, src, casting="no")
    elif dst_host:  # device -> host
        src.get(stream=stream, out=dst, blocking=blocking)
    elif src_host:  # host -> device
        dst.set(src, stream=stream)
    else:
        dst.data.copy_from_device_async(src.data, src.nbytes, stream=stream)


def copy_sync(dst: Array, src: Array, hold_s: float = 0.0) -> float:
    """Copy now; under emulation take at least ``hold_s`` seconds. Returns elapsed seconds."""
    started = time.perf_counter()
    copy_into(dst, src)
    if not isinstance(dst, np.ndarray) or not isinstance(src, np.ndarray):
        _synchronize_device()
    if hold_s > 0:
        hold_until(started + hold_s)
    return time.perf_counter() - started


def _synchronize_device() -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


@dataclass
class Ticket:
    """One submitted asynchronous copy."""

    nbytes: int
    submitted: float
    started: float = 0.0
    finished: float = 0.0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    claimed: threading.Lock = field(default_factory=threading.Lock)
    start_event: Any = None  # CUDA events recorded around the copy, on a GPU
    event: Any = None

    @property
    def seconds(self) -> float:
        """Time the copy itself took, including the hold to the model's bandwidth."""
        return max(0.0, self.finished - self.started)


class AsyncCopier:
    """A copy thread working through submitted copies in order, like one DMA engine.

    A copy still queued when its waiter arrives is done by the waiter itself instead of
    waiting for the thread to be scheduled (on a busy machine a thread wake-up can take
    milliseconds): the copy then happens no later than the plan requires, and exactly once,
    whoever claims it first.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Ticket, Array, Array, float] | None] = (
            queue.SimpleQueue()
        )
        self._pending: dict[int, tuple[Array, Array, float]] = {}
        self._thread = threading.Thread(target=self._work, name="autotm-copy", daemon=True)
        self._thread.start()

    @staticmethod
    def _copy(ticket: Ticket, dst: Array, src: Array, hold_s: float) -> None:
        ticket.started = time.perf_counter()
        try:
            copy_into(dst, src)
            if hold_s > 0:
                hold_until(ticket.started + hold_s)
        except BaseException as exc:  # handed to the waiter, which re-raises
            ticket.error = exc
        ticket.finished = time.perf_counter()
        ticket.done.set()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            ticket, dst, src, hold_s = item
            if ticket.claimed.acquire(blocking=False):
                self._copy(ticket, dst, src, hold_s)

    def submit(self, dst: Array, src: Array, hold_s: float = 0.0) -> Ticket:
        """Queue a copy; it starts when the copies queued before it are done."""
        ticket = Ticket(nbytes=int(src.nbytes), submitted=time.perf_counter())
        self._pending[id(ticket)] = (dst, src, hold_s)
        self._queue.put((ticket, dst, src, hold_s))
        return ticket

    def wait(self, ticket: Ticket) -> float:
        """Block until the copy is done; return the seconds spent waiting (copying included,
        when the waiter had to do the copy itself)."""
        started = time.perf_counter()
        work = self._pending.pop(id(ticket), None)
        if not ticket.done.is_set() and work is not None and ticket.claimed.acquire(False):
            self._copy(ticket, *work)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return time.perf_counter() - started

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._pending.clear()

    def __enter__(self) -> AsyncCopier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CudaAsyncCopier(AsyncCopier):
    """Asynchronous copies on a CUDA stream of their own, ordered against the compute stream.

    ``submit`` makes the copy stream wait for everything already queued on the compute stream
    (the kernel that produced the source, and the last use of the destination's bytes, must
    be done), and ``wait`` makes the compute stream wait for the copy: the device enforces the
    order and the host never blocks. The copy stream is non-blocking, so it does not
    synchronise with the legacy default stream the kernels run on. Each copy is bracketed by
    timing events (:meth:`copy_seconds`); the ordering events are created without timing.
    """

    def __init__(self) -> None:  # no thread: the stream is the copy engine
        import cupy

        self._cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def submit(self, dst: Array, src: Array, hold_s: float = 0.0) -> Ticket:
        cp = self._cupy
        ticket = Ticket(nbytes=int(src.nbytes), submitted=time.perf_counter())
        ready = cp.cuda.Event(disable_timing=True)
        ready.record(cp.cuda.get_current_stream())
        self.stream.wait_event(ready)
        ticket.start_event = self.stream.record()
        copy_into(dst, src, stream=self.stream, blocking=False)
        ticket.event = self.stream.record()
        ticket.done.set()  # queued on the device; wait() orders the compute stream after it
        return ticket

    def wait(self, ticket: Ticket) -> float:
        """Order the compute stream after the copy; returns 0 (the host does not wait)."""
        self._cupy.cuda.get_current_stream().wait_event(ticket.event)
        return 0.0

    def copy_seconds(self, ticket: Ticket) -> float:
        """Device time of a finished copy (call after synchronising)."""
        elapsed_ms = self._cupy.cuda.get_elapsed_time(ticket.start_event, ticket.event)
        return float(elapsed_ms) / 1e3

    def close(self) -> None:
        self.stream.synchronize()
