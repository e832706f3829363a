"""The report folder appears whole or not at all.

Everything is written into a hidden temporary folder beside REPORT_DIR and renamed into place
at the end, so an error never leaves a half-written report, and a browser open on the old
report never sees a mix. An existing REPORT_DIR is replaced only when it is empty or an
earlier report (it holds the marker file), never a folder of someone's other files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from autotm_schemas import BadInputError

#: A file every report folder holds, so that a rerun knows it may replace the folder.
MARKER = ".autotm-report"


def check_target(target: Path) -> None:
    """Refuse a REPORT_DIR that is a file, or a folder that is not an earlier report."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BadInputError(f"{target}: -o: expected a folder for the report, found a file")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise BadInputError(
            f"{target}: -o: folder exists and is not an autotm-report folder; "
            "give a new or empty folder"
        )


@contextlib.contextmanager
def report_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; move it to ``target`` if the block succeeds."""
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text("made by autotm-report; safe to replace\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report is for reading
        old: Path | None = None
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.rmdir(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
