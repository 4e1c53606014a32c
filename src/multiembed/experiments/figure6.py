"""Figure 6: a case study of one user's history and the candidates of each embedding.

A DCM run (first seed) embeds the user whose history spans the most topics;
the page lists the history (raw item ids) with its topics, then, for every used embedding
(with its importance), its top candidates from the corpus with their topics,
and marks the candidates whose top-level topic appears in the history. Written
as ``figure6.html`` (a self-contained page), drawn as ``figure6.png`` (a column for
the history, recent first, and one per embedding by importance, each row an item
coloured by its top-level topic: `_case.plot_case`) and summarised in ``report.md``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from multiembed.config import Config
from multiembed.data.schema import VOCAB_DIR
from multiembed.data.vocab import Vocab
from multiembed.eval._embed import embed_items, embed_users, inference
from multiembed.eval._records import load_eval_data
from multiembed.eval.metrics import top_n
from multiembed.experiments import _case, _report
from multiembed.experiments._runs import announcer, implicit_model, run_seeds, with_overrides
from multiembed.train import load_run

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
    """Train DCM (first seed); write ``figure6.html``, ``figure6.png`` and ``report.md``."""
    say = announcer(progress)
    cfg = with_overrides(config, {"model": {"name": "dcm"}})
    (result,) = run_seeds(cfg, data_dir, out_dir, "dcm", seeds[:1], progress=progress, announce=say)
    loaded = load_run(result.run_dir, data_dir=data_dir)
    c = loaded.config
    data = load_eval_data(data_dir, split=c.split, examples=c.examples, config=c.eval)
    topics = _case.load_topics(data_dir, int(data.item_topics.max()) + 1)
    main = _case.item_main_topic(data.item_topics, topics)
    r = _case.pick_record(data, main)
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
    columns = [
        _case.CaseColumn(
            f"history\n{history.size} items, recent first",
            [_case.item_label(data.item_topics[i], topics) for i in recent],
            [int(main[i]) for i in recent],
        )
    ]
    order = np.argsort(-user.importance[0, used], kind="stable")
    for j in order:
        slot, imp = int(used[j]), float(user.importance[0, used[j]])
        cands = corpus[top.positions[j][top.positions[j] >= 0]]
        in_history = [int(main[i]) in seen for i in cands]
        parts.append(f"<h2>Embedding {slot} (importance {imp:.2f})</h2><table>")
        parts.append("<tr><th>#</th><th>item</th><th>topics</th></tr>")
        for n, (i, known) in enumerate(zip(cands, in_history, strict=True)):
            cls = "" if known else " class='new'"
            parts.append(
                f"<tr{cls}><td>{n + 1}</td><td>{html.escape(str(raw[i]))}</td>"
                f"<td>{html.escape(label(int(i)))}</td></tr>"
            )
        parts.append("</table>")
        columns.append(
            _case.CaseColumn(
                f"embedding {slot}\nimportance {imp:.2f}",
                [_case.item_label(data.item_topics[i], topics) for i in cands],
                [int(main[i]) for i in cands],
            )
        )
        tops = sorted({topics.name(int(main[i])) for i in cands if main[i] >= 0})
        md_rows.append([str(slot), f"{imp:.2f}", ", ".join(tops), f"{np.mean(in_history):.0%}"])
    page = out_dir / "figure6.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(parts) + "\n", encoding="utf-8")
    figure = _case.plot_case(
        columns,
        topics,
        out_dir / "figure6.png",
        title=f"User {int(rec.user[r])}: history and top {SHOWN} candidates per DCM embedding",
    )
    hist_topics = sorted({topics.name(int(t)) for t in main[history] if t >= 0})
    sections = [
        f"User {int(rec.user[r])}, DCM seed {seeds[0]}: history of {history.size} items over "
        f"top-level topics {', '.join(hist_topics)}. Each embedding's top {SHOWN} corpus "
        "candidates and their top-level topics.",
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
