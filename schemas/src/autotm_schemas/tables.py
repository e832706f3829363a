"""Parquet tables: Arrow schemas built from contracts/tables/*.json, validated reads and atomic writes.

The JSON table descriptions are the contract a non-Python reader uses; the Arrow schema is
derived from them here, so the two cannot drift apart. Type strings: ``string``, ``bool``,
``int32``, ``int64``, ``float64``, and ``list<T>`` of any of them (nested).
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .errors import SchemaError

TABLE_KINDS = ("kernels", "nodes", "tensors", "run-kernels")

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
}


def arrow_type(spec: str) -> pa.DataType:
    """Parse a contract type string into an Arrow type."""
    spec = spec.strip()
    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(arrow_type(spec[5:-1]))
    try:
        return _SCALARS[spec]
    except KeyError:
        raise ValueError(f"unknown type {spec!r} in a table contract") from None


@functools.cache
def table_contract(kind: str) -> dict[str, Any]:
    """The JSON description of a table kind."""
    if kind not in TABLE_KINDS:
        raise KeyError(f"unknown table kind {kind!r}; known: {list(TABLE_KINDS)}")
    text = (
        resources.files(__package__)
        .joinpath("contracts", "tables", f"{kind}.json")
        .read_text("utf-8")
    )
    contract: dict[str, Any] = json.loads(text)
    return contract


@functools.cache
def table_schema(kind: str) -> pa.Schema:
    """The Arrow schema of a table kind, with the format string in its metadata."""
    contract = table_contract(kind)
    fields = [
        pa.field(
            f["name"], arrow_type(f["type"]), nullable=f["nullable"], metadata={"doc": f["doc"]}
        )
        for f in contract["fields"]
    ]
    return pa.schema(fields, metadata={"autotm.format": contract["format"]})


def validate_table(table: pa.Table, kind: str, file: str = "<table>") -> pa.Table:
    """Check columns, types, nulls and enums; return the table cast to the contract's schema.

    Extra columns are an error: a reader would silently ignore them, a writer has a bug.
    """
    schema = table_schema(kind)
    contract = {f["name"]: f for f in table_contract(kind)["fields"]}
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise SchemaError(
            file, missing[0], f"a column {missing[0]!r} of type {contract[missing[0]]['type']}"
        )
    extra = [name for name in table.column_names if name not in schema.names]
    if extra:
        raise SchemaError(file, extra[0], f"no such column; known: {schema.names}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SchemaError(
                    file, field.name, f"type {contract[field.name]['type']}, got {column.type}"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaError(file, field.name, "no null values")
        allowed = contract[field.name].get("enum")
        if allowed is not None:
            values = {v for v in column.to_pylist() if v is not None}
            bad = sorted(values - set(allowed))
            if bad:
                raise SchemaError(file, field.name, f"one of {allowed}, got {bad[0]!r}")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def read_table(path: str | os.PathLike[str], kind: str) -> pa.Table:
    """Read a Parquet table and validate it against its contract."""
    name = str(path)
    try:
        # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset, which costs every
        # tool process most of a second before it reads a byte.
        with pq.ParquetFile(path) as parquet:
            table = parquet.read()
    except FileNotFoundError:
        raise SchemaError(name, "(file)", f"an existing {kind} Parquet file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(
            name, "(file)", f"a Parquet file ({str(exc).splitlines()[0][:120]})"
        ) from None
    return validate_table(table, kind, name)


def write_table(
    path: str | os.PathLike[str], table: pa.Table | dict[str, list[Any]], kind: str
) -> None:
    """Validate and write a table atomically. ``table`` may be a dict of columns."""
    if isinstance(table, dict):
        table = pa.Table.from_pydict(table, schema=table_schema(kind))
    checked = validate_table(table, kind, str(path))
    with atomic_path(path) as tmp:
        pq.write_table(checked, tmp, compression="zstd")
