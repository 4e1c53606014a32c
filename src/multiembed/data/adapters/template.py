"""Every key of a column mapping file, documented once: the commented template and the reference.

`multiembed mapping template` writes `mapping_template()`; the README's "Your
own data" section holds `mapping_reference()`. Both come from `MAPPING_KEYS`,
and a test checks that it names every field the mapping classes read, so the
documentation cannot fall behind the code.

>>> "[user_topics]" in mapping_template()
True
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from multiembed.config import markdown_cell
from multiembed.data.schema import ACTIONS


@dataclass(frozen=True)
class MappingKey:
    """One key of a mapping file.

    Attributes:
        table: the TOML table holding it ("" for the top level).
        key: the key's name.
        example: a TOML value for the template.
        doc: what the key means, its default and rules.
        active: False when the template shows it commented out (an
            alternative to another key, or only for files without a header).
    """

    table: str
    key: str
    example: str
    doc: str
    active: bool = True

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key}" if self.table else self.key


_TIMES = (
    "seconds since 1970 (integer or decimal) or ISO-8601: 2024-01-31, 2024-01-31 12:00, "
    "2024-01-31T12:00:00Z, 2024-01-31T12:00:00.250+05:30, 2024-01-31T12:00:00-0800 "
    "(no offset = UTC; fractions of a second are dropped)"
)

MAPPING_KEYS: tuple[MappingKey, ...] = (
    MappingKey("", "name", '"shop"', "dataset name shown in the report (default: csv or parquet)"),
    MappingKey(
        "",
        "integer_ids",
        "false",
        "false (default): user and item ids are text, kept exactly as written (u-17, UUIDs, "
        "0042); true: they must be integers (rule `not an integer id`; -1 is reserved)",
    ),
    MappingKey("", "user", '"customer"', "required: column of the user id in the engagement log"),
    MappingKey("", "item", '"sku"', "required: column of the item id in the engagement log"),
    MappingKey("", "ts", '"time"', f"required: column of the engagement time: {_TIMES}"),
    MappingKey(
        "",
        "action",
        '"event"',
        "column of the action; left out: every row is `default_action`. Actions are "
        f"{', '.join(ACTIONS)} (the last four are negative)",
    ),
    MappingKey(
        "", "default_action", '"click"', "the action of every row when there is no action column"
    ),
    MappingKey(
        "",
        "source_topic",
        '"surface_topic"',
        "column of the topic logged with the engagement (the condition the surface served "
        "it under, Conditional Retrieval's source interest); empty cell = none",
    ),
    MappingKey(
        "",
        "item_topics",
        '"categories"',
        "column of the item's topics, `topic_separator`-joined text or a Parquet list; in the "
        "log when there is no item file, else the default of items.topics",
    ),
    MappingKey("", "topic_separator", '"|"', "separator of topics in a text cell (default |)"),
    MappingKey("", "delimiter", '","', "text files: field separator, one character (default ,)"),
    MappingKey(
        "",
        "encoding",
        '"utf-8"',
        "text files: encoding (utf-8, latin-1, cp1252, gbk, ...; default utf-8)",
    ),
    MappingKey(
        "",
        "header",
        '["customer", "sku", "time", "event", "surface_topic"]',
        "text engagement log without a header row: its field names in order",
        active=False,
    ),
    MappingKey(
        "",
        "items_file",
        '"items.csv"',
        "short for [items] file, when the item file needs no other key",
        active=False,
    ),
    MappingKey(
        "action_map",
        "clk",
        '"click"',
        "raw action value = canonical action; values not listed pass through as they are",
    ),
    MappingKey(
        "items",
        "file",
        '"items.csv"',
        "the item file (relative to this mapping; same format as the log, with a header "
        "row); items of the log missing here are quarantined with their engagements",
    ),
    MappingKey("items", "id", '"sku"', "column of the item id (default: the top-level item)"),
    MappingKey("items", "topics", '"categories"', "column of the topics (default: item_topics)"),
    MappingKey(
        "items",
        "title",
        '"title"',
        "column of a readable title, kept in vocab/item_titles.parquet",
    ),
    MappingKey(
        "items",
        "vector",
        '["f0", "f1", "f2", "f3"]',
        "numeric columns that form the item's feature vector, in order (a pretrained "
        "embedding); an empty cell marks the item invalid (paper Eq. 6), text that is not "
        "a number quarantines the item",
    ),
    MappingKey(
        "items",
        "categorical",
        '["brand", "colour"]',
        "categorical feature columns (any text or integer values); an empty cell marks "
        "the item invalid",
    ),
    MappingKey(
        "topics",
        "file",
        '"topics.csv"',
        "the topic file: names (and parents) of the topic keys used by item topics, "
        "logged topics and follows",
    ),
    MappingKey("topics", "id", '"topic"', "required: column of the topic key"),
    MappingKey("topics", "name", '"label"', "required: column of the topic's name"),
    MappingKey("topics", "parent", '"parent"', "column of the parent topic's key (sub-topics)"),
    MappingKey(
        "user_topics",
        "file",
        '"follows.csv"',
        "the followed-topics file: explicit interests, one row per follow",
    ),
    MappingKey(
        "user_topics", "user", '"customer"', "column of the user id (default: the top-level user)"
    ),
    MappingKey("user_topics", "topic", '"topic"', "required: column of the followed topic's key"),
    MappingKey(
        "user_topics",
        "followed_at",
        '"since"',
        "column of the follow time, seconds or ISO-8601 as for ts (left out: followed "
        "since before the log began)",
    ),
    MappingKey(
        "user_topics",
        "unfollowed_at",
        '"until"',
        "column of the unfollow time; an empty cell = still followed",
    ),
)

_HEAD = """\
# multiembed column mapping: how your files map onto the canonical tables.
# Use it with
#   multiembed prepare --dataset csv --source engagements.csv --mapping mapping.toml --out data/mine
# (--dataset parquet for Parquet files; every file of a mapping has the log's format).
# Keys without "required" may be left out; file paths are relative to this file.
# A bad row goes to quarantine.parquet with its file, row, column and rule.
"""


def _comment(text: str, width: int = 88) -> list[str]:
    """`text` as `# ` lines of at most `width` characters (a longer word gets a line of its own)."""
    lines = textwrap.wrap(text, width - 2, break_long_words=False, break_on_hyphens=False)
    return [f"# {line}" for line in lines]


def mapping_template() -> str:
    """A commented mapping file with every key of `MAPPING_KEYS` (a valid mapping as it stands)."""
    out = [_HEAD]
    table = ""
    for key in MAPPING_KEYS:
        if key.table != table:
            table = key.table
            out.append(f"\n[{table}]")
        out += _comment(key.doc)
        out.append(f"{'' if key.active else '# '}{key.key} = {key.example}")
    return "\n".join(out) + "\n"


def mapping_reference() -> str:
    """The Markdown table of every key, for the README."""
    rows = ["| key | example | meaning |", "| --- | --- | --- |"]
    for key in MAPPING_KEYS:
        rows.append(f"| `{key.name}` | `{markdown_cell(key.example)}` | {markdown_cell(key.doc)} |")
    return "\n".join(rows) + "\n"
