"""The side files of a column mapping: items with features, topic names, followed topics.

Private to `multiembed.data.adapters`. Each is one TOML table of a mapping file
(`[items]`, `[topics]`, `[user_topics]`); `file` is resolved relative to the
mapping file, and a column left unset falls back to the engagement mapping's
column of the same meaning (the item id, the item topics, the user id).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from multiembed.errors import ConfigError


def column_problems(
    obj: object, required: tuple[str, ...], optional: tuple[str, ...], *, unset: str = "left out"
) -> Iterator[tuple[str, object, str]]:
    """(field, value, rule) of each column-name field of `obj` that is not a non-empty string."""
    for name in required:
        value = getattr(obj, name)
        if not isinstance(value, str) or not value:
            yield name, value, "must be a non-empty column name"
    for name in optional:
        value = getattr(obj, name)
        if value is not None and (not isinstance(value, str) or not value):
            yield name, value, f"must be a non-empty column name or {unset}"


def _check(obj: Any, table: str, problems: Iterator[tuple[str, object, str]]) -> None:
    found = [f"{table}.{name} = {value!r}: {rule}" for name, value, rule in problems]
    if not isinstance(obj.file, Path):
        found.insert(0, f"{table}.file = {obj.file!r}: must be a path")
    if found:
        raise ConfigError(found)


@dataclass(frozen=True, kw_only=True)
class ItemsMapping:
    """The item file (`[items]`): one row per item, with topics, features and a title.

    Attributes:
        file: the item file, in the format of the engagement log (CSV or Parquet).
        id: column of the item id (None: the engagement mapping's `item`).
        topics: column of the item's topics (None: the engagement mapping's
            `item_topics`, or no topics when that is unset too).
        title: column of a human-readable title (kept in `vocab/item_titles.parquet`).
        vector: numeric columns that make up the item's dense feature vector, in
            order (a pretrained embedding); an empty cell marks the item invalid
            (paper Eq. 6), a cell that is not a number quarantines the item.
        categorical: columns of categorical features (any text or integer); an
            empty cell marks the item invalid.

    Raises:
        ConfigError: listing every bad field as `items.field = value: rule`.
    """

    file: Path
    id: str | None = None
    topics: str | None = None
    title: str | None = None
    vector: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("vector", "categorical"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _check(self, "items", self._problems())

    def _problems(self) -> Iterator[tuple[str, object, str]]:
        yield from column_problems(self, (), ("id", "topics", "title"))
        for name in ("vector", "categorical"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(c, str) and c for c in value):
                yield name, value, "must be a list of column names"
            elif len(set(value)) != len(value):
                yield name, value, "names a column more than once"
        if isinstance(self.vector, tuple) and isinstance(self.categorical, tuple):
            both = sorted(set(self.vector) & set(self.categorical))
            if both:
                yield "categorical", self.categorical, f"also in vector: {', '.join(both)}"


@dataclass(frozen=True, kw_only=True)
class TopicsMapping:
    """The topic file (`[topics]`): names (and parents) of the topic keys used elsewhere.

    Attributes:
        file: the topic file, in the format of the engagement log.
        id: column of the topic key, as the item topics, the logged topics and
            the followed topics write it.
        name: column of the topic's human-readable name.
        parent: column of the parent topic's key (sub-topics), or None.
    """

    file: Path
    id: str
    name: str
    parent: str | None = None

    def __post_init__(self) -> None:
        _check(self, "topics", column_problems(self, ("id", "name"), ("parent",)))


@dataclass(frozen=True, kw_only=True)
class UserTopicsMapping:
    """The followed-topics file (`[user_topics]`): one row per (user, topic) follow.

    Attributes:
        file: the follow file, in the format of the engagement log.
        user: column of the user id (None: the engagement mapping's `user`).
        topic: column of the followed topic's key.
        followed_at: column of the follow time (seconds or ISO-8601), or None:
            followed since before the log began (time 0).
        unfollowed_at: column of the unfollow time (empty = still followed), or None.
    """

    file: Path
    topic: str
    user: str | None = None
    followed_at: str | None = None
    unfollowed_at: str | None = None

    def __post_init__(self) -> None:
        optional = ("user", "followed_at", "unfollowed_at")
        _check(self, "user_topics", column_problems(self, ("topic",), optional))


#: The side tables of a mapping file, by TOML table name.
SIDE_TABLES: dict[str, type[ItemsMapping | TopicsMapping | UserTopicsMapping]] = {
    "items": ItemsMapping,
    "topics": TopicsMapping,
    "user_topics": UserTopicsMapping,
}


def read_side_table(
    table: str, data: object, base: Path
) -> tuple[ItemsMapping | TopicsMapping | UserTopicsMapping | None, list[str]]:
    """One side table of a mapping file (`data` as TOML parsed it) and its problems."""
    cls = SIDE_TABLES[table]
    if not isinstance(data, dict):
        return None, [f"{table} = {data!r}: must be a table ([{table}] with file = ...)"]
    known = [f.name for f in fields(cls)]
    problems = [
        f"{table}.{key} = {value!r}: unknown key (known: {', '.join(known)})"
        for key, value in data.items()
        if key not in known
    ]
    required = [
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    ]
    problems += [f"{table}.{k}: missing" for k in required if k not in data]
    file = data.get("file")
    if "file" in data and not isinstance(file, str):
        problems.append(f"{table}.file = {file!r}: must be a path (relative to the mapping)")
    if problems:
        return None, problems
    args = {k: v for k, v in data.items() if k in known}
    args["file"] = base / str(file)
    try:
        return cls(**args), []
    except ConfigError as err:
        return None, err.problems
