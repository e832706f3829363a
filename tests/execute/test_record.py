"""Run records: paths, statistics after warm-up, and validation before writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_execute.record import (
    KernelStats,
    iterations_record,
    kernels_table_path,
    peak_rss_bytes,
    write_run,
)
from autotm_schemas import SchemaError


@pytest.mark.parametrize(
    ("run", "table"),
    [("out/run.json", "out/run.kernels.parquet"), ("x", "x.kernels.parquet")],
)
def test_the_table_sits_beside_run_json(run: str, table: str) -> None:
    assert kernels_table_path(run) == Path(table)


def test_medians_leave_out_the_warmup() -> None:
    record = iterations_record([10.0, 1.0, 2.0, 3.0], warmup=1)
    assert record == {"count": 4, "warmup": 1, "seconds": [10.0, 1.0, 2.0, 3.0], "median_s": 2.0}
    assert iterations_record([5.0], warmup=0)["median_s"] == 5.0


def test_kernel_stats_per_node() -> None:
    kernel = np.array([[9.0, 9.0], [1.0, 4.0], [3.0, 2.0], [2.0, 3.0]])
    zeros = np.zeros_like(kernel)
    stats = KernelStats.from_samples(kernel, zeros, zeros + 1, warmup=1)
    assert stats.median_s.tolist() == [2.0, 3.0]
    assert stats.min_s.tolist() == [1.0, 2.0] and stats.max_s.tolist() == [3.0, 4.0]
    assert stats.async_wait_s.tolist() == [1.0, 1.0]


def test_peak_rss_is_positive() -> None:
    assert peak_rss_bytes() > 10 * 2**20


def test_an_invalid_record_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"run\.json"):
        write_run(tmp_path / "run.json", {"format": "autotm.run/1"}, {})
    assert list(tmp_path.iterdir()) == []
