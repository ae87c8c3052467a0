"""Response shapes: each JSON body the API answers with is declared once, as a ``TypedDict``.

The declaration serves both sides:

- **rendering**: the function that builds a body (``wallet_body``, ``operation_item``, ...) returns
  the ``TypedDict`` as a plain dict literal, which is the cheapest way Python builds a body (a DRF
  serializer costs about ten times as much: ``bench/render.py``);
- **documentation**: ``serializer_for(Shape)`` turns the declaration into the DRF serializer that
  drf-spectacular documents (``/schema``, ``/docs``, ``docs/openapi.yaml``). The component is named
  after the ``TypedDict``.

A key's Python type says what the schema says: ``str``, ``int``, ``bool``, ``Money`` (a string with
two decimals), ``Instant`` (an ISO 8601 date-time string), ``Literal[...]`` (an enum), ``X | None``
(nullable), ``NotRequired[...]`` (may be absent), another shape (a nested object), ``list[...]``, or
``dict[str, Any]`` (any object). ``Annotated[..., Doc("...")]`` is the key's description.

``shape_errors(Shape, body)`` checks a rendered body against its declaration (keys the declaration
lacks, required keys missing, values of the wrong type); the tests run it on every body the API
renders (``wallet_service/tests/test_shapes.py``).
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

from rest_framework import serializers
from typing_extensions import Doc

__all__ = [
    "DOCUMENTED",
    "MONEY_PATTERN",
    "Doc",
    "Instant",
    "Money",
    "Pattern",
    "keys_of",
    "serializer_for",
    "shape_errors",
]

MONEY_PATTERN = r"^[0-9]+\.[0-9]{2}$"


@dataclass(frozen=True)
class Pattern:
    """A string key's regular expression (documented as ``pattern``)."""

    regex: str


class DateTimeFormat:
    """Marks a string key as an ISO 8601 date-time (documented as ``format: date-time``)."""


Money = Annotated[str, Pattern(MONEY_PATTERN)]
Instant = Annotated[str, DateTimeFormat]


@dataclass(frozen=True)
class _Key:
    """One key of a shape, read from its annotation."""

    kind: Any  # str, int, bool, dict, a Literal, a TypedDict, or list (with ``item``)
    required: bool = True
    nullable: bool = False
    doc: str | None = None
    pattern: str | None = None
    date_time: bool = False
    choices: tuple = ()
    item: _Key | None = None  # a list's items


def _read(hint) -> _Key:
    """The declaration of one key from its type hint (``NotRequired``, ``Annotated`` and ``| None`` unwrapped)."""
    doc = pattern = None
    date_time = nullable = False
    required = True
    while True:
        origin = get_origin(hint)
        if origin is NotRequired:
            required = False
            hint = get_args(hint)[0]
        elif origin is Annotated:
            hint, *metadata = get_args(hint)
            for item in metadata:
                if isinstance(item, Doc):
                    doc = item.documentation
                elif isinstance(item, Pattern):
                    pattern = item.regex
                elif item is DateTimeFormat:
                    date_time = True
        elif origin in (Union, types.UnionType) and type(None) in get_args(hint):
            nullable = True
            rest = [arg for arg in get_args(hint) if arg is not type(None)]
            if len(rest) != 1:
                raise TypeError(f"a shape's key has one type besides None, not {hint!r}")
            hint = rest[0]
        else:
            break
    common = {"required": required, "nullable": nullable, "doc": doc}
    if origin is Literal:
        return _Key(Literal, choices=get_args(hint), **common)
    if origin is list:
        return _Key(list, item=_read(get_args(hint)[0]), **common)
    if origin is dict or hint is dict:
        return _Key(dict, **common)
    if is_typeddict(hint) or hint in (str, int, bool):
        return _Key(hint, pattern=pattern, date_time=date_time, **common)
    raise TypeError(f"a shape's key cannot be {hint!r}")


@cache
def keys_of(shape) -> dict[str, _Key]:
    """The shape's keys in declaration order (a subclass's after its base's), each with its declaration."""
    # Required-ness is read from the annotations: with ``from __future__ import annotations`` Python 3.11's
    # ``__required_keys__`` misses ``NotRequired``.
    if not shape.__total__:
        raise TypeError(f"{shape.__name__}: mark the optional keys NotRequired instead of total=False")
    return {name: _read(hint) for name, hint in get_type_hints(shape, include_extras=True).items()}


def _field(key: _Key) -> serializers.Field:
    options: dict[str, Any] = {}
    if not key.required:
        options["required"] = False
    if key.nullable:
        options["allow_null"] = True
    if key.doc is not None:
        options["help_text"] = key.doc
    if key.kind is list and is_typeddict(key.item.kind):
        return serializer_for(key.item.kind)(many=True, **options)
    if key.kind is list:
        return serializers.ListField(child=_field(key.item), **options)
    if is_typeddict(key.kind):
        return serializer_for(key.kind)(**options)
    if key.kind is Literal:
        return serializers.ChoiceField(choices=list(key.choices), **options)
    if key.kind is dict:
        return serializers.DictField(**options)
    if key.kind is int:
        return serializers.IntegerField(**options)
    if key.kind is bool:
        return serializers.BooleanField(**options)
    if key.date_time:
        return serializers.DateTimeField(**options)
    if key.pattern is not None:
        return serializers.RegexField(key.pattern, **options)
    return serializers.CharField(**options)


@cache
def serializer_for(shape, component: str | None = None) -> type[serializers.Serializer]:
    """The DRF serializer drf-spectacular documents ``shape`` with, as the component ``component``
    (default: the shape's name). For the documentation only: bodies are rendered by their own
    functions, never through it."""
    name = f"{component or shape.__name__}Serializer"  # drf-spectacular drops the suffix
    fields = {key_name: _field(key) for key_name, key in keys_of(shape).items()}
    serializer = type(name, (serializers.Serializer,), {"__module__": shape.__module__, "__qualname__": name, **fields})
    DOCUMENTED[component or shape.__name__] = shape
    return serializer


# Every shape documented so far, by component name: what the tests check rendered bodies against.
DOCUMENTED: dict[str, type] = {}


def shape_errors(shape, body, path: str = "body") -> list[str]:
    """What is wrong with ``body`` as a ``shape``: unknown keys, missing required keys, wrong types."""
    if not isinstance(body, dict):
        return [f"{path}: {type(body).__name__}, not an object"]
    keys = keys_of(shape)
    errors = [f"{path}.{name}: not declared by {shape.__name__}" for name in body if name not in keys]
    for name, key in keys.items():
        if name not in body:
            if key.required:
                errors.append(f"{path}.{name}: required by {shape.__name__}, missing")
            continue
        errors += _value_errors(key, body[name], f"{path}.{name}")
    return errors


def _value_errors(key: _Key, value, path: str) -> list[str]:
    if value is None:
        return [] if key.nullable else [f"{path}: null, not nullable"]
    if key.kind is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [error for index, item in enumerate(value) for error in _value_errors(key.item, item, f"{path}.{index}")]
    if is_typeddict(key.kind):
        return shape_errors(key.kind, value, path)
    if key.kind is Literal:
        return (
            []
            if value in key.choices and type(value) is type(key.choices[0])
            else [f"{path}: {value!r} not one of {key.choices}"]
        )
    expected = {dict: dict, int: int, bool: bool, str: str}[key.kind]
    if type(value) is not expected:
        return [f"{path}: {type(value).__name__}, not {expected.__name__}"]
    if key.pattern is not None and not re.search(key.pattern, value):
        return [f"{path}: {value!r} does not match {key.pattern}"]
    if key.date_time:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return [f"{path}: {value!r} is not an ISO 8601 date-time"]
    return []
