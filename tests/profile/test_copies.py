"""Copy bandwidth: the executor's copies between its pools, fitted honestly."""

from __future__ import annotations

from pathlib import Path

import pytest
from autotm_execute.device_model import DeviceModel
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_profile.copies import (
    DIRECTIONS,
    MODES,
    bandwidths,
    fit_bandwidth,
    measure_copies,
    pool_needs,
)

SIZES = (1 << 14, 1 << 18, 1 << 20)


def test_fit_recovers_a_linear_rate() -> None:
    sizes = [1_000, 10_000, 100_000, 1_000_000]
    seconds = [2e-6 + n / 5e9 for n in sizes]
    assert fit_bandwidth(sizes, seconds) == pytest.approx(5e9, rel=1e-6)


def test_one_stalled_copy_does_not_tilt_the_fit() -> None:
    from autotm_profile.copies import CopySample

    samples = [
        CopySample("slow_to_fast", mode, n, n / 1e9 + (5e-3 if (n, k) == (1000, 0) else 0.0))
        for mode in ("sync", "async")
        for n in (1000, 100_000, 1_000_000)
        for k in range(3)
    ]
    rates = bandwidths(samples + [CopySample("fast_to_slow", m, 1000, 1e-6) for m in MODES])
    assert rates["slow_to_fast"]["sync_bytes_per_s"] == pytest.approx(1e9)


def test_fit_falls_back_to_total_over_total() -> None:
    assert fit_bandwidth([1000, 1000], [1e-6, 3e-6]) == pytest.approx(2000 / 4e-6)
    # decreasing times (noise): no positive slope
    assert fit_bandwidth([1000, 2000], [2e-6, 1e-6]) == pytest.approx(3000 / 3e-6)
    with pytest.raises(ValueError):
        fit_bandwidth([], [])


def test_every_direction_and_mode_is_measured_held_to_the_model(sluggish_model: Path) -> None:
    model = DeviceModel.load(sluggish_model)
    fast, slow = pool_needs(SIZES)
    with open_tiers(TierOptions(device_model=str(sluggish_model)), fast, slow) as tiers:
        samples = measure_copies(tiers, SIZES, repeats=3)
    assert len(samples) == len(DIRECTIONS) * len(MODES) * len(SIZES) * 3
    for sample in samples:
        # Under emulation a copy never finishes sooner than the model allows.
        assert sample.seconds >= 0.999 * model.copy_s(sample.direction, sample.mode, sample.nbytes)
    rates = bandwidths(samples)
    for direction in DIRECTIONS:
        for mode in MODES:
            model_rate = model.copy_bytes_per_s(direction, mode)
            # What is recorded is what was measured: the model's rate, never faster.
            assert 0.5 * model_rate < rates[direction][f"{mode}_bytes_per_s"] < 1.1 * model_rate


def test_plain_dram_copies_are_measured_as_they_run() -> None:
    fast, slow = pool_needs(SIZES)
    with open_tiers(TierOptions(device_model="none"), fast, slow) as tiers:
        samples = measure_copies(tiers, SIZES, repeats=1)
    assert all(s.seconds > 0 for s in samples)
    assert all(rate > 0 for rates in bandwidths(samples).values() for rate in rates.values())
