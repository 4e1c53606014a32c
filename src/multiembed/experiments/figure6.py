"""Figure 6: a case study of one user's history and the candidates of each embedding.

Both halves of the framework, first seed: a DCM run (implicit interests) and a
Conditional Retrieval run on the logged source topics (explicit interests). The
user is the one whose followed topics reach furthest beyond the history
(`_case.pick_followed_record`): the paper's point is that CR recovers interests
that the engagement sequence, and so DCM, misses. The page lists the history (raw
item ids) with its topics, then for every used DCM embedding (by importance) and
every followed topic (CR, searched inside the topic: the relevance filter) the top
candidates with their topics, and marks candidates whose top-level topic is absent
from the history. Written as ``figure6.html`` (a self-contained page), drawn as
``figure6.png`` (a column for the history, recent first, then one per embedding,
each row an item coloured by its top-level topic: `_case.plot_case`) and
summarised in ``report.md``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from multiembed.config import Config
from multiembed.data.schema import VOCAB_DIR
from multiembed.data.vocab import Vocab
from multiembed.eval import EvalData, load_eval_data
from multiembed.eval.metrics import top_n
from multiembed.experiments import _case, _report
from multiembed.experiments._runs import announcer, implicit_model, run_jobs, with_overrides
from multiembed.runs import (
    ConditionalModel,
    LoadedRun,
    embed_conditioned,
    embed_items,
    embed_users,
    inference,
    load_run,
)

SHOWN = 10
"""Candidates shown per embedding."""


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Train DCM and CR (first seed); write ``figure6.html``, ``figure6.png`` and ``report.md``."""
    say = announcer(progress)
    configs = [
        ("dcm", with_overrides(config, {"model": {"name": "dcm", "kind": "implicit"}})),
        ("cr", with_overrides(config, {"model": {"kind": "explicit", "condition": "source"}})),
    ]
    trained = run_jobs(
        configs, data_dir, out_dir, seeds[:1], progress=progress, announce=say, workers=workers
    )
    result = trained["dcm"][0]
    loaded = load_run(result.run_dir, data_dir=data_dir)
    cr = load_run(trained["cr"][0].run_dir, data_dir=data_dir)
    c = loaded.config
    data = load_eval_data(data_dir, split=c.split, examples=c.examples, config=c.eval)
    topics = _case.load_topics(data_dir, int(data.item_topics.max()) + 1)
    main = _case.item_main_topic(data.item_topics, topics)
    r = _case.pick_followed_record(data, main, topics)
    rec = data.records
    corpus = np.sort(data.corpus)
    with inference(loaded.model):
        items = embed_items(loaded.model, corpus, batch_size=1024)
        user = embed_users(
            implicit_model(loaded.model, "figure6"),
            rec.history[r : r + 1],
            rec.history_valid[r : r + 1],
            None,
            batch_size=1,
        )
    used = np.flatnonzero(user.slot_mask[0])
    top = top_n(user.embeddings[0, used], items, SHOWN)  # [K', SHOWN]
    history = rec.history[r][rec.history[r] >= 0]
    seen = set(main[history].tolist())
    followed = [int(t) for t in rec.followed[r] if t >= 0][: c.eval.k_ex]
    explicit = _explicit_candidates(cr, data, corpus, r, followed)

    raw = Vocab.load(result.run_dir / VOCAB_DIR / "items.parquet").raw.to_pylist()

    def label(item: int) -> str:
        names = [topics.name(int(t)) for t in data.item_topics[item] if t >= 0]
        return ", ".join(names) or "(no topic)"

    parts = [
        "<!doctype html><meta charset='utf-8'><title>Figure 6: case study</title>",
        "<style>body{font-family:sans-serif;max-width:70em}td,th{padding:2px 8px;"
        "text-align:left}.new{color:#b00}</style>",
        f"<h1>User {int(rec.user[r])}: history and candidates per embedding</h1>",
        f"<h2>History ({history.size} items, oldest first)</h2><ol>",
        *(
            f"<li>item {html.escape(str(raw[i]))}: {html.escape(label(int(i)))}</li>"
            for i in history
        ),
        "</ol>",
    ]
    md_rows = []
    recent = history[::-1]

    def case_column(title: str, items: np.ndarray) -> _case.CaseColumn:
        labels = [_case.item_label(data.item_topics[i], topics) for i in items]
        return _case.CaseColumn(title, labels, [int(main[i]) for i in items])

    columns = [case_column(f"history\n{history.size} items, recent first", recent)]

    def show(heading: str, column: str, row: str, importance: str, cands: np.ndarray) -> None:
        """One list: an HTML table, a figure column and a Markdown row."""
        in_history = [int(main[i]) in seen for i in cands]
        parts.append(f"<h2>{html.escape(heading)}</h2><table>")
        parts.append("<tr><th>#</th><th>item</th><th>topics</th></tr>")
        for n, (i, known) in enumerate(zip(cands, in_history, strict=True)):
            cls = "" if known else " class='new'"
            parts.append(
                f"<tr{cls}><td>{n + 1}</td><td>{html.escape(str(raw[i]))}</td>"
                f"<td>{html.escape(label(int(i)))}</td></tr>"
            )
        parts.append("</table>")
        columns.append(case_column(column, cands))
        tops = sorted({topics.name(int(main[i])) for i in cands if main[i] >= 0})
        share = f"{np.mean(in_history):.0%}" if in_history else "-"
        md_rows.append([row, importance, ", ".join(tops), share])

    for j in np.argsort(-user.importance[0, used], kind="stable"):
        slot, imp = int(used[j]), float(user.importance[0, used[j]])
        show(
            f"Embedding {slot} (importance {imp:.2f})",
            f"DCM embedding {slot}\nimportance {imp:.2f}",
            f"DCM {slot}",
            f"{imp:.2f}",
            corpus[top.positions[j][top.positions[j] >= 0]],
        )
    for topic, cands in zip(followed, explicit, strict=True):
        name = topics.name(topic)
        column = f"CR: {name}\n(followed topic)"
        show(f"Followed topic {name} (CR)", column, f"CR {name}", "-", cands)
    page = out_dir / "figure6.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(parts) + "\n", encoding="utf-8")
    figure = _case.plot_case(
        columns,
        topics,
        out_dir / "figure6.png",
        title=f"User {int(rec.user[r])}: history, then the top {SHOWN} candidates of each DCM "
        "embedding and of CR for each followed topic",
    )
    hist_topics = sorted({topics.name(int(t)) for t in main[history] if t >= 0})
    follows = ", ".join(topics.name(t) for t in followed) or "none"
    sections = [
        f"User {int(rec.user[r])}, seed {seeds[0]}: history of {history.size} items over "
        f"top-level topics {', '.join(hist_topics)}; followed topics: {follows}. Each DCM "
        f"embedding's and each followed topic's (CR, inside the topic) top {SHOWN} corpus "
        'candidates and their top-level topics; "in history" is the share of candidates '
        "whose top-level topic the history has.",
        _report.markdown_table(
            ["embedding", "importance", "candidate topics", "in history"], md_rows
        ),
        "In the figure each row is an item labelled with its topics and coloured by its "
        "top-level topic (the same colour in every column), so an embedding's column shows "
        f"which of the history's interests it took up; at most {_case.MAX_ROWS} rows per "
        "column.",
        f"![Figure 6: history and candidates per embedding]({figure.name})",
        f"[The case study page]({page.name}) lists every item with its raw id; its red "
        "rows are candidates whose top-level topic is absent from the history.",
    ]
    return _report.write_report(out_dir, "Figure 6: case study", sections)


def _explicit_candidates(
    cr: LoadedRun, data: EvalData, corpus: np.ndarray, record: int, followed: list[int]
) -> list[np.ndarray]:
    """Top `SHOWN` corpus items of the CR embedding of each followed topic, searched among
    the items of that topic (the relevance filter of Section 3.3.3)."""
    model = cr.model
    if not followed:
        return []
    if not isinstance(model, ConditionalModel):
        raise TypeError(f"figure6: expected a Conditional Retrieval run, got {type(model)}")
    rec, item_topics = data.records, data.item_topics
    n = len(followed)
    with inference(model):
        items = embed_items(model, corpus, batch_size=1024)
        users = embed_conditioned(
            model,
            np.repeat(rec.history[record : record + 1], n, axis=0),
            np.repeat(rec.history_valid[record : record + 1], n, axis=0),
            np.asarray(followed, dtype=np.int64),
            batch_size=n,
        )
    out = []
    for topic, query in zip(followed, users, strict=True):
        inside = np.flatnonzero((item_topics[corpus] == topic).any(axis=1))
        found = top_n(query[None], items[inside], SHOWN).positions[0]
        out.append(corpus[inside[found[found >= 0]]])
    return out
