"""In-memory tables as the files `prepare` reads: the API's Arrow and DataFrame sources,
side tables and dict mappings written to a scratch directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multiembed.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]

_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet"}


def implied_dataset(source: object, dataset: str | None) -> str:
    """The adapter's name: `dataset`, else one implied by `source`."""
    table = source is not None and not isinstance(source, str | os.PathLike)
    if dataset is not None:
        if table and dataset != "parquet":
            raise ConfigError([f'dataset = "{dataset}": a table source is read as "parquet"'])
        return dataset
    if source is None:
        return "synthetic"
    if table:
        return "parquet"
    implied = _SUFFIXES.get(Path(str(source)).suffix.lower())
    if implied is None:
        raise ConfigError(
            [
                f"dataset: not given, and the source {source} has no .csv, .tsv or .parquet "
                "suffix to imply one (synthetic, movielens, lastfm, taobao, csv, parquet)"
            ]
        )
    return implied


def write_table(table: Any, path: Path, name: str, kind: str) -> Path:
    """`table` converted to Arrow and written to `path` as `kind` (parquet or csv)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        arrow = table if isinstance(table, pa.Table) else pa.table(table)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise DataError(
            f"{name}: {type(table).__name__} cannot be converted to an Arrow table: {err}"
        ) from None
    if kind == "csv":
        pa_csv.write_csv(arrow, path)
    else:
        pq.write_table(arrow, path)
    return path


def mapping_toml(
    mapping: PathLike | Mapping[str, Any] | None,
    tables: Mapping[str, Any] | None,
    work: Path,
    dataset: str,
) -> Path | None:
    """A mapping file for the generic adapters, with `tables` written beside it."""
    if tables and dataset not in ("csv", "parquet"):
        raise ConfigError([f'tables: only the csv and parquet datasets read them, not "{dataset}"'])
    if mapping is None or (isinstance(mapping, str | os.PathLike) and not tables):
        return None if mapping is None else Path(mapping)
    if isinstance(mapping, Mapping):
        keys = _absolute_files(dict(mapping))
    else:
        import tomllib

        try:
            keys = tomllib.loads(Path(mapping).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return Path(mapping)  # the adapter reports the unreadable file by name
        keys = _absolute_files(keys, Path(mapping).parent)
    suffix = "csv" if dataset == "csv" else "parquet"
    for name, table in (tables or {}).items():
        section = keys.get(name, {})
        if not isinstance(section, Mapping):
            raise ConfigError(
                [f"tables[{name!r}]: the mapping's {name} = {section!r} is not a table"]
            )
        written = write_table(table, work / f"{name}.{suffix}", f"tables[{name!r}]", suffix)
        keys[name] = {**section, "file": str(written)}
    path = work / "mapping.toml"
    path.write_text(_toml(keys), encoding="utf-8")
    return path


def _absolute_files(keys: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """`keys` with relative paths under ``file`` / ``*_file`` keys made absolute from `base`."""
    out: dict[str, Any] = {}
    for key, value in keys.items():
        if isinstance(value, dict):
            value = _absolute_files(value, base)
        elif (key == "file" or key.endswith("_file")) and isinstance(value, str):
            value = str((base or Path.cwd()) / value)
        out[key] = value
    return out


def _toml(keys: Mapping[str, Any], prefix: str = "") -> str:
    """A TOML document of `keys`: plain values first, then one table per nested dict."""
    from multiembed.config import toml_value

    def name(key: str) -> str:
        bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
        return key if bare else toml_value(key)

    tables = {k: v for k, v in keys.items() if isinstance(v, Mapping)}
    lines = [f"{name(k)} = {toml_value(v)}" for k, v in keys.items() if k not in tables]
    for key, value in tables.items():
        lines += ["", f"[{prefix}{name(key)}]", _toml(value, f"{prefix}{name(key)}.")]
    return "\n".join(lines) + "\n"
