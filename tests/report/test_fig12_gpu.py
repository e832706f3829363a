"""Fig. 12: GPU speedups over CUDA unified memory."""

from __future__ import annotations

import dataclasses

import pytest
from autotm_report.figure import Options
from autotm_report.figures import fig12_gpu
from autotm_report.inputs import Inputs

from .fixtures import median_of, read_json


def test_speedup_over_unified(inputs: Inputs) -> None:
    df = fig12_gpu.data(inputs)
    assert df.height == 4  # two batches x synchronous, asynchronous
    for row in df.iter_rows(named=True):
        assert read_json(row["unified_file"])["mode"] == "unified"
        assert read_json(row["run_file"])["device"] == "cuda"
        expected = median_of(row["unified_file"]) / median_of(row["run_file"])
        assert row["speedup"] == pytest.approx(expected, rel=1e-12)


def test_measured_provenance(inputs: Inputs) -> None:
    figure = fig12_gpu.build(inputs, Options())
    assert figure is not None
    assert figure.provenance == ("measured on real tiers",)


def test_omitted_without_unified(inputs: Inputs) -> None:
    runs = tuple(r for r in inputs.runs if r.formulation != "unified")
    assert fig12_gpu.build(dataclasses.replace(inputs, runs=runs), Options()) is None
