"""The report of a prepare: counts per table and rule, the time span, and on failure the fix.

`success_report` and `failure_report` build the dictionary that `write_report` stores
as ``report.json`` beside the prepared tables; `day` formats the timestamps it names.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.schema import ACTIONS, QUARANTINE_FILE, REPORT_FILE
from multiembed.data.vocab import Vocab

DAY = 86_400

#: What most likely fixes a table whose every row broke a rule (matched in the rule's text).
_HINTS = (
    (
        "not an integer id",
        "the ids are not integers: set `integer_ids = false` in the column mapping to read "
        "them as text",
    ),
    (
        "not a number or date",
        "timestamps must be seconds since 1970-01-01 or ISO-8601 dates and times "
        "(2024-01-31, 2024-01-31T12:00:00 or 2024-01-31 12:00:00)",
    ),
    ("negative timestamp", "timestamps must be seconds since 1970-01-01 (not negative)"),
    (
        "outside the dataset's documented window",
        "check that the timestamp column holds seconds within the dataset's documented window",
    ),
    (
        "unknown action kind",
        f"actions must be one of {', '.join(ACTIONS)}: map the source's values onto them "
        "with `action_map` in the column mapping",
    ),
    (
        "not in the item table",
        "the engagements' item ids do not occur in the item table: check the items file "
        "and the `item` column of the mapping",
    ),
    ("missing value", "the column is empty: check that the mapping names the right column"),
)


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")


def failure_report(raw: RawDataset, q: Quarantine, table: str) -> dict[str, Any]:
    """The report of a prepare that found no valid row in `table`, with the likely fix."""
    tables = _table_counts(q)
    by_rule = q.by_rule(table)
    rows_in = tables[table]["rows_in"]
    row = "item" if table == "items" else "engagement"
    if not by_rule:
        error = f"{raw.name}: no valid {row} rows: the source holds none"
    else:
        rule, count = next(iter(by_rule.items()))
        # A rule that already names its fix (in brackets) needs no second hint.
        hint = None if " (" in rule else next((fix for key, fix in _HINTS if key in rule), None)
        error = (
            f"{raw.name}: no valid {row} rows: all {rows_in:,} were quarantined, "
            f"{count:,} for `{rule}`"
        ) + (f"; {hint}" if hint else "")
    return {
        "dataset": raw.name,
        "error": error,
        "rows_in": sum(t["rows_in"] for t in tables.values()),
        "rows_kept": 0,
        "rows_quarantined": sum(t["rows_quarantined"] for t in tables.values()),
        "tables": tables,
        "notes": list(raw.notes),
        "quarantine_file": QUARANTINE_FILE,
    }


def day(ts: int) -> str:
    """UTC date, with the time of day when it is not midnight; seconds past year 9999.

    Example:
        >>> day(0), day(90), day(10**12)
        ('1970-01-01', '1970-01-01 00:01', '1000000000000 s since 1970')
    """
    try:
        when = dt.datetime.fromtimestamp(ts, dt.UTC)
    except (OverflowError, OSError, ValueError):  # beyond the calendar's years 1-9999
        return f"{ts} s since 1970"
    return when.strftime("%Y-%m-%d %H:%M" if ts % DAY else "%Y-%m-%d")


def success_report(
    raw: RawDataset,
    q: Quarantine,
    spans: tuple[tuple[int, int], tuple[int, int]],
    vocabs: tuple[Vocab, Vocab, Vocab],
    engagements: int,
) -> dict[str, Any]:
    span, kept_span = spans
    users, items, topics = vocabs
    tables = _table_counts(q)
    return {
        "dataset": raw.name,
        "rows_in": sum(t["rows_in"] for t in tables.values()),
        "rows_kept": sum(t["rows_kept"] for t in tables.values()),
        "rows_quarantined": sum(t["rows_quarantined"] for t in tables.values()),
        "tables": tables,
        "counts": {
            "users": len(users),
            "items": len(items),
            "engagements": engagements,
            "topics": len(topics),
        },
        "time_span": {"from": day(kept_span[0]), "to": day(kept_span[1])},
        "plausible_window": {"from": day(span[0]), "to": day(span[1])},
        "notes": list(raw.notes),
        "quarantine_file": QUARANTINE_FILE,
    }


def _table_counts(q: Quarantine) -> dict[str, dict[str, Any]]:
    tables = {}
    # A topic file (names of topic keys) is counted when the source has one.
    optional = ("topics",) if q.rows_in("topics") else ()
    for name in ("items", "engagements", "user_topics", *optional):
        rows_in = q.rows_in(name)
        rejected = q.rows_quarantined(name)
        tables[name] = {
            "rows_in": rows_in,
            "rows_kept": rows_in - rejected,
            "rows_quarantined": rejected,
            "quarantined_by_rule": q.by_rule(name),
        }
    return tables
