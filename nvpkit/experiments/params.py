"""Notebook parameters to typed values: the one path from a papermill parameters cell to a config.

Papermill injects parameters as strings and numbers (``-p period 10000``, ``-p qscale 2,3,3``);
``parse_fields`` turns those named like a dataclass's fields into values of the fields' types.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Mapping
from typing import Any

from .._checks import is_int

__all__ = ["parse_value", "parse_list", "parse_setting", "parse_ladder", "parse_fields", "field_docs"]


def parse_value(text: Any) -> Any:
    """A parameter's text as an int, else a float, else itself ("2" -> 2, "0.8" -> 0.8, "slow" -> "slow")."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_list(text: Any, name: str) -> tuple:
    """A comma-separated list: "2,3,3" -> (2, 3, 3), "hevc, av1" -> ("hevc", "av1"); sequences pass
    through as tuples, a single value becomes a 1-tuple."""
    if isinstance(text, (tuple, list)):
        return tuple(parse_value(v) for v in text)
    if not isinstance(text, str):
        return (text,)
    values = tuple(parse_value(t.strip()) for t in text.split(",") if t.strip())
    if not values:
        raise ValueError(f"{name}={text!r} has no values; give comma-separated values, e.g. '2,3,3'")
    return values


def parse_setting(text: Any) -> Any:
    """A compressor setting: a comma list as a tuple ("2,3,3"), else a single value."""
    return parse_list(text, "setting") if isinstance(text, str) and "," in text else parse_value(text)


def parse_ladder(text: Any, name: str) -> tuple[dict[str, Any], ...]:
    """Points that each set several compressor settings at once, separated by ``;``, each a list of
    ``setting=value``: "crf=15 qscale=1,2,2; crf=27 qscale=3,5,5" -> ({"crf": 15, "qscale": (1, 2, 2)},
    {"crf": 27, "qscale": (3, 5, 5)}). An empty string is no point; a sequence of dicts passes through."""
    if isinstance(text, (tuple, list)) and all(isinstance(point, dict) for point in text):
        return tuple(dict(point) for point in text)
    example = "give points separated by ';', each 'setting=value ...', e.g. 'crf=15 qscale=1,2,2; crf=27 qscale=3,5,5'"
    if not isinstance(text, str):
        raise ValueError(f"{name}={text!r} is not allowed; {example}")
    points = []
    for point in filter(None, (p.strip() for p in text.split(";"))):
        pairs = [token.partition("=") for token in point.split()]
        keys = [key for key, _, _ in pairs]
        if not all(key and sep and value for key, sep, value in pairs) or len(set(keys)) < len(keys):
            raise ValueError(f"{name}={text!r}: the point {point!r} is not a list of distinct settings; {example}")
        points.append({key: parse_setting(value) for key, _, value in pairs})
    return tuple(points)


def _coerce(owner: str, name: str, kind: Any, value: Any) -> Any:
    where = f"{owner}.{name}={value!r}"
    if kind == int | str:  # a number or a word ("auto"): the config checks which words it takes
        return parse_value(value)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"{where} is not allowed; use True or False")
        return value
    if kind is int:
        parsed = parse_value(value) if isinstance(value, str) else value
        if not is_int(parsed):
            raise ValueError(f"{where} is not allowed; use an int")
        return parsed
    if kind is float:
        parsed = parse_value(value) if isinstance(value, str) else value
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            raise ValueError(f"{where} is not allowed; use a number")
        return float(parsed)
    if kind is tuple:  # an empty string is the empty tuple ("anchor_crfs": no anchor)
        return () if isinstance(value, str) and not value.strip() else parse_list(value, f"{owner}.{name}")
    if kind is str and not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} is not allowed; use a string")
        return str(value)  # papermill passes a name that looks like a number as a number
    if kind is dict and not isinstance(value, dict):
        raise ValueError(f"{where} is not allowed; use a dict")
    return value


def parse_fields(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The values in ``params`` named like fields of the dataclass ``cls``, converted to the fields'
    types (strings to ints, floats, bools; comma lists to tuples); other names are left out."""
    hints = typing.get_type_hints(cls)
    return {f.name: _coerce(cls.__name__, f.name, hints.get(f.name), params[f.name])
            for f in dataclasses.fields(cls) if f.init and f.name in params}


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of the dataclass ``cls`` (its bases' too; the nearest
    class's wins), by field name: the help text of the command line and the documentation."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs
