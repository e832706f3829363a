"""Write a figure's files: PNG and SVG drawn by vl-convert, its Vega-Lite JSON, its data.

vl-convert runs Vega in-process (no browser, no network): the images are the same on every
machine, and ``allowed_base_urls=[]`` makes sure a spec can never fetch anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pyarrow.parquet as pq
import vl_convert as vlc

from . import __version__
from .figure import Figure

#: PNG pixels per SVG pixel: sharp on high-density screens and in print.
PNG_SCALE = 2.0


@dataclass(frozen=True)
class FigureFiles:
    """Paths of one figure's files, relative to the report folder."""

    png: str
    svg: str
    vega_lite: str
    data: str


def vega_lite_version() -> str | None:
    """The Vega-Lite version Altair writes, in vl-convert's spelling ('6.4'), if supported."""
    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return major_minor if major_minor in vlc.get_vegalite_versions() else None


def spec_of(figure: Figure) -> dict[str, Any]:
    spec: dict[str, Any] = figure.chart.to_dict()
    spec.setdefault("usermeta", {})["autotm"] = {
        "figure": figure.id,
        "caption": figure.caption,
        "provenance": list(figure.provenance),
        "tool": {"name": "autotm-report", "version": __version__},
    }
    return spec


def write_data(figure: Figure, path: Path) -> None:
    table = figure.data.to_arrow()
    metadata = {
        b"autotm.figure": figure.id.encode(),
        b"autotm.caption": figure.caption.encode(),
        b"autotm.provenance": "; ".join(figure.provenance).encode(),
    }
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")


def write_figure(figure: Figure, root: Path) -> FigureFiles:
    """Render ``figure`` into ``root``/figures and ``root``/data."""
    files = FigureFiles(
        png=f"figures/{figure.id}.png",
        svg=f"figures/{figure.id}.svg",
        vega_lite=f"figures/{figure.id}.vl.json",
        data=f"data/{figure.id}.parquet",
    )
    for folder in ("figures", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    spec = spec_of(figure)
    version = vega_lite_version()
    (root / files.vega_lite).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    svg = vlc.vegalite_to_svg(spec, vl_version=version, allowed_base_urls=[])
    (root / files.svg).write_text(svg, encoding="utf-8")
    png = vlc.vegalite_to_png(spec, vl_version=version, scale=PNG_SCALE, allowed_base_urls=[])
    (root / files.png).write_bytes(png)
    write_data(figure, root / files.data)
    return files
