"""The report's figures, in page order: each entry draws one figure or says what it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..figure import Figure, Options
from ..inputs import Inputs
from . import (
    fig07_speedup,
    fig08_large,
    fig09_cost,
    fig10_case_study,
    fig11_accuracy,
    fig12_gpu,
    solver_stats,
)


@dataclass(frozen=True)
class FigureSpec:
    """One figure the report knows how to draw."""

    id: str
    title: str
    needs: str
    build: Callable[[Inputs, Options], Figure | None]


ALL_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(fig07_speedup.ID, fig07_speedup.TITLE, fig07_speedup.NEEDS, fig07_speedup.build),
    FigureSpec(fig08_large.ID, fig08_large.TITLE, fig08_large.NEEDS, fig08_large.build),
    FigureSpec(fig09_cost.ID, fig09_cost.TITLE, fig09_cost.NEEDS, fig09_cost.build),
    FigureSpec(
        fig10_case_study.PERFORMANCE_ID,
        fig10_case_study.PERFORMANCE_TITLE,
        fig10_case_study.PERFORMANCE_NEEDS,
        fig10_case_study.build_performance,
    ),
    FigureSpec(
        fig10_case_study.TIERS_ID,
        fig10_case_study.TIERS_TITLE,
        fig10_case_study.TIERS_NEEDS,
        fig10_case_study.build_tiers,
    ),
    FigureSpec(
        fig10_case_study.MOVED_ID,
        fig10_case_study.MOVED_TITLE,
        fig10_case_study.MOVED_NEEDS,
        fig10_case_study.build_moved,
    ),
    FigureSpec(fig11_accuracy.ID, fig11_accuracy.TITLE, fig11_accuracy.NEEDS, fig11_accuracy.build),
    FigureSpec(fig12_gpu.ID, fig12_gpu.TITLE, fig12_gpu.NEEDS, fig12_gpu.build),
    FigureSpec(solver_stats.ID, solver_stats.TITLE, solver_stats.NEEDS, solver_stats.build),
)
