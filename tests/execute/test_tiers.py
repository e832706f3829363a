"""Tier options and opening the tiers: the API autotm-profile shares."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from autotm_execute.tiers import (
    NO_MODEL,
    TierOptions,
    add_tier_arguments,
    open_tiers,
    tier_options_from_args,
)
from autotm_schemas import BadInputError
from autotm_schemas.cli import ArgumentParser
from referencing import Registry, Resource


def options(*argv: str) -> TierOptions:
    parser = ArgumentParser(prog="t")
    add_tier_arguments(parser)
    return tier_options_from_args(parser.parse_args(list(argv)))


def check_tiers_object(tiers: dict[str, Any]) -> None:
    """Validate against defs.schema.json#/$defs/tiers."""
    folder = resources.files("autotm_schemas").joinpath("contracts", "json")
    defs = json.loads(folder.joinpath("defs.schema.json").read_text())
    registry = Registry().with_resource(defs["$id"], Resource.from_contents(defs))
    schema = {"$ref": "urn:autotm:defs#/$defs/tiers"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(tiers)


def test_defaults_emulate_the_shipped_model() -> None:
    opts = options()
    assert opts == TierOptions()
    assert opts.model_name == "optane-dc-2019"
    with open_tiers(opts, 8192, 4096) as tiers:
        assert tiers.emulated and tiers.provenance == "emulated:optane-dc-2019"
        assert tiers.describe()["slow"]["kind"] == "emulated"
        check_tiers_object(tiers.describe())
        assert tiers.xp is np
        assert tiers.fast.size_bytes == 8192 and tiers.slow.size_bytes == 4096


def test_fast_memory_parses_units() -> None:
    assert options("--fast-memory", "2MiB").fast_memory == 2 * 2**20


def test_device_model_none_gives_plain_dram() -> None:
    with open_tiers(options("--device-model", NO_MODEL), 4096, 4096) as tiers:
        assert tiers.device_model is None and tiers.provenance == "measured"
        assert tiers.kernel_penalty_s(10**6, 10**6) == 0.0
        assert tiers.describe()["slow"]["kind"] == "dram"


def test_a_slow_dir_is_a_real_tier(tmp_path: Path) -> None:
    with open_tiers(options("--slow-dir", str(tmp_path)), 4096, 8192) as tiers:
        slow = tiers.describe()["slow"]
        assert slow["kind"] == "file" and slow["dax"] is False
        assert tiers.provenance == "measured"
        check_tiers_object(tiers.describe())


def test_emulated_copies_are_held_to_the_model() -> None:
    with open_tiers(options(), 1 << 20, 1 << 20) as tiers:
        src = tiers.fast.view(0, (1 << 18,), np.float32)
        dst = tiers.slow.view(0, (1 << 18,), np.float32)
        src[...] = 3.0
        modelled = tiers.copy_hold_s("fast_to_slow", "sync", src.nbytes)
        assert tiers.copy_sync("fast_to_slow", dst, src) >= modelled
        assert (dst == 3.0).all()
        copier = tiers.async_copier()
        ticket = copier.submit(src, dst, tiers.copy_hold_s("slow_to_fast", "async", dst.nbytes))
        copier.wait(ticket)
        assert ticket.seconds >= dst.nbytes / 2e9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--slow-dir", "/tmp", "--device-model", "optane-dc-2019"], "cannot be combined"),
        (["--device", "cuda", "--slow-dir", "/tmp"], "pinned host memory"),
        (["--fast-memory", "lots"], "byte size"),
        (["--slow-numa-node", "-1"], "node number"),
    ],
)
def test_contradictory_options_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        options(*argv)


def test_a_fast_pool_above_fast_memory_is_refused() -> None:
    with pytest.raises(BadInputError, match="larger than the fast tier"):
        open_tiers(options("--fast-memory", "4096"), 8192, 0)


def test_pools_beyond_host_memory_are_refused() -> None:
    with pytest.raises(BadInputError, match="available"):
        open_tiers(options(), 1 << 50, 0)


def test_an_unknown_device_model_is_refused() -> None:
    with pytest.raises(BadInputError, match="unknown device model"):
        open_tiers(options("--device-model", "optane-2030"), 4096, 0)


def test_a_missing_numa_node_is_refused() -> None:
    with pytest.raises(BadInputError, match="--slow-numa-node 4096"):
        open_tiers(options("--slow-numa-node", "4096"), 4096, 4096)
