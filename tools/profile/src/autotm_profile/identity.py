"""What a cached kernel timing depends on besides the machine: the code that ran and how.

The kernel cache is keyed by (machine fingerprint, kernel key, configuration), and the machine
fingerprint (``autotm_execute.machine.machine_fingerprint``) names hardware and tiers only. A
timing also depends on the kernel's implementation: when ``autotm_execute/kernels/conv.py`` is
rewritten, a Conv timed before is another program's time. So every cache entry lives in a
*namespace*: the machine fingerprint joined with a hash of

* the autotm-execute package version,
* the source of every file of the ``autotm_execute.kernels`` package (relative path and bytes,
  so an edit, a new file or a rename all count),
* the numpy version (it carries the BLAS every matrix product runs on) and the BLAS thread
  settings of the environment (``OPENBLAS_NUM_THREADS`` and the like: one thread and two time
  differently, and very differently on a busy machine, see :mod:`autotm_profile.timing`),
* the timing protocol's version (:data:`autotm_profile.timing.PROTOCOL_VERSION`).

Changing any of them starts an empty namespace: the old timings stay in the database, unused,
and nothing stale is served. machine.json keeps the plain machine fingerprint (other tools
compare it across runs); profile.json records the namespace and its parts.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .timing import PROTOCOL_VERSION


def source_sha256(folder: Path) -> str:
    """sha256 over every ``*.py`` file under ``folder``: relative path and contents, sorted."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode() + b"\0")
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


@functools.cache
def kernels_sha256() -> str:
    """The hash of the installed ``autotm_execute.kernels`` package's source files."""
    import autotm_execute.kernels as kernels

    return source_sha256(Path(kernels.__file__).parent)


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_threads(environ: dict[str, str] | None = None) -> str:
    """The BLAS thread settings, e.g. ``OPENBLAS_NUM_THREADS=1`` or ``default``."""
    env = os.environ if environ is None else environ
    given = [f"{name}={env[name]}" for name in BLAS_THREAD_VARIABLES if env.get(name)]
    return ",".join(given) or "default"


def implementation() -> dict[str, Any]:
    """The parts of the namespace besides the machine (profile.json ``kernel_implementation``)."""
    import autotm_execute

    return {
        "autotm_execute": autotm_execute.__version__,
        "kernels_sha256": kernels_sha256(),
        "numpy": np.__version__,
        "blas_threads": blas_threads(),
        "protocol": PROTOCOL_VERSION,
    }


def namespace(fingerprint: str, parts: dict[str, Any] | None = None) -> str:
    """The cache namespace: ``<machine fingerprint>/<16 hex digits of the implementation>``."""
    parts = implementation() if parts is None else parts
    canonical = "|".join(f"{key}={parts[key]}" for key in sorted(parts))
    return f"{fingerprint}/{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
