"""Pools: views at offsets, file pools, DAX detection, refusing bad slow directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from autotm_execute import pools
from autotm_execute.pools import AnonymousPool, FilePool, align_up, check_slow_dir, is_dax, mount_of
from autotm_schemas import BadInputError

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
/dev/pmem0 /mnt/pmem0 ext4 rw,relatime,dax 0 0
/dev/pmem1 /mnt/pmem1 xfs rw,dax=always 0 0
/dev/pmem2 /mnt/pmem2 ext4 rw,dax=inode 0 0
tmpfs /mnt/pmem0/tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "dax"),
    [
        ("/mnt/pmem0/pool", True),
        ("/mnt/pmem1", True),
        ("/mnt/pmem2/x", None),
        ("/mnt/pmem0/tmp/x", False),
        ("/home/user", False),
        ("/mnt/pmem01", False),
    ],
)
def test_dax_is_read_from_the_longest_matching_mount(path: str, dax: bool | None) -> None:
    assert is_dax(path, MOUNTS) is dax


def test_mount_of_finds_the_file_system() -> None:
    assert mount_of("/mnt/pmem1/a/b", MOUNTS)[:2] == ("/mnt/pmem1", "xfs")


def test_views_alias_the_pool_at_their_offsets() -> None:
    pool = AnonymousPool(3 * 4096)
    a = pool.view(4096, (4, 2), np.float32)
    b = pool.view(4096, (8,), np.float32)
    a[...] = np.arange(8, dtype=np.float32).reshape(4, 2)
    assert b.tolist() == list(range(8))
    assert pool.bytes_view(4096, 4).view(np.float32)[0] == 0.0
    assert a.ctypes.data % 4096 == 0
    with pytest.raises(ValueError, match="outside the pool"):
        pool.view(2 * 4096, (1025,), np.float32)
    pool.close()


def test_an_empty_pool_gives_empty_views() -> None:
    pool = AnonymousPool(0)
    assert pool.view(0, (0,), np.float32).shape == (0,)


def test_a_file_pool_maps_a_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    pool = FilePool(2 * 4096, tmp_path)
    assert pool.dax is False
    view = pool.view(4096, (3,), np.int64)
    view[...] = [1, 2, 3]
    assert pool.view(4096, (3,), np.int64).tolist() == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []  # unlinked once mapped
    pool.close()


def test_a_missing_slow_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="existing directory"):
        check_slow_dir(tmp_path / "nope", 10)


def test_a_file_is_not_a_slow_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(BadInputError, match="existing directory"):
        FilePool(4096, tmp_path / "f")


def test_a_full_slow_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.statvfs(tmp_path)

    class Full:
        f_bavail, f_frsize, f_blocks = 1, real.f_frsize, real.f_blocks

    monkeypatch.setattr(pools.os, "statvfs", lambda path: Full())
    with pytest.raises(BadInputError, match="bytes free"):
        FilePool(1 << 30, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_slow_dir_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(BadInputError, match="writable"):
            FilePool(4096, tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_a_pool_file_that_cannot_be_created_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deny(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", deny)
    with pytest.raises(BadInputError, match="writable directory"):
        FilePool(4096, tmp_path)


@pytest.mark.parametrize(("n", "aligned"), [(0, 0), (1, 4096), (4096, 4096), (4097, 8192)])
def test_align_up(n: int, aligned: int) -> None:
    assert align_up(n) == aligned
