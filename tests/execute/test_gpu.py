"""The GPU path: device memory fast, pinned host memory slow, moves on a CUDA stream, and the
unified-memory baseline.

Two halves. The first runs everywhere: the arithmetic of the measured runtime reserve and of the
unified budget split, argument checks, the GPU plan rule, and that everything imports and fails
in one line without cupy. The second (``@pytest.mark.gpu``) needs cupy and a CUDA device and is
skipped without them; it exercises the real pools, copies, streams and managed memory, on tiny
graphs whose footprints are megabytes, so no test ever asks for more managed memory than is free.
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from autotm_execute import gpu
from autotm_execute.cli import main
from autotm_schemas import BadInputError, read_document
from hypothesis import given
from hypothesis import strategies as st

from tests.execute.plans import PLANS, load_tiny_mlp

MiB = 2**20


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("run"))


# -- runs everywhere: arithmetic -----------------------------------------------------------------


def test_the_reserve_is_what_the_warm_up_took() -> None:
    free = iter([(10_000, 16_000), (9_000, 16_000)])
    calls: list[str] = []
    reserve = gpu.measure_reserve(lambda: next(free), lambda: calls.append("warm"))
    assert calls == ["warm"]
    assert (reserve.free_before, reserve.free_after, reserve.total_bytes) == (10_000, 9_000, 16_000)
    assert reserve.reserve_bytes == 1_000


def test_a_reserve_never_goes_negative_when_memory_was_freed_meanwhile() -> None:
    free = iter([(9_000, 16_000), (9_500, 16_000)])
    assert gpu.measure_reserve(lambda: next(free), lambda: None).reserve_bytes == 0


@pytest.mark.parametrize(
    ("free", "fast_memory", "allowed"), [(8_000, None, 8_000), (8_000, 5_000, 5_000), (0, None, 0)]
)
def test_the_allowance_is_fast_memory_or_everything_free(
    free: int, fast_memory: int | None, allowed: int
) -> None:
    assert gpu.device_allowance(free, fast_memory) == allowed


def test_fast_memory_beyond_free_device_memory_is_refused_in_one_line() -> None:
    with pytest.raises(BadInputError, match=r"--fast-memory 9000 .*8000 bytes") as info:
        gpu.device_allowance(8_000, 9_000)
    assert "\n" not in str(info.value)


def test_a_pool_must_fit_its_allowance() -> None:
    gpu.require_fits("fast pool", 4_096, 4_096)
    with pytest.raises(BadInputError, match=r"fast pool: 4097 bytes .*allowed \(4096 bytes"):
        gpu.require_fits("fast pool", 4_097, 4_096)


@given(
    pool=st.integers(0, 2**40),
    budget=st.none() | st.integers(0, 2**41),
)
def test_the_unified_split_never_puts_more_than_the_budget_on_the_device(
    pool: int, budget: int | None
) -> None:
    split = gpu.unified_split(pool, budget)
    assert split.device_bytes + split.host_bytes == pool
    assert 0 <= split.device_bytes <= pool
    if budget is None or budget >= pool:
        assert split.host_bytes == 0
    else:
        assert split.device_bytes <= budget
        assert split.device_bytes % gpu.MANAGED_GRANULE == 0
        assert budget - split.device_bytes < gpu.MANAGED_GRANULE


def test_the_unified_split_rounds_the_device_part_down_to_2_mib() -> None:
    split = gpu.unified_split(10 * MiB, 5 * MiB + 1)
    assert (split.device_bytes, split.host_bytes) == (4 * MiB, 6 * MiB)
    assert "first 4.0 MiB preferred on the device" in split.describe()
    assert "last 6.0 MiB preferred on the host" in split.describe()
    assert gpu.unified_split(10 * MiB, None).describe() == "all 10.0 MiB preferred on the device"


def test_a_negative_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        gpu.unified_split(-1, None)


def test_the_driver_location_struct_matches_cumemlocation() -> None:
    """CUmemLocation is {CUmemLocationType type; int id}: 8 bytes, passed by value."""
    location = gpu._MemLocation(gpu._MEM_LOCATION_HOST, 0)
    assert ctypes.sizeof(location) == 8 and (location.type, location.id) == (2, 0)


# -- runs everywhere: the glue, on a stand-in for cupy ---------------------------------------------


class _FakePool:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name, self.held = log, name, 0

    def free_all_blocks(self) -> None:
        self.log.append(f"release {self.name}")

    def total_bytes(self) -> int:
        return self.held


def _fake_cupy(free_sequence: list[int], log: list[str]) -> ModuleType:
    """Just enough of cupy's surface for the reserve and the event clock: numpy arrays, a
    scripted cudaMemGetInfo, pools and events that log what was asked of them."""
    free = iter(free_sequence)

    class Event:
        def __init__(self, **_: Any) -> None:
            self.recorded = 0

        def record(self, stream: Any = None) -> None:
            self.recorded += 1

        def synchronize(self) -> None:
            log.append("event sync")

    class Stream:
        def synchronize(self) -> None:
            log.append("stream sync")

    stream = Stream()
    runtime = SimpleNamespace(memGetInfo=lambda: (next(free), 80 * 2**30))
    cuda = SimpleNamespace(
        runtime=runtime,
        Device=lambda: SimpleNamespace(id=0),
        get_current_stream=lambda: stream,
        Event=Event,
        get_elapsed_time=lambda start, end: 2.0,  # milliseconds
    )
    device_pool, pinned_pool = _FakePool(log, "device"), _FakePool(log, "pinned")
    module = ModuleType("fake_cupy")
    module.__dict__.update(
        cuda=cuda,
        ones=np.ones,
        matmul=np.matmul,
        add=np.add,
        get_default_memory_pool=lambda: device_pool,
        get_default_pinned_memory_pool=lambda: pinned_pool,
    )
    return module


@pytest.fixture
def _fresh_reserves() -> Iterator[None]:
    saved = dict(gpu._RESERVES)
    gpu._RESERVES.clear()
    yield
    gpu._RESERVES.clear()
    gpu._RESERVES.update(saved)


@pytest.mark.usefixtures("_fresh_reserves")
def test_the_reserve_is_measured_once_per_process_then_free_memory_is_the_allowance() -> None:
    log: list[str] = []
    fake = _fake_cupy([10_000, 9_000, 8_800, 8_700], log)
    first = gpu.runtime_reserve(fake)
    assert first.reserve_bytes == 1_000
    assert log[:2] == ["release device", "release pinned"]  # cupy's cache counted as free
    assert gpu.runtime_reserve(fake) is first  # measured once: the runtime has its share now
    assert gpu.free_device_bytes(fake) == 8_800
    assert gpu.free_device_bytes(fake) == 8_700


def test_the_event_clock_adds_device_time_per_call_for_the_timing_protocol() -> None:
    from autotm_profile.timing import Protocol, time_call

    log: list[str] = []
    clock = gpu.EventClock(_fake_cupy([], log))
    calls: list[int] = []
    timed = clock.wrap(lambda: calls.append(1))
    stats = time_call(timed, Protocol(budget_s=0.01, min_samples=3), clock.sync, clock=clock.clock)
    assert stats.median_s == pytest.approx(0.002) and stats.max_s == pytest.approx(0.002)
    assert stats.samples >= 3
    assert clock.clock() == pytest.approx(0.002 * len(calls))  # warm-up calls counted too
    clock.sync()  # nothing pending: waits for the stream instead
    assert log[-1] == "stream sync"


# -- runs everywhere: without cupy ------------------------------------------------------------------


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


@pytest.mark.usefixtures("no_cupy")
def test_without_cupy_the_package_imports_and_says_what_is_missing() -> None:
    import autotm_execute.copies
    import autotm_execute.executor
    import autotm_execute.pools
    import autotm_execute.tiers  # noqa: F401

    with pytest.raises(BadInputError, match="expected cupy") as info:
        gpu.cupy_module()
    assert "\n" not in str(info.value)


@pytest.mark.usefixtures("no_cupy")
@pytest.mark.parametrize(
    "extra",
    [
        ["--device", "cuda"],
        ["--device", "cuda", "--mode", "unified"],
        ["--device", "cuda", "--mode", "unified", "--ratio", "4:1"],
        ["--device", "cuda", "--mode", "unified", "--fast-memory", "2MiB"],
    ],
    ids=["all-fast", "unified", "unified-ratio", "unified-budget"],
)
def test_gpu_runs_without_cupy_exit_2_in_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    path, _ = load_tiny_mlp(tmp_path)
    out = tmp_path / "run.json"
    assert main([str(path), *extra, "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected cupy" in err[0], err
    assert _outputs(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "unified", "--ratio", "4:1", "--fast-memory", "1MiB"], "--ratio and"),
        (["--mode", "unified"], "expected --device cuda"),
        (["--mode", "2lm", "--fast-memory", "1MiB"], "--mode 2lm: the hardware"),
        (["--device-model", "optane-dc-2019"], "cannot be combined"),
        (["--slow-dir", "/tmp"], "pinned host memory"),
    ],
)
def test_gpu_argument_checks_come_before_any_device_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    path, _ = load_tiny_mlp(tmp_path)
    device = [] if extra == ["--mode", "unified"] else ["--device", "cuda"]
    assert main([str(path), *device, *extra, "-q", "-o", str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert _outputs(tmp_path) == []


@pytest.mark.parametrize("simulate", [False, True])
def test_a_plan_with_kernels_in_host_memory_is_refused_on_the_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], simulate: bool
) -> None:
    """The original's GPU rule, checked before cupy is needed (and for simulations too)."""
    path, graph = load_tiny_mlp(tmp_path)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLANS["all-slow"](graph)))
    extra = ["--simulate", "--profile", str(tmp_path)] if simulate else []
    argv = [str(path), "--plan", str(plan), "--device", "cuda", *extra, "-q"]
    assert main([*argv, "-o", str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "expected fast on --device cuda" in err and "got slow for tensor" in err
    assert _outputs(tmp_path) == []


def test_the_help_says_what_the_budget_means_for_unified_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "the rest on the host" in text and "--device cuda" in text


# -- needs cupy and a CUDA device -------------------------------------------------------------------


def _cupy_with_device() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    return cupy


@pytest.fixture
def cupy() -> Any:
    return _cupy_with_device()


@pytest.mark.gpu
def test_all_fast_on_the_gpu(tmp_path: Path, cupy: Any) -> None:
    path, _ = load_tiny_mlp(tmp_path)
    out = tmp_path / "run.json"
    assert main([str(path), "--device", "cuda", "--verify", "-q", "-o", str(out)]) == 0
    run = read_document(out, "run")
    fast = run["tiers"]["fast"]
    assert run["device"] == "cuda" and fast["kind"] == "cuda-device"
    assert fast["reserve_bytes"] >= 0 and fast["temporaries_bytes"] >= 0
    assert run["verify"]["identical"] is True and run["provenance"] == "measured"


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["sync-evict-fetch", "async-evict-fetch", "async-to-end"])
def test_plans_with_moves_verify_on_the_gpu(tmp_path: Path, cupy: Any, kind: str) -> None:
    path, graph = load_tiny_mlp(tmp_path, batch=64, features=256, hidden=256)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLANS[kind](graph)))
    out = tmp_path / "run.json"
    argv = [str(path), "--plan", str(plan), "--device", "cuda", "--verify", "-q", "-o", str(out)]
    assert main([*argv, "--iterations", "3"]) == 0
    run = read_document(out, "run")
    assert run["verify"]["identical"] is True
    assert run["tiers"]["slow"]["kind"] == "cuda-pinned-host"
    moved = sum(d[k]["count"] for d in run["moves"].values() for k in ("sync", "async"))
    assert moved > 0


@pytest.mark.gpu
@pytest.mark.parametrize("budget", [None, "2MiB", "0"])
def test_unified_memory_runs_and_verifies_at_any_budget(
    tmp_path: Path, cupy: Any, budget: str | None
) -> None:
    path, _ = load_tiny_mlp(tmp_path, batch=64, features=512, hidden=512)
    out = tmp_path / "run.json"
    extra = ["--fast-memory", budget] if budget is not None else []
    argv = [str(path), "--mode", "unified", "--device", "cuda", "--verify", *extra]
    assert main([*argv, "--iterations", "2", "-q", "-o", str(out)]) == 0
    run = read_document(out, "run")
    fast = run["tiers"]["fast"]
    assert run["mode"] == "unified" and run["verify"]["identical"] is True
    pool = run["pools"]["fast"]["size_bytes"]
    assert fast["managed_device_bytes"] + fast["managed_host_bytes"] == pool
    if budget is None:
        assert fast["managed_host_bytes"] == 0 and run["fast_limit_bytes"] is None
    else:
        assert fast["managed_device_bytes"] <= run["fast_limit_bytes"]
        assert fast["managed_host_bytes"] > 0


@pytest.mark.gpu
def test_a_managed_pool_larger_than_free_memory_is_refused_before_allocating(cupy: Any) -> None:
    from autotm_execute.tiers import TierOptions, open_unified

    free = gpu.free_device_bytes(cupy)
    with pytest.raises(BadInputError, match="never oversubscribed"):
        open_unified(TierOptions(device="cuda"), free + 1)


@pytest.mark.gpu
def test_fast_memory_above_free_device_memory_is_refused(tmp_path: Path, cupy: Any) -> None:
    path, _ = load_tiny_mlp(tmp_path)
    argv = [str(path), "--device", "cuda", "--fast-memory", "100000GB", "-q"]
    assert main([*argv, "-o", str(tmp_path / "run.json")]) == 2
    assert _outputs(tmp_path) == []


@pytest.mark.gpu
def test_the_measured_reserve_and_the_allowance_are_consistent(cupy: Any) -> None:
    reserve = gpu.runtime_reserve(cupy)
    assert 0 <= reserve.free_after <= reserve.total_bytes
    assert reserve.reserve_bytes == max(0, reserve.free_before - reserve.free_after)
    assert gpu.free_device_bytes(cupy) <= reserve.total_bytes
    info = gpu.device_info(cupy)
    assert info["memory_bytes"] == reserve.total_bytes and "." in info["compute_capability"]


@pytest.mark.gpu
def test_device_and_pinned_pools_give_their_memory_back_on_close(cupy: Any) -> None:
    from autotm_execute.pools import CudaDevicePool, PinnedHostPool

    before = gpu.free_device_bytes(cupy)
    fast, slow = CudaDevicePool(256 * MiB), PinnedHostPool(8 * MiB)
    view = fast.view(4096, (1024,), np.float32)
    view.fill(3.0)
    host = slow.view(0, (1024,), np.float32)
    view.get(out=host)
    assert float(host.sum()) == 3.0 * 1024
    assert gpu.free_device_bytes(cupy) <= before - 256 * MiB
    del view, host
    fast.close()
    slow.close()
    assert gpu.free_device_bytes(cupy) >= before - 4 * MiB


@pytest.mark.gpu
def test_a_managed_pool_split_keeps_its_values_in_both_parts(cupy: Any) -> None:
    from autotm_execute.pools import ManagedPool

    pool = ManagedPool(8 * MiB, budget_bytes=3 * MiB)
    assert (pool.split.device_bytes, pool.split.host_bytes) == (2 * MiB, 6 * MiB)
    values = np.arange(2 * MiB, dtype=np.float32)  # 8 MiB: both parts
    view = pool.view(0, values.shape, np.float32)
    view.set(values)
    cupy.multiply(view, 2, out=view)
    pool.settle()
    assert np.array_equal(view.get(), values * 2)
    pool.close()


@pytest.mark.gpu
def test_async_copies_are_ordered_after_the_kernel_before_them_and_before_their_user(
    cupy: Any,
) -> None:
    from autotm_execute.copies import CudaAsyncCopier
    from autotm_execute.pools import CudaDevicePool, PinnedHostPool

    n = 4 * MiB
    fast, slow = CudaDevicePool(2 * n * 4), PinnedHostPool(n * 4)
    a, b = fast.view(0, (n,), np.float32), fast.view(n * 4, (n,), np.float32)
    host = slow.view(0, (n,), np.float32)
    copier = CudaAsyncCopier()
    a.fill(1.0)
    for _ in range(20):  # a long kernel chain the copy must wait for
        cupy.add(a, 1.0, out=a)
    ticket = copier.submit(host, a)  # fast -> slow, after the chain
    copier.wait(ticket)
    back = copier.submit(b, host)  # slow -> fast
    copier.wait(back)
    cupy.multiply(b, 2.0, out=b)  # the user, after the wait
    cupy.cuda.get_current_stream().synchronize()
    assert float(host[0]) == 21.0 and float(b[0].get()) == 42.0
    copier.stream.synchronize()
    assert copier.copy_seconds(ticket) > 0
    copier.close()
    fast.close()
    slow.close()


@pytest.mark.gpu
def test_the_event_clock_times_a_real_kernel(cupy: Any) -> None:
    clock = gpu.EventClock(cupy)
    a = cupy.ones((1024, 1024), np.float32)
    timed = clock.wrap(lambda: cupy.matmul(a, a))
    timed()
    clock.sync()
    assert 0 < clock.clock() < 1.0
