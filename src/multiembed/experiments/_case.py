"""A case-study user of a trained run: the history the user tower reads, topic names, a figure.

`plot_case` draws the case study as a PNG: one column for the history and one
per embedding, each row an item labelled with its topics and coloured by its
top-level topic, so that the reader sees which interest each embedding took up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from multiembed.data.schema import VOCAB_DIR
from multiembed.eval import EvalData
from multiembed.experiments._report import plt  # pyplot on the Agg backend

TOPIC_NAMES = "topic_names.parquet"


class Topics(NamedTuple):
    """Topic names and the top-level topic of every topic id (itself for a top-level one)."""

    names: list[str]
    top: np.ndarray

    def name(self, topic: int) -> str:
        return self.names[topic] if 0 <= topic < len(self.names) else f"topic {topic}"


def load_topics(data_dir: Path, n_topics: int) -> Topics:
    """``vocab/topic_names.parquet`` of a data directory (plain numbers when it is absent)."""
    path = data_dir / VOCAB_DIR / TOPIC_NAMES
    table = pq.read_table(path).to_pylist() if path.is_file() else []
    size = max([n_topics, *(int(r["id"]) + 1 for r in table)])
    names = [f"topic {t}" for t in range(size)]
    top = np.arange(max(size, 1), dtype=np.int64)
    for r in table:
        names[int(r["id"])] = str(r["name"])
        if r.get("parent") is not None:
            top[int(r["id"])] = int(r["parent"])
    return Topics(names, top)


def item_label(topic_ids: np.ndarray, topics: Topics) -> str:
    """An item's most specific topics: its topic names, less those that are a listed parent.

    >>> t = Topics(["art", "music", "art/sculpture"], np.array([0, 1, 0]))
    >>> item_label(np.array([0, 2, 1, -1]), t), item_label(np.array([-1]), t)
    ('art/sculpture, music', '(no topic)')
    """
    ids = [int(i) for i in topic_ids if i >= 0]
    parents = {int(topics.top[i]) for i in ids if i < topics.top.size and topics.top[i] != i}
    return ", ".join(topics.name(i) for i in ids if i not in parents) or "(no topic)"


def item_main_topic(item_topics: np.ndarray, topics: Topics) -> np.ndarray:
    """``[N]`` the top-level topic of each item's first topic (``-1``: none)."""
    first = item_topics[:, 0]
    return np.where(first >= 0, topics.top[np.clip(first, 0, topics.top.size - 1)], -1)


def pick_record(data: EvalData, main_topic: np.ndarray) -> int:
    """The first-record of the user whose valid history spans the most top-level topics.

    Ties go to the longer history, then the smaller user id: deterministic.
    """
    rec = data.records
    keys: dict[int, tuple[int, int]] = {}
    for r in rec.first:
        h = rec.history[r][rec.history_valid[r]]
        t = main_topic[h]
        keys[int(r)] = (np.unique(t[t >= 0]).size, h.size)
    return max(keys, key=keys.__getitem__)  # ties: the first record


def pick_followed_record(data: EvalData, main_topic: np.ndarray, topics: Topics) -> int:
    """The first record of the user whose followed topics reach furthest beyond the history.

    Key: top-level topics followed but absent from the valid history, then
    `pick_record`'s key (top-level topics in the history, history length); the
    smaller user id on ties. Without any followed topic, `pick_record`.

    >>> from types import SimpleNamespace
    >>> rec = SimpleNamespace(
    ...     first=np.array([0, 1]),
    ...     history=np.array([[0, 1], [0, 2]]),
    ...     history_valid=np.ones((2, 2), dtype=bool),
    ...     followed=np.array([[0, -1], [3, -1]]),
    ... )
    >>> t = Topics(["a", "b", "c", "d"], np.arange(4))
    >>> pick_followed_record(SimpleNamespace(records=rec), np.array([0, 1, 2]), t)
    1
    """
    rec = data.records
    keys: dict[int, tuple[int, int, int]] = {}
    for r in rec.first:
        h = rec.history[r][rec.history_valid[r]]
        seen = {int(t) for t in main_topic[h] if t >= 0}
        follows = {int(topics.top[t]) for t in rec.followed[r] if 0 <= t < topics.top.size}
        if follows:
            keys[int(r)] = (len(follows - seen), len(seen), h.size)
    return max(keys, key=keys.__getitem__) if keys else pick_record(data, main_topic)


MAX_ROWS = 12
"""Rows drawn per column of the figure; the rest are counted in a last row."""
LABEL_WIDTH = 26
"""Characters of a row's label (longer labels end in an ellipsis)."""
_NO_TOPIC = "#d9d9d9"


class CaseColumn(NamedTuple):
    """One column of the case-study figure, its rows in display order.

    Attributes:
        title: the header (e.g. ``"embedding 2\\nimportance 0.41"``).
        labels: what each row says: its item's topic names.
        groups: the top-level topic that colours each row (``-1``: no topic, grey).
    """

    title: str
    labels: list[str]
    groups: list[int]


def shorten(text: str, width: int = LABEL_WIDTH) -> str:
    """`text` cut to `width` characters, the last one an ellipsis when cut.

    >>> shorten("topic_00/sub_1, topic_03", 12), shorten("short", 12)
    ('topic_00/su…', 'short')
    """
    return text if len(text) <= width else text[: width - 1] + "…"


def topic_colours(groups: Sequence[int]) -> dict[int, str]:
    """A colour per top-level topic (``-1`` grey), in the order the topics first appear.

    >>> colours = topic_colours([3, 1, 3, -1])
    >>> list(colours), colours[-1]
    ([3, 1, -1], '#d9d9d9')
    """
    # distinct hues first (tab10), then two more qualitative sets for many topics
    maps = [plt.get_cmap(name) for name in ("tab10", "Dark2", "Set1")]
    palette = [tuple(rgba) for cmap in maps for rgba in cmap(np.arange(cmap.N))]
    out: dict[int, str] = {}
    for g in groups:
        if g not in out:
            n = sum(1 for k in out if k >= 0)
            out[g] = _NO_TOPIC if g < 0 else _pale(palette[n % len(palette)])
    return out


def _pale(rgb: Sequence[float]) -> str:
    """The colour mixed 40% with white, as hex, so that black text stays readable on it."""
    return "#" + "".join(f"{round(255 * (0.6 * c + 0.4)):02x}" for c in rgb[:3])


def plot_case(
    columns: Sequence[CaseColumn],
    topics: Topics,
    path: Path,
    *,
    title: str,
    max_rows: int = MAX_ROWS,
) -> Path:
    """Draw the case study as a PNG: columns of coloured, labelled rows and a topic legend.

    Each column shows at most `max_rows` rows (a last grey row counts the others).
    Rows are coloured by top-level topic, the same colour in every column; the
    legend names the colours.
    """
    groups = [g for c in columns for g in c.groups[:max_rows]]
    colours = topic_colours(groups)
    rows = min(max((len(c.labels) for c in columns), default=0), max_rows + 1)
    n_cols = max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(2.3 * n_cols + 0.4, 0.32 * rows + 2.4))
    ax.set_xlim(0, n_cols)
    ax.set_ylim(rows + 0.6, -0.6)  # row 1 at the top, the headers above it
    ax.axis("off")
    for x, column in enumerate(columns):
        ax.text(x + 0.5, 0.45, column.title, ha="center", va="bottom", fontsize=8.5, weight="bold")
        for y, (label, group) in enumerate(
            zip(column.labels[:max_rows], column.groups[:max_rows], strict=True)
        ):
            _row(ax, x, y + 1, f"{y + 1}. {shorten(label)}", colours[group])
        hidden = len(column.labels) - max_rows
        if hidden > 0:
            _row(ax, x, max_rows + 1, f"… {hidden} more", "white", colour="0.4")
    named = [g for g in colours if g >= 0]
    handles = [Patch(color=colours[g], label=shorten(topics.name(g), 18)) for g in named]
    if -1 in colours:
        handles.append(Patch(color=_NO_TOPIC, label="(no topic)"))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(len(handles), max(3, 2 * n_cols)),
            fontsize=8,
            frameon=False,
            title="top-level topic",
            title_fontsize=8,
        )
    ax.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": the legend below the axes
    plt.close(fig)
    return path


def _row(ax: Axes, x: int, y: int, text: str, fill: str, *, colour: str = "black") -> None:
    ax.add_patch(Rectangle((x + 0.04, y - 0.42), 0.92, 0.84, facecolor=fill, edgecolor="white"))
    ax.text(x + 0.08, y, text, ha="left", va="center", fontsize=7.5, color=colour)
