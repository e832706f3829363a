"""Machine fingerprint: stable for one set-up, different across tier set-ups."""

from __future__ import annotations

from pathlib import Path

from autotm_execute.machine import cpu_cores, cpu_model, machine_fields, machine_fingerprint
from autotm_execute.tiers import TierOptions, open_tiers


def fingerprint(options: TierOptions, fast: int = 4096, slow: int = 4096) -> str:
    with open_tiers(options, fast, slow) as tiers:
        return machine_fingerprint(tiers)


def test_fingerprint_is_stable_and_depends_on_the_tiers(tmp_path: Path) -> None:
    default = fingerprint(TierOptions())
    assert len(default) == 16
    assert fingerprint(TierOptions(), 8192, 0) == default  # pool sizes do not matter
    others = {
        fingerprint(TierOptions(slow_dir=str(tmp_path))),
        fingerprint(TierOptions(device_model="none")),
    }
    assert len(others | {default}) == 3


def test_machine_fields_fill_machine_json() -> None:
    with open_tiers(TierOptions(), 0, 0) as tiers:
        fields = machine_fields(tiers)
    assert fields["cpu"] == {"model": cpu_model(), "cores": cpu_cores()}
    assert fields["device"] == "cpu" and fields["gpu"] is None
    assert fields["device_model"]["name"] == "optane-dc-2019"
    assert fields["memory_bytes"] > 0
