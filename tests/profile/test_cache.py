"""The kernel cache: keyed lookups, flushes per kernel, copies, location and bad folders."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from autotm_profile.cache import FILE_NAME, Entry, KernelCache, default_cache_dir
from autotm_profile.timing import Stats
from autotm_schemas import BadInputError

ENTRY = Entry(Stats(2e-3, 1e-3, 4e-3, 9), 4096)


def test_store_then_lookup_by_fingerprint_key_and_config(tmp_path: Path) -> None:
    with KernelCache(tmp_path, "1.0") as cache:
        cache.store("fp", "Relu-1", {"fast|fast": ENTRY, "slow|fast": ENTRY})
        assert cache.lookup("fp", "Relu-1", ["fast|fast", "fast|slow"]) == {"fast|fast": ENTRY}
        assert cache.lookup("other-machine", "Relu-1", ["fast|fast"]) == {}
        assert cache.lookup("fp", "Relu-2", ["fast|fast"]) == {}
        assert cache.count("fp") == 2 and cache.count() == 2


def test_entries_survive_the_connection_and_replace_on_store(tmp_path: Path) -> None:
    with KernelCache(tmp_path) as cache:
        cache.store("fp", "k", {"c": ENTRY})
    newer = Entry(Stats(1.0, 1.0, 1.0, 3), 0)
    with KernelCache(tmp_path) as cache:
        assert cache.lookup("fp", "k", ["c"]) == {"c": ENTRY}
        cache.store("fp", "k", {"c": newer})
        assert cache.lookup("fp", "k", ["c"]) == {"c": newer}


def test_the_database_is_in_wal_mode_and_committed_per_store(tmp_path: Path) -> None:
    cache = KernelCache(tmp_path)
    cache.store("fp", "k", {"c": ENTRY})
    # Another connection sees the kernel while the first is still open: it was committed.
    other = sqlite3.connect(tmp_path / FILE_NAME)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM timings").fetchone()[0] == 1
    other.close()
    cache.close()


def test_copy_samples_are_replaced_as_a_whole(tmp_path: Path) -> None:
    samples = [("slow_to_fast", "sync", 4096, 1e-6), ("slow_to_fast", "sync", 4096, 2e-6)]
    with KernelCache(tmp_path) as cache:
        cache.store_copies("fp", samples)
        assert sorted(cache.lookup_copies("fp")) == sorted(samples)
        cache.store_copies("fp", samples[:1])
        assert cache.lookup_copies("fp") == samples[:1]
        assert cache.lookup_copies("other") == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AUTOTM_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/b"}, Path("/a")),
        ({"XDG_CACHE_HOME": "/b"}, Path("/b/autotm")),
        ({}, Path.home() / ".cache" / "autotm"),
    ],
)
def test_default_location(environ: dict[str, str], expected: Path) -> None:
    assert default_cache_dir(environ) == expected


def test_a_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInputError, match="expected a writable folder"):
        KernelCache(blocker)


def test_a_corrupt_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BadInputError, match="expected a writable kernel cache"):
        KernelCache(tmp_path)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    KernelCache(tmp_path).close()
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(BadInputError, match="cache schema 99"):
        KernelCache(tmp_path)
