"""Copies: held to a modelled time, asynchronous ones overlapping and waited for."""

from __future__ import annotations

import time

import numpy as np
import pytest
from autotm_execute.copies import AsyncCopier, copy_into, copy_sync, hold_until


def test_hold_until_waits_for_the_deadline() -> None:
    deadline = time.perf_counter() + 0.003
    hold_until(deadline)
    assert time.perf_counter() >= deadline


def test_a_sync_copy_copies_and_takes_at_least_its_hold() -> None:
    src = np.arange(1000, dtype=np.float32)
    dst = np.zeros_like(src)
    elapsed = copy_sync(dst, src, hold_s=0.002)
    assert np.array_equal(dst, src)
    assert elapsed >= 0.002


def test_copy_into_refuses_a_dtype_change() -> None:
    with pytest.raises(TypeError):
        copy_into(np.zeros(3, np.float32), np.zeros(3, np.float64))


def test_async_copies_complete_and_report_their_time() -> None:
    src = [np.full(10_000, i, np.float64) for i in range(4)]
    dst = [np.zeros(10_000) for _ in range(4)]
    with AsyncCopier() as copier:
        tickets = [copier.submit(d, s, hold_s=0.001) for d, s in zip(dst, src, strict=True)]
        for ticket in tickets:
            copier.wait(ticket)
    for i, d in enumerate(dst):
        assert (d == i).all()
    assert all(t.seconds >= 0.001 for t in tickets)


def test_a_waiter_does_a_copy_still_queued_itself() -> None:
    blocker_src, blocker_dst = np.ones(10), np.zeros(10)
    src, dst = np.arange(10.0), np.zeros(10)
    with AsyncCopier() as copier:
        first = copier.submit(blocker_dst, blocker_src, hold_s=0.2)
        second = copier.submit(dst, src)
        copier.wait(second)  # the thread is busy holding the first copy: no waiting for it
        assert np.array_equal(dst, src)
        assert not first.done.is_set()
        copier.wait(first)
        assert first.done.is_set()


def test_a_failed_async_copy_raises_in_the_waiter() -> None:
    with AsyncCopier() as copier:
        ticket = copier.submit(np.zeros(3), np.zeros(4))
        with pytest.raises(ValueError):
            copier.wait(ticket)
