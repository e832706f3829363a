"""Table contracts: the Arrow schema follows the JSON description; bad tables are named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from autotm_schemas import (
    TABLE_KINDS,
    SchemaError,
    read_table,
    table_contract,
    table_schema,
    write_table,
)
from autotm_schemas.tables import arrow_type

NODES = {
    "index": [0, 1],
    "name": ["conv", "relu"],
    "op_type": ["Conv", "Relu"],
    "domain": ["", ""],
    "kernel_key": ["k0", "k1"],
    "inputs": [["x", "w", ""], ["y"]],
    "outputs": [["y"], ["z"]],
    "scratch_bytes": [4096, 0],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("int64", pa.int64()),
        ("list<string>", pa.list_(pa.string())),
        ("list<list<int64>>", pa.list_(pa.list_(pa.int64()))),
    ],
)
def test_arrow_type_parses_nested_lists(spec: str, expected: pa.DataType) -> None:
    assert arrow_type(spec).equals(expected)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        arrow_type("decimal")


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_every_contract_builds_a_schema_with_docs(kind: str) -> None:
    schema = table_schema(kind)
    contract = table_contract(kind)
    assert schema.names == [f["name"] for f in contract["fields"]]
    assert all(field.metadata and field.metadata[b"doc"] for field in schema)
    assert schema.metadata[b"autotm.format"] == contract["format"].encode()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nodes.parquet"
    write_table(path, NODES, "nodes")
    table = read_table(path, "nodes")
    assert table.column("inputs").to_pylist() == NODES["inputs"]
    assert table.schema.equals(table_schema("nodes"))


def test_missing_column_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "nodes.parquet"
    columns = {k: v for k, v in NODES.items() if k != "kernel_key"}
    pq.write_table(pa.table(columns), path)
    with pytest.raises(SchemaError) as info:
        read_table(path, "nodes")
    assert str(info.value).startswith(f"{path}: kernel_key: expected a column")


def test_wrong_type_names_field(tmp_path: Path) -> None:
    path = tmp_path / "nodes.parquet"
    pq.write_table(pa.table({**NODES, "scratch_bytes": ["lots", "none"]}), path)
    with pytest.raises(SchemaError, match=r"scratch_bytes: expected type int64, got string"):
        read_table(path, "nodes")


def test_enum_violation_names_value(tmp_path: Path) -> None:
    tensors = {
        "name": ["x"],
        "bytes": [4],
        "dtype": ["float32"],
        "shape": [[1]],
        "kind": ["weights"],
        "producer": [None],
        "users": [[0]],
        "fixed_tier": [None],
    }
    with pytest.raises(SchemaError, match=r"kind: expected one of .*got 'weights'"):
        write_table(tmp_path / "t.parquet", pa.table(tensors), "tensors")
    assert not (tmp_path / "t.parquet").exists()


def test_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "kernels.parquet"
    path.write_text(json.dumps({"not": "parquet"}))
    with pytest.raises(SchemaError, match="expected a Parquet file"):
        read_table(path, "kernels")
