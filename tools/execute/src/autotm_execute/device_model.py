"""Device models: the two tiers' bandwidths and latencies, used to emulate a slow tier.

A machine without a slow tier runs kernels in DRAM and adds the slow tier's extra cost from a
device model, as memory emulators such as Quartz do. A model is a JSON document following
``device-model.schema.json``; ``optane-dc-2019`` ships with the package (models/), and a user may
pass any file of their own.

Stable API (autotm-profile uses it)::

    model = DeviceModel.load("optane-dc-2019")     # a shipped name, or a path to a JSON file
    model.name                                    # "optane-dc-2019"
    model.kernel_penalty_s(slow_read_bytes, slow_write_bytes)
    model.copy_s("slow_to_fast", "sync", nbytes)  # seconds a copy takes under the model
    model.to_json()                               # the validated document, as a dict

The kernel penalty is additive: a kernel measured with every tensor in DRAM moved its bytes at
DRAM speed; reading ``R`` bytes and writing ``W`` bytes in the slow tier instead costs

    R * (1/slow.read_bw - 1/fast.read_bw) + W * (1/slow.write_bw - 1/fast.write_bw)
    + r * (slow.read_latency - fast.read_latency) + w * (slow.write_latency - fast.write_latency)

where ``r`` and ``w`` count the tensors read and written in the slow tier (one access latency
per streamed tensor; hardware prefetch hides the rest). Negative terms are clamped to zero.
It assumes each byte of a tensor crosses the memory bus once, which holds for streaming
kernels and for blocked GEMM/convolution whose reuse stays in cache; it over-charges a
compute-bound kernel whose memory traffic would have hidden under compute. The README of
autotm-execute discusses the limits.

A model may say how many ``cores`` share its bandwidths (a whole socket's figures are what
all of its cores reach together). An emulated run then stands for the slice of that machine
its kernels run on: with ``t`` threads (``OPENBLAS_NUM_THREADS``, else the CPUs this process
may use), both tiers' bandwidths and the synchronous copy rates are scaled by ``t / cores``
(at most 1), keeping the machine's balance of compute to memory bandwidth. Without the
scaling, a 2-core emulation of a 24-core socket would give each core twelve times the memory
bandwidth it had, and the slow tier would hardly matter. Latencies and the asynchronous copy
rates (one copy thread) are not scaled. The slice used is recorded in the document
(``emulated_slice``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from autotm_schemas import BadInputError, read_document, validate_document

Direction = Literal["slow_to_fast", "fast_to_slow"]
Mode = Literal["sync", "async"]

DEFAULT_MODEL = "optane-dc-2019"


def shipped_models() -> list[str]:
    """Names of the device models that ship with the package."""
    folder = resources.files(__package__).joinpath("models")
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


@dataclass(frozen=True)
class TierModel:
    """One tier's sequential bandwidths (bytes/s) and idle access latencies (s)."""

    read_bytes_per_s: float
    write_bytes_per_s: float
    read_latency_s: float
    write_latency_s: float


@dataclass(frozen=True)
class DeviceModel:
    """A validated device model document with the arithmetic the emulation needs."""

    name: str
    fast: TierModel
    slow: TierModel
    copy_rates: dict[str, dict[str, float]]  # direction -> mode -> bytes per second
    document: dict[str, Any]

    @classmethod
    def from_json(
        cls, doc: dict[str, Any], source: str = "<device model>", threads: int | None = None
    ) -> DeviceModel:
        """Build from a document, validating it against device-model.schema.json.

        ``threads``: the threads the emulated kernels run on (default :func:`kernel_threads`),
        for models that say how many ``cores`` share their bandwidths.
        """
        validate_document(doc, "device-model", source)
        document = json.loads(json.dumps(doc))  # a private deep copy: the model is frozen
        document.pop("emulated_slice", None)
        share = 1.0
        if "cores" in document:
            used = kernel_threads() if threads is None else threads
            share = min(1.0, used / int(document["cores"]))
            document["emulated_slice"] = {
                "threads": used,
                "cores": int(document["cores"]),
                "share": share,
            }
        tiers = document["tiers"]
        return cls(
            name=str(document["name"]),
            fast=_tier(tiers["fast"], share),
            slow=_tier(tiers["slow"], share),
            copy_rates={
                direction: {
                    mode: float(rate[f"{mode}_bytes_per_s"]) * (share if mode == "sync" else 1.0)
                    for mode in ("sync", "async")
                }
                for direction, rate in document["copy"].items()
                if direction in ("slow_to_fast", "fast_to_slow")
            },
            document=document,
        )

    @classmethod
    def load(cls, name_or_path: str | Path, threads: int | None = None) -> DeviceModel:
        """A shipped model by name, or a JSON file; BadInputError (exit 2) naming what exists.

        ``threads`` as for :meth:`from_json`."""
        text = str(name_or_path)
        if text in shipped_models():
            resource = resources.files(__package__).joinpath("models", f"{text}.json")
            doc = json.loads(resource.read_text(encoding="utf-8"))
            return cls.from_json(doc, f"{text} (shipped model)", threads)
        path = Path(text)
        if path.suffix == ".json" or path.exists() or "/" in text:
            if not path.is_file():
                raise BadInputError(
                    f"--device-model {text}: expected an existing device model JSON file or one "
                    f"of the shipped models {shipped_models()}"
                )
            return cls.from_json(read_document(path, "device-model"), text, threads)
        raise BadInputError(
            f"--device-model {text}: unknown device model; expected one of {shipped_models()} "
            "or a path to a JSON file"
        )

    def to_json(self) -> dict[str, Any]:
        """The model as its JSON document (a copy)."""
        doc: dict[str, Any] = json.loads(json.dumps(self.document))
        return doc

    @property
    def sha256(self) -> str:
        """Hash of the canonical document: two runs with equal hashes used the same numbers."""
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def provenance(self) -> str:
        return f"emulated:{self.name}"

    def kernel_penalty_s(
        self,
        slow_read_bytes: int,
        slow_write_bytes: int,
        read_tensors: int | None = None,
        write_tensors: int | None = None,
    ) -> float:
        """Extra seconds a kernel takes when it reads/writes these bytes in the slow tier.

        ``read_tensors``/``write_tensors`` count the tensors behind the bytes (one access
        latency each); by default one when any bytes are given, none otherwise.
        """
        reads = (1 if slow_read_bytes else 0) if read_tensors is None else read_tensors
        writes = (1 if slow_write_bytes else 0) if write_tensors is None else write_tensors
        fast, slow = self.fast, self.slow
        read_s = slow_read_bytes * (1.0 / slow.read_bytes_per_s - 1.0 / fast.read_bytes_per_s)
        write_s = slow_write_bytes * (1.0 / slow.write_bytes_per_s - 1.0 / fast.write_bytes_per_s)
        latency_s = reads * (slow.read_latency_s - fast.read_latency_s) + writes * (
            slow.write_latency_s - fast.write_latency_s
        )
        return max(0.0, read_s) + max(0.0, write_s) + max(0.0, latency_s)

    def cache_penalty_s(
        self, miss_bytes: int, writeback_bytes: int, miss_streams: int = 0
    ) -> float:
        """Extra seconds of a kernel under 2LM (DRAM as a cache of the slow tier).

        Lines that miss are read from the slow tier instead of DRAM; dirty lines evicted by the
        kernel's misses are written to the slow tier on top of what the kernel measured in DRAM
        (write-backs are extra traffic, not a substitute for a DRAM write).
        """
        fast, slow = self.fast, self.slow
        miss_s = miss_bytes * (1.0 / slow.read_bytes_per_s - 1.0 / fast.read_bytes_per_s)
        writeback_s = writeback_bytes / slow.write_bytes_per_s
        latency_s = miss_streams * (slow.read_latency_s - fast.read_latency_s)
        return max(0.0, miss_s) + writeback_s + max(0.0, latency_s)

    def copy_bytes_per_s(self, direction: str, mode: str) -> float:
        try:
            return self.copy_rates[direction][mode]
        except KeyError:
            raise ValueError(
                f"copy direction/mode {direction}/{mode}: expected slow_to_fast|fast_to_slow "
                "and sync|async"
            ) from None

    def copy_s(self, direction: str, mode: str, nbytes: int) -> float:
        """Seconds a copy of ``nbytes`` takes under the model."""
        return nbytes / self.copy_bytes_per_s(direction, mode)


def kernel_threads() -> int:
    """Threads the kernels run on: OPENBLAS_NUM_THREADS when set, else the usable CPUs."""
    configured = os.environ.get("OPENBLAS_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0))


def _tier(doc: dict[str, Any], share: float = 1.0) -> TierModel:
    return TierModel(
        read_bytes_per_s=float(doc["read_bytes_per_s"]) * share,
        write_bytes_per_s=float(doc["write_bytes_per_s"]) * share,
        read_latency_s=float(doc["read_latency_s"]),
        write_latency_s=float(doc["write_latency_s"]),
    )
