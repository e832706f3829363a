"""Byte sizes and memory ratios as users type them."""

from __future__ import annotations

import re

from .errors import BadInputError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e([0-9]+))?\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str, what: str = "size") -> int:
    """``"12GB"`` -> 12_000_000_000, ``"1.5GiB"``, ``"4096"``; decimal and binary units."""
    match = _SIZE.match(text)
    if not match or match.group(3).lower() not in _UNITS:
        raise BadInputError(
            f"{what}: expected a byte size such as 4096, 512MB or 1.5GiB, got {text!r}"
        )
    number = float(match.group(1)) * (10 ** int(match.group(2) or 0))
    return round(number * _UNITS[match.group(3).lower()])


def format_bytes(count: float) -> str:
    """Human-readable binary size: 1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_ratio(text: str) -> tuple[float, float]:
    """The paper's slow:fast ratio: ``"4:1"`` -> (4.0, 1.0). ``"1:0"`` is all slow, ``"0:1"`` all fast."""
    parts = text.split(":")
    try:
        slow, fast = (float(p) for p in parts)
    except ValueError:
        raise BadInputError(f"--ratio: expected slow:fast such as 4:1, got {text!r}") from None
    if slow < 0 or fast < 0 or slow + fast == 0:
        raise BadInputError(
            f"--ratio: expected non-negative slow:fast with a positive sum, got {text!r}"
        )
    return slow, fast


def fast_limit_from_ratio(footprint_bytes: int, ratio: tuple[float, float]) -> int:
    """Fast budget for a ratio: footprint * fast / (slow + fast), as in the paper."""
    slow, fast = ratio
    return int(footprint_bytes * fast // (slow + fast))
