from __future__ import annotations

import pytest
from autotm_schemas import BadInputError
from autotm_schemas.provenance import combine, describe
from autotm_schemas.units import fast_limit_from_ratio, format_bytes, parse_bytes, parse_ratio


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("12GB", 12 * 10**9),
        ("1.5GiB", 3 * 2**29),
        ("512 MiB", 512 * 2**20),
        ("2e3", 2000),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "12 parsecs", "-4GB", "GB"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(BadInputError, match="expected a byte size"):
        parse_bytes(text, "--fast-limit")


def test_ratio_gives_the_papers_budget() -> None:
    assert parse_ratio("4:1") == (4.0, 1.0)
    assert fast_limit_from_ratio(1000, parse_ratio("4:1")) == 200
    assert fast_limit_from_ratio(1000, parse_ratio("1:0")) == 0
    assert fast_limit_from_ratio(1000, parse_ratio("0:1")) == 1000


@pytest.mark.parametrize("text", ["4", "a:b", "0:0", "-1:2"])
def test_bad_ratio(text: str) -> None:
    with pytest.raises(BadInputError, match="--ratio"):
        parse_ratio(text)


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"


def test_provenance_combines_in_canonical_order() -> None:
    assert (
        combine("scaled:16", "emulated:optane-dc-2019", "measured")
        == "emulated:optane-dc-2019+scaled:16"
    )
    assert combine(None, "") == "measured"
    assert (
        describe("emulated:optane-dc-2019+scaled:16")
        == "emulated (optane-dc-2019), scaled from batch 16"
    )
    with pytest.raises(ValueError):
        combine("guessed")
