"""JSON documents: validate against the JSON Schemas in contracts/json, read and write them.

Every JSON file that crosses a tool boundary has a schema there; ``kind`` names it
(``plan``, ``run``, ``machine``, ``profile``, ``device-model``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from .atomic import write_text_atomic
from .errors import SchemaError

DOCUMENT_KINDS = ("plan", "run", "machine", "profile", "device-model")


@functools.cache
def _registry() -> Registry:
    resources_: list[tuple[str, Resource[Any]]] = []
    for entry in resources.files(__package__).joinpath("contracts", "json").iterdir():
        if entry.name.endswith(".schema.json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            resources_.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources_)


@functools.cache
def document_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a document kind, as a dict."""
    if kind not in DOCUMENT_KINDS:
        raise KeyError(f"unknown document kind {kind!r}; known: {list(DOCUMENT_KINDS)}")
    resource = _registry().get(f"urn:autotm:{kind}")
    assert resource is not None
    contents: dict[str, Any] = resource.contents
    return contents


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(document_schema(kind), registry=_registry())


def _field_path(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(document)"


def _expected(error: jsonschema.ValidationError) -> str:
    # The deepest, most specific error reads best; jsonschema's messages say what was found.
    validator = error.validator
    if validator == "required":
        return error.message.replace(" is a required property", " (a required field)")
    if validator in ("type", "enum", "const", "pattern", "minimum", "exclusiveMinimum", "minItems"):
        return f"{validator} {error.validator_value!r}, got {error.instance!r}"[:200]
    return error.message[:200]


def validate_document(doc: Any, kind: str, file: str = "<document>") -> None:
    """Raise :class:`SchemaError` naming the file, the field and what was expected."""
    errors = sorted(
        _validator(kind).iter_errors(doc), key=lambda e: (-len(e.absolute_path), e.message)
    )
    if errors:
        best = jsonschema.exceptions.best_match(errors) or errors[0]
        raise SchemaError(file, _field_path(best), _expected(best))


def read_document(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and validate a JSON document; ``-`` reads standard input."""
    name = str(path)
    try:
        text = sys.stdin.read() if name == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(name, "(file)", f"an existing {kind} JSON file") from None
    except IsADirectoryError:
        raise SchemaError(name, "(file)", f"a {kind} JSON file, not a directory") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            name, f"line {exc.lineno} column {exc.colno}", f"valid JSON ({exc.msg})"
        ) from None
    validate_document(doc, kind, name)
    if not isinstance(doc, dict):  # every document schema requires an object
        raise SchemaError(name, "(document)", "a JSON object")
    return doc


def dumps_document(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_document(path: str | os.PathLike[str], doc: Any, kind: str) -> None:
    """Validate, then write atomically (``-`` for standard output).

    A tool validates what it writes: a document that breaks its own contract is a bug, and it
    must not reach the next tool.
    """
    validate_document(doc, kind, str(path))
    write_text_atomic(path, dumps_document(doc))
