"""Typed values at a path inside a JSON text column, as Ibis expressions on DuckDB and Spark.

The lake keeps an event's `properties`, `context` and `traits` as JSON text. Ibis's own
JSON operations do not type values the same way on every engine (on Spark they go
through pandas UDFs that cannot read a string value), so each engine's own functions are
named here, one function per job, and chosen by the backend the column lives on:

- DuckDB: `json_type(doc, path)` and `json_extract_string(doc, path)`;
- Spark (4.0): `try_parse_json(doc)`, `variant_get`, `schema_of_variant` and
  `try_variant_get`.

A value reads as a string only if it is a JSON string, as a number only if it is a
finite JSON number (not a numeric string), as a boolean only if it is `true`/`false`;
anything else (a missing key, `null`, another type, an object or array) is NULL, which
every comparison treats as missing. `accord.audiences.paths.typed` is the same in Python.
"""

from __future__ import annotations

from typing import Any, Literal

import ibis

from accord.engine.connection import is_spark

ValueType = Literal["string", "number", "boolean"]

# Numbers in a Spark variant are integers of some width, decimals or doubles.
_SPARK_NUMBERS = ("TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE")
_DUCKDB_NUMBERS = ("BIGINT", "UBIGINT", "HUGEINT", "DOUBLE")


@ibis.udf.scalar.builtin(name="json_type")  # type: ignore[untyped-decorator]
def _duckdb_json_type(doc: str, path: str) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duckdb_json_text(doc: str, path: str) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="try_parse_json")  # type: ignore[untyped-decorator]
def _spark_parse(doc: str) -> bytes: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="variant_get")  # type: ignore[untyped-decorator]
def _spark_at(variant: bytes, path: str) -> bytes: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="schema_of_variant")  # type: ignore[untyped-decorator]
def _spark_schema(variant: bytes) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="try_variant_get")  # type: ignore[untyped-decorator]
def _spark_text(variant: bytes, path: str, as_type: str) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="try_variant_get")  # type: ignore[untyped-decorator]
def _spark_number(variant: bytes, path: str, as_type: str) -> float: ...  # type: ignore[empty-body]


def json_path(keys: list[str]) -> str:
    """The JSONPath of nested object keys (checked by the caller: `[A-Za-z0-9_]` only)."""
    return "$." + ".".join(keys)


def _is_spark(column: Any) -> bool:
    return is_spark(column._find_backend(use_default=True))


def _finite(number: Any) -> Any:
    return ibis.ifelse(number.isnan() | number.isinf(), ibis.null("float64"), number)


def json_value(column: Any, keys: list[str], kind: ValueType) -> Any:
    """The value at `keys` in the JSON text `column`, if it is a `kind`; else NULL."""
    path = ibis.literal(json_path(keys))
    if _is_spark(column):
        variant = _spark_parse(column)
        schema = _spark_schema(_spark_at(variant, path))
        if kind == "string":
            return ibis.ifelse(
                schema == "STRING", _spark_text(variant, path, "string"), ibis.null("string")
            )
        if kind == "boolean":
            return ibis.ifelse(
                schema == "BOOLEAN",
                _spark_text(variant, path, "string") == "true",
                ibis.null("boolean"),
            )
        is_number = schema.isin(_SPARK_NUMBERS) | schema.startswith("DECIMAL")
        number = _spark_number(variant, path, "double")
        return ibis.ifelse(is_number, _finite(number), ibis.null("float64"))
    kind_of = _duckdb_json_type(column, path)
    text = _duckdb_json_text(column, path)
    if kind == "string":
        return ibis.ifelse(kind_of == "VARCHAR", text, ibis.null("string"))
    if kind == "boolean":
        return ibis.ifelse(kind_of == "BOOLEAN", text == "true", ibis.null("boolean"))
    number = text.try_cast("float64")
    return ibis.ifelse(kind_of.isin(_DUCKDB_NUMBERS), _finite(number), ibis.null("float64"))


def json_present(column: Any, keys: list[str]) -> Any:
    """Whether `keys` lead to a value other than `null` (of any type) in `column`."""
    path = ibis.literal(json_path(keys))
    if _is_spark(column):
        schema = _spark_schema(_spark_at(_spark_parse(column), path))
        return schema.notnull() & (schema != "VOID")
    kind_of = _duckdb_json_type(column, path)
    return kind_of.notnull() & (kind_of != "NULL")
