"""Fast-memory shares: the one number every figure keys its x axis on.

Runs and plans state their budget as the paper's slow:fast ratio (``"4:1"``), or as a byte
limit when the user gave ``--fast-limit``. Comparing ratio strings is fragile (``"4:1"`` and
``"8:2"`` are the same budget), so everything here reduces a budget to the fast share
``fast / (slow + fast)`` and compares shares with a tolerance.
"""

from __future__ import annotations

from fractions import Fraction

from autotm_schemas.units import parse_ratio

#: The paper's PMM:DRAM ratios for Figs. 7, 9 and 11 (slow:fast), in plotting order.
COMMON_RATIOS = ("8:1", "4:1", "1:1")

#: The Inception case study's fast shares (Fig. 10): 1, 1/2 .. 1/10, 1/20 .. 1/100, 2/3, 3/4, 0.
CASE_STUDY_SHARES: tuple[Fraction, ...] = (
    Fraction(1),
    *(Fraction(1, d) for d in range(2, 11)),
    *(Fraction(1, d) for d in (20, 40, 60, 80, 100)),
    Fraction(2, 3),
    Fraction(3, 4),
    Fraction(0),
)

#: Two shares closer than this are the same budget (rounding of byte limits included).
SHARE_TOLERANCE = 1e-6


def share_of_ratio(ratio: str) -> float:
    """``"4:1"`` -> 0.2: the fraction of the all-fast footprint the fast tier may hold."""
    slow, fast = parse_ratio(ratio)
    return fast / (slow + fast)


def normalize_ratio(ratio: str) -> str:
    """``"4.0:1"`` -> ``"4:1"``: one spelling per ratio for labels and table keys."""
    slow, fast = parse_ratio(ratio)
    return f"{slow:g}:{fast:g}"


def same_share(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= SHARE_TOLERANCE


def share_key(share: float | None) -> float | None:
    """A hashable, rounded share for grouping runs of the same budget."""
    return None if share is None else round(share, 6)


def share_label(share: float) -> str:
    """A readable fraction for axis labels: 0.1 -> '1/10', 2/3 -> '2/3', 0.137 -> '0.137'."""
    fraction = Fraction(share).limit_denominator(200)
    if abs(float(fraction) - share) > SHARE_TOLERANCE:
        return f"{share:.3g}"
    return str(fraction)


def ratio_label(share: float) -> str:
    """The paper's slow:fast spelling of a share: 0.2 -> '4:1', 0 -> '1:0', 1 -> '0:1'."""
    if share <= SHARE_TOLERANCE:
        return "1:0"
    fraction = Fraction(share).limit_denominator(200)
    if abs(float(fraction) - share) > SHARE_TOLERANCE:
        return f"{(1 - share) / share:.4g}:1"
    slow = fraction.denominator - fraction.numerator
    return f"{slow}:{fraction.numerator}"


def is_common_ratio(share: float | None) -> bool:
    return any(same_share(share, share_of_ratio(r)) for r in COMMON_RATIOS)
