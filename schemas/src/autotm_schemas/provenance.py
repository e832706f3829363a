"""Provenance strings: where a number comes from.

``measured`` (real tiers), ``emulated:<device model>``, ``scaled:<measured batch>``,
``simulated``; combinations are joined with ``+`` in that order, for example
``emulated:optane-dc-2019+scaled:16``.
"""

from __future__ import annotations

import re

_PART = re.compile(r"^(measured|simulated|emulated:[A-Za-z0-9._-]+|scaled:[0-9]+)$")
_ORDER = ("measured", "emulated", "scaled", "simulated")


def combine(*parts: str | None) -> str:
    """Join provenance parts, dropping empties and duplicates; 'measured' yields to the rest."""
    seen: list[str] = []
    for part in parts:
        for piece in (part or "").split("+"):
            if piece and piece not in seen:
                if not _PART.match(piece):
                    raise ValueError(f"bad provenance part {piece!r}")
                seen.append(piece)
    if len(seen) > 1 and "measured" in seen:
        seen.remove("measured")
    seen.sort(key=lambda p: _ORDER.index(p.split(":")[0]))
    return "+".join(seen) or "measured"


def split(provenance: str) -> dict[str, str | None]:
    """``'emulated:optane+scaled:16'`` -> {'emulated': 'optane', 'scaled': '16'}."""
    out: dict[str, str | None] = {}
    for piece in provenance.split("+"):
        key, _, value = piece.partition(":")
        out[key] = value or None
    return out


def describe(provenance: str) -> str:
    """A phrase for figure captions: 'emulated (optane-dc-2019), scaled from batch 16'."""
    parts = split(provenance)
    words = []
    if "measured" in parts:
        words.append("measured on real tiers")
    if "emulated" in parts:
        words.append(f"emulated ({parts['emulated']})")
    if "scaled" in parts:
        words.append(f"scaled from batch {parts['scaled']}")
    if "simulated" in parts:
        words.append("simulated")
    return ", ".join(words)
