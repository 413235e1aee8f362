"""Frozen dataclasses as JSON files: read and written by their fields' types, checked on reading.

The files that cross stages (the model card, the benchmark report) are dataclasses here; this is
how one becomes its JSON object and back. A field's type says what its value must be: a nested
`JsonClass`, `tuple[X, ...]` (a JSON list), `Mapping[str, X]` (an object keyed by data), a JSON
scalar (`str`, `int`, `float`, `bool`), `Any` (a JSON value taken as it is), or `X | None`.
Reading names the first key that is wrong (`model card.triage: missing 'malignant_threshold'`);
keys no field names are refused, so a misspelt key is not silently "absent".
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, ClassVar, TypeVar

from contract.commands import CommandError

_T = TypeVar("_T", bound="JsonClass")


class JsonFormatError(CommandError, ValueError):
    """The JSON does not have the shape its dataclass says; the message says where and why."""


class JsonClass:
    """A frozen dataclass read from and written to a JSON object by its fields' types."""

    # Absent (None) fields are left out of the JSON (else written as null).
    omit_none: ClassVar[bool] = True
    # What a malformed object raises: the file's own error, a JsonFormatError.
    format_error: ClassVar[type[JsonFormatError]] = JsonFormatError

    @classmethod
    def from_json(cls: type[_T], value: Any, where: str = "") -> _T:
        """The object a JSON value holds; `format_error` naming the first key that is wrong."""
        return _decode_object(cls, value, where or cls.__name__, cls.format_error)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (fresh lists and dicts)."""
        return _encode(self)


def _decode(kind: Any, value: Any, where: str, error: type[JsonFormatError]) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return None if value is None else _decode(inner, value, where, error)
    if is_dataclass(kind):
        return _decode_object(kind, value, where, error)
    if origin is tuple:
        if not isinstance(value, list):
            raise error(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_decode(args[0], v, f"{where}[{i}]", error) for i, v in enumerate(value))
    if origin is Mapping:
        _expect_object(value, where, error)
        return {str(k): _decode(args[1], v, f"{where}.{k}", error) for k, v in value.items()}
    if kind is Any:
        return copy.deepcopy(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise error(f"{where}: expected {kind.__name__}, got {type(value).__name__}")


def _decode_object(kind: type, value: Any, where: str, error: type[JsonFormatError]) -> Any:
    _expect_object(value, where, error)
    hints = typing.get_type_hints(kind)
    known = [f.name for f in fields(kind)]
    unknown = [key for key in value if key not in known]
    if unknown:
        raise error(f"{where}: unknown key(s) {unknown}")
    values = {}
    for f in fields(kind):
        if f.name in value:
            values[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}", error)
        elif f.default is MISSING:
            raise error(f"{where}: missing '{f.name}'")
    return kind(**values)


def _expect_object(value: Any, where: str, error: type[JsonFormatError]) -> None:
    if not isinstance(value, Mapping):
        raise error(f"{where}: expected a JSON object, got {type(value).__name__}")


def _encode(value: Any) -> Any:
    if is_dataclass(value):
        omit = getattr(value, "omit_none", True)
        return {
            f.name: _encode(getattr(value, f.name))
            for f in fields(value)
            if not (omit and getattr(value, f.name) is None)
        }
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value
