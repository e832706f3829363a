"""Rendering: PNG, SVG, Vega-Lite JSON and Parquet, each non-empty and consistent."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from autotm_report.figure import Options
from autotm_report.figures import fig12_gpu
from autotm_report.inputs import Inputs
from autotm_report.render import vega_lite_version, write_figure


def test_write_figure(inputs: Inputs, tmp_path: Path) -> None:
    figure = fig12_gpu.build(inputs, Options())
    assert figure is not None
    files = write_figure(figure, tmp_path)
    png = (tmp_path / files.png).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    svg = (tmp_path / files.svg).read_text()
    assert svg.startswith("<svg") and "<text" in svg and "speedup over unified memory" in svg
    spec = json.loads((tmp_path / files.vega_lite).read_text())
    assert "vega-lite" in spec["$schema"]
    assert spec["usermeta"]["autotm"]["figure"] == figure.id
    assert spec["usermeta"]["autotm"]["provenance"] == ["measured on real tiers"]
    data = pl.read_parquet(tmp_path / files.data)
    assert data.equals(figure.data)
    metadata = pq.read_schema(tmp_path / files.data).metadata
    assert metadata[b"autotm.figure"] == figure.id.encode()


def test_vega_lite_version_is_supported() -> None:
    version = vega_lite_version()
    assert version is not None and version[0].isdigit()
