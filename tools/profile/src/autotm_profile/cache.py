"""The persistent kernel cache: timings keyed by (namespace, kernel key, configuration).

The namespace (:func:`autotm_profile.identity.namespace`, stored in the ``fingerprint`` column)
is the machine fingerprint joined with a hash of the kernels' implementation (autotm-execute's
version, its kernels' source, numpy, the timing protocol): new hardware or new kernel code
starts empty instead of serving another program's timings.

One SQLite database (``kernels.sqlite3``) in the cache folder, in WAL mode, committed after
every kernel: an interrupted profile (Ctrl-C, kill -9) keeps every kernel finished before the
interruption and loses at most the one in flight, and the next run starts where it stopped.
Keys carry no network name, so a kernel timed for one network serves every other network that
runs it on the same machine.

What is stored is the *measured* time of the kernel as it ran (at the batch it ran at, without
any emulated penalty); the emulated penalty and batch scaling are applied when the table is
written, from the device model and the graph, so they never go stale in the cache.

The folder is ``--cache DIR``, else ``$AUTOTM_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotm``, else
``~/.cache/autotm``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autotm_schemas import BadInputError

from .timing import Stats

FILE_NAME = "kernels.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timings (
    fingerprint TEXT NOT NULL,
    kernel_key TEXT NOT NULL,
    config TEXT NOT NULL,
    median_s REAL NOT NULL,
    min_s REAL NOT NULL,
    max_s REAL NOT NULL,
    samples INTEGER NOT NULL,
    scratch_bytes INTEGER NOT NULL,
    tool_version TEXT NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (fingerprint, kernel_key, config)
);
CREATE TABLE IF NOT EXISTS copies (
    fingerprint TEXT NOT NULL,
    direction TEXT NOT NULL,
    mode TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    seconds REAL NOT NULL,
    sample INTEGER NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (fingerprint, direction, mode, bytes, sample)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("AUTOTM_CACHE_DIR"):
        return Path(env["AUTOTM_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "autotm"
    return Path.home() / ".cache" / "autotm"


@dataclass(frozen=True)
class Entry:
    stats: Stats
    scratch_bytes: int


class KernelCache:
    """Read and write timings; ``with KernelCache(dir) as cache: ...``."""

    def __init__(self, folder: str | os.PathLike[str], tool_version: str = "") -> None:
        self.folder = Path(folder)
        self.tool_version = tool_version
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = self.folder / FILE_NAME
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise BadInputError(
                    f"{self.path}: cache schema {row[0]}, expected {SCHEMA_VERSION} "
                    "(remove the file or pass another --cache)"
                )
        except sqlite3.DatabaseError as exc:
            raise BadInputError(
                f"{self.folder / FILE_NAME}: expected a writable kernel cache ({exc})"
            ) from None
        except OSError as exc:
            raise BadInputError(
                f"--cache {self.folder}: expected a writable folder ({exc.strerror})"
            ) from None

    def __enter__(self) -> KernelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def lookup(self, fingerprint: str, kernel_key: str, configs: Iterable[str]) -> dict[str, Entry]:
        """The cached entries of one kernel, by configuration text."""
        wanted = set(configs)
        rows = self._db.execute(
            "SELECT config, median_s, min_s, max_s, samples, scratch_bytes FROM timings "
            "WHERE fingerprint = ? AND kernel_key = ?",
            (fingerprint, kernel_key),
        ).fetchall()
        return {
            config: Entry(Stats(med, lo, hi, int(n)), int(scratch))
            for config, med, lo, hi, n, scratch in rows
            if config in wanted
        }

    def store(
        self,
        fingerprint: str,
        kernel_key: str,
        entries: Mapping[str, Entry],
    ) -> None:
        """Record one kernel's configurations in one transaction (the flush point)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO timings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        fingerprint,
                        kernel_key,
                        config,
                        e.stats.median_s,
                        e.stats.min_s,
                        e.stats.max_s,
                        e.stats.samples,
                        e.scratch_bytes,
                        self.tool_version,
                        now,
                    )
                    for config, e in entries.items()
                ],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def lookup_copies(self, fingerprint: str) -> list[tuple[str, str, int, float]]:
        """Cached copy samples of a machine: (direction, mode, bytes, seconds)."""
        rows = self._db.execute(
            "SELECT direction, mode, bytes, seconds FROM copies WHERE fingerprint = ? "
            "ORDER BY direction DESC, bytes, mode DESC, sample",
            (fingerprint,),
        ).fetchall()
        return [(str(d), str(m), int(b), float(s)) for d, m, b, s in rows]

    def store_copies(
        self, fingerprint: str, samples: Iterable[tuple[str, str, int, float]]
    ) -> None:
        """Replace a machine's copy samples in one transaction."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        counters: dict[tuple[str, str, int], int] = {}
        rows = []
        for direction, mode, nbytes, seconds in samples:
            index = counters.get((direction, mode, nbytes), 0)
            counters[(direction, mode, nbytes)] = index + 1
            rows.append((fingerprint, direction, mode, nbytes, seconds, index, now))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM copies WHERE fingerprint = ?", (fingerprint,))
            self._db.executemany("INSERT INTO copies VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def count(self, fingerprint: str | None = None) -> int:
        if fingerprint is None:
            return int(self._db.execute("SELECT COUNT(*) FROM timings").fetchone()[0])
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM timings WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()[0]
        )
