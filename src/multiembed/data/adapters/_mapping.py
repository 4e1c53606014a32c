"""The column mapping of the generic CSV/Parquet adapters, in code or from a TOML file.

A mapping file is TOML. Its top-level keys map the engagement log (every
`ColumnMapping` field, plus `name`, the dataset name in the report); the
tables `[items]`, `[topics]` and `[user_topics]` name side files with item
features and titles, topic names and followed topics (`_side_mapping`). File
paths are relative to the mapping file. `multiembed mapping template` writes a
commented example with every key (`multiembed.data.adapters.template`).

```toml
name = "shop"
user = "customer"
item = "sku"
ts = "time"
action = "event"

[action_map]
clk = "click"
buy = "purchase"

[items]
file = "products.csv"
vector = ["f0", "f1"]
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from multiembed.data.adapters._side_mapping import (
    SIDE_TABLES,
    ItemsMapping,
    TopicsMapping,
    UserTopicsMapping,
    column_problems,
    read_side_table,
)
from multiembed.data.schema import ACTIONS
from multiembed.data.text import line_encoding
from multiembed.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ColumnMapping:
    """Where the canonical columns are in a source file, and how to read its values.

    Attributes:
        user / item / ts: column names of the user id, item id and timestamp
            (integer seconds or an ISO-8601 date/time).
        action: column of the action; None gives every row `default_action`.
        default_action: the action when there is no action column.
        action_map: raw action value -> canonical kind (`schema.ACTIONS`); values
            not in the map pass through unchanged, so validation quarantines
            unknown ones ("unknown action kind").
        source_topic: column of the condition logged with the engagement.
        item_topics: column of the item's topics (`topic_separator`-joined text,
            or a list column in Parquet), in the engagement or the item file.
        topic_separator: separator of topics in a text cell.
        delimiter / encoding: text files only.
        header: field names when a text file has no header row.
        integer_ids: raw user and item ids must be integers (false, the
            default: ids are text, kept exactly as written, so `u-17`, UUIDs
            and `0042` all work; an integer-looking id still answers to an
            integer in requests).

    Raises:
        ConfigError: listing every bad field as `ColumnMapping.field = value: rule`.
    """

    user: str
    item: str
    ts: str
    action: str | None = None
    default_action: str = "click"
    action_map: Mapping[str, str] = field(default_factory=dict)
    source_topic: str | None = None
    item_topics: str | None = None
    topic_separator: str = "|"
    delimiter: str = ","
    encoding: str = "utf-8"
    header: tuple[str, ...] | None = None
    integer_ids: bool = False

    def __post_init__(self) -> None:
        problems = [
            f"ColumnMapping.{name} = {value!r}: {rule}" for name, value, rule in self._problems()
        ]
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "action_map", MappingProxyType(dict(self.action_map)))
        if self.header is not None:
            object.__setattr__(self, "header", tuple(self.header))

    def _problems(self) -> Iterator[tuple[str, object, str]]:
        names = ("user", "item", "ts"), ("action", "source_topic", "item_topics")
        bad_names = list(column_problems(self, *names, unset="None"))
        yield from bad_names
        if self.default_action not in ACTIONS:
            yield "default_action", self.default_action, f"must be one of {', '.join(ACTIONS)}"
        if not isinstance(self.action_map, Mapping):
            yield "action_map", self.action_map, "must be a table of raw value -> action kind"
        else:
            for raw, kind in self.action_map.items():
                if kind not in ACTIONS:
                    yield f"action_map[{raw!r}]", kind, f"must be one of {', '.join(ACTIONS)}"
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            yield "delimiter", self.delimiter, "must be a single character"
        elif self.delimiter in '"\r\n':
            yield "delimiter", self.delimiter, "must not be a quote or a line end"
        if not isinstance(self.topic_separator, str) or not self.topic_separator:
            yield "topic_separator", self.topic_separator, "must be a non-empty string"
        if not isinstance(self.encoding, str) or not line_encoding(self.encoding):
            yield (
                "encoding",
                self.encoding,
                "must be a text encoding Python knows with ASCII line ends "
                "(utf-8, latin-1, cp1252, gbk, ...; convert UTF-16 files to UTF-8)",
            )
        if not isinstance(self.integer_ids, bool):
            yield "integer_ids", self.integer_ids, "must be true or false"
        if self.header is not None:
            if not isinstance(self.header, tuple | list) or not all(
                isinstance(h, str) for h in self.header
            ):
                yield "header", self.header, "must be a list of column names"
            elif len(set(self.header)) != len(self.header):
                repeated = sorted({h for h in self.header if self.header.count(h) > 1})
                yield "header", self.header, f"names {', '.join(repeated)} more than once"
            elif not bad_names:
                absent = [c for c in self.columns(item_topics=False) if c not in self.header]
                if absent:
                    yield (
                        "header",
                        self.header,
                        f"must name the mapped column(s) {', '.join(absent)}",
                    )

    def columns(self, *, item_topics: bool = True) -> list[str]:
        """The engagement columns to read: user, item, ts, then the optional ones mapped.

        `item_topics=False` leaves out the item topics (read from an item file).
        """
        names = [self.user, self.item, self.ts]
        optional = (self.action, self.source_topic, self.item_topics if item_topics else None)
        names += [c for c in optional if c is not None]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class MappingFile:
    """What a mapping file says: the engagement mapping, the side files, a dataset name."""

    mapping: ColumnMapping
    items: ItemsMapping | None = None
    topics: TopicsMapping | None = None
    user_topics: UserTopicsMapping | None = None
    name: str | None = None


#: Top-level keys of a mapping file besides the `ColumnMapping` fields and the side tables.
#: `items_file = "x"` is the short form of `[items] file = "x"`.
EXTRA_KEYS = ("name", "items_file")


def read_mapping_file(path: Path) -> MappingFile:
    """Reads a TOML column mapping; every problem is reported in one `ConfigError`."""
    source = str(path)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(["file not found"], source) from None
    except UnicodeDecodeError:
        raise ConfigError(["file is not UTF-8 text"], source) from None
    except OSError as err:
        raise ConfigError([f"cannot be read ({err.strerror or err})"], source) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"not valid TOML: {err}"], source) from None
    known = {f.name for f in fields(ColumnMapping)}
    extra = {*EXTRA_KEYS, *SIDE_TABLES}
    problems = [
        f"{key} = {value!r}: unknown key (known: {', '.join(sorted(known | extra))})"
        for key, value in data.items()
        if key not in known | extra
    ]
    for key in EXTRA_KEYS:
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} = {data[key]!r}: must be a string")
    if "header" in data and isinstance(data["header"], list):
        data["header"] = tuple(data["header"])
    args = {k: v for k, v in data.items() if k in known}
    missing = [k for k in ("user", "item", "ts") if k not in args]
    problems += [f"{k}: missing (the column holding the {k})" for k in missing]
    mapping = None
    if not missing:
        try:
            mapping = ColumnMapping(**args)
        except ConfigError as err:  # value rules: reported with the problems above
            problems += err.problems
    if isinstance(data.get("items_file"), str):
        if "items" in data:
            problems.append("items_file: give the item file once, as items_file or [items] file")
        else:
            data["items"] = {"file": data["items_file"]}
    sides: dict[str, Any] = {}
    for table in SIDE_TABLES:
        if table in data:
            sides[table], found = read_side_table(table, data[table], path.parent)
            problems += found
    if problems or mapping is None:
        raise ConfigError(problems, source)
    return MappingFile(mapping=mapping, name=data.get("name"), **sides)
