"""Device models: loading, validation, and the penalty arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from autotm_execute.device_model import DEFAULT_MODEL, DeviceModel, shipped_models
from autotm_schemas import BadInputError, SchemaError
from hypothesis import given
from hypothesis import strategies as st


def test_the_shipped_model_loads_and_cites_its_sources() -> None:
    assert DEFAULT_MODEL in shipped_models()
    model = DeviceModel.load(DEFAULT_MODEL, threads=24)  # the whole socket: numbers as shipped
    assert model.name == DEFAULT_MODEL
    citations = " ".join(s["citation"] for s in model.to_json()["sources"])
    assert "1903.05714" in citations and "FAST 2020" in citations and "AutoTM" in citations
    # the AutoTM paper's copy bandwidths
    assert model.copy_bytes_per_s("slow_to_fast", "sync") == 29e9
    assert model.copy_bytes_per_s("slow_to_fast", "async") == 2e9
    assert model.copy_bytes_per_s("fast_to_slow", "sync") == 12e9
    assert model.copy_bytes_per_s("fast_to_slow", "async") == 2.5e9
    assert model.slow.read_bytes_per_s < model.fast.read_bytes_per_s


def test_a_user_file_loads(tmp_path: Path) -> None:
    doc = DeviceModel.load(DEFAULT_MODEL).to_json()
    doc["name"] = "my-cxl"
    doc["tiers"]["slow"]["read_bytes_per_s"] = 20e9
    path = tmp_path / "cxl.json"
    path.write_text(json.dumps(doc))
    model = DeviceModel.load(str(path), threads=24)
    assert model.name == "my-cxl" and model.slow.read_bytes_per_s == 20e9
    assert model.provenance == "emulated:my-cxl"


@pytest.mark.parametrize("name", ["optane-dc-2029", "nope"])
def test_an_unknown_name_lists_the_shipped_models(name: str) -> None:
    with pytest.raises(BadInputError, match="optane-dc-2019"):
        DeviceModel.load(name)


def test_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"missing\.json"):
        DeviceModel.load(str(tmp_path / "missing.json"))


def test_a_file_breaking_the_schema_names_the_field(tmp_path: Path) -> None:
    doc = DeviceModel.load(DEFAULT_MODEL).to_json()
    doc["tiers"]["slow"]["read_bytes_per_s"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"tiers\.slow\.read_bytes_per_s"):
        DeviceModel.load(str(path))


@given(
    read=st.integers(0, 10**10),
    write=st.integers(0, 10**10),
    reads=st.integers(0, 5),
    writes=st.integers(0, 5),
)
def test_kernel_penalty_is_the_documented_formula(
    read: int, write: int, reads: int, writes: int
) -> None:
    m = DeviceModel.load(DEFAULT_MODEL)
    f, s = m.fast, m.slow
    expected = (
        read * (1 / s.read_bytes_per_s - 1 / f.read_bytes_per_s)
        + write * (1 / s.write_bytes_per_s - 1 / f.write_bytes_per_s)
        + reads * (s.read_latency_s - f.read_latency_s)
        + max(0.0, writes * (s.write_latency_s - f.write_latency_s))
    )
    assert m.kernel_penalty_s(read, write, reads, writes) == pytest.approx(expected, rel=1e-12)


def test_kernel_penalty_counts_one_latency_per_side_by_default() -> None:
    m = DeviceModel.load(DEFAULT_MODEL)
    assert m.kernel_penalty_s(0, 0) == 0.0
    assert m.kernel_penalty_s(4096, 0) == pytest.approx(m.kernel_penalty_s(4096, 0, 1, 0))


def test_copy_time_is_bytes_over_bandwidth() -> None:
    m = DeviceModel.load(DEFAULT_MODEL)
    assert m.copy_s("fast_to_slow", "async", 5 * 10**9) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="sync"):
        m.copy_s("sideways", "sync", 1)


def test_cache_penalty_charges_misses_and_write_backs() -> None:
    m = DeviceModel.load(DEFAULT_MODEL)
    miss_only = m.cache_penalty_s(4096, 0)
    assert miss_only == pytest.approx(
        4096 * (1 / m.slow.read_bytes_per_s - 1 / m.fast.read_bytes_per_s)
    )
    assert m.cache_penalty_s(0, 4096) == pytest.approx(4096 / m.slow.write_bytes_per_s)


@pytest.mark.parametrize(("threads", "share"), [(2, 2 / 24), (12, 0.5), (24, 1.0), (48, 1.0)])
def test_an_emulated_run_is_a_slice_of_the_socket(threads: int, share: float) -> None:
    """Bandwidths and sync copy rates scale with the threads used; latencies and the one-thread
    async copies do not; the slice is recorded in the document."""
    whole = DeviceModel.load(DEFAULT_MODEL, threads=24)
    part = DeviceModel.load(DEFAULT_MODEL, threads=threads)
    assert part.slow.read_bytes_per_s == pytest.approx(whole.slow.read_bytes_per_s * share)
    assert part.fast.write_bytes_per_s == pytest.approx(whole.fast.write_bytes_per_s * share)
    assert part.slow.read_latency_s == whole.slow.read_latency_s
    assert part.copy_bytes_per_s("slow_to_fast", "sync") == pytest.approx(29e9 * share)
    assert part.copy_bytes_per_s("slow_to_fast", "async") == 2e9
    assert part.to_json()["emulated_slice"] == {"threads": threads, "cores": 24, "share": share}
    # the penalty of the same traffic grows as the slice shrinks
    assert part.kernel_penalty_s(10**8, 10**8) >= whole.kernel_penalty_s(10**8, 10**8)


def test_kernel_threads_follow_openblas(monkeypatch: pytest.MonkeyPatch) -> None:
    from autotm_execute.device_model import kernel_threads

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert kernel_threads() == 1
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert kernel_threads() >= 1
