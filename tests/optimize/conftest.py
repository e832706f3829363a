"""Fixtures for the optimizer tests: the golden hand-made profiles, written once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from . import profiles


@pytest.fixture(scope="session")
def profile_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``profile_dir("evict_and_fetch")`` -> a PROFILE_DIR for that golden spec."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            spec = getattr(profiles, name)()
            made[name] = profiles.write(tmp_path_factory.mktemp(name), spec)
        return made[name]

    return make
