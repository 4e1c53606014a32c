"""A tiny TOML writer for resolved configs: tables of scalars and flat lists.

Enough for `multiembed.config.to_dict` output (one level of tables whose values
are strings, booleans, integers, floats or lists of them); anything else is a
`TypeError`, never a silently wrong file.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(tables: dict[str, dict[str, Any]]) -> str:
    """TOML text of ``{table: {key: value}}``; `tomllib.loads` gives the mapping back.

    Example:
        >>> import tomllib
        >>> text = dumps({"train": {"lr": 0.003, "epochs": 2, "ks": [50, 100], "name": "dcm"}})
        >>> print(text, end="")
        [train]
        lr = 0.003
        epochs = 2
        ks = [50, 100]
        name = "dcm"
        >>> tomllib.loads(text)["train"]["ks"]
        [50, 100]
    """
    lines: list[str] = []
    for table, values in tables.items():
        if not isinstance(values, dict):
            raise TypeError(f"toml: expected table {table!r} to be a dict, got {type(values)}")
        if lines:
            lines.append("")
        lines.append(f"[{_key(table)}]")
        for key, value in values.items():
            lines.append(f"{_key(key)} = {_value(f'{table}.{key}', value)}")
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else json.dumps(key)


def _value(where: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest round-trip form; "1e-06" is valid TOML
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(where, v) for v in value) + "]"
    raise TypeError(f"toml: cannot write {where} = {value!r} ({type(value).__name__})")
