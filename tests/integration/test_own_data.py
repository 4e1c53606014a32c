"""Own data end to end through the command line: the README's shop, prepared, trained, served.

String ids, ISO 8601 times with offsets, an item file with a feature vector,
categorical columns and titles, a topic file and a followed-topics file go
through `prepare` with the README's mapping; DCM and CR train a few steps on a
tiny configuration; `evaluate` scores CR, `retrieve` serves a user and `export
--users --mapping` embeds histories written in the log's own layout.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from multiembed.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"
TOPICS = (("shoes", "Shoes"), ("hats", "Hats"), ("bags", "Bags"), ("socks", "Socks"))
OFFSETS = ("Z", "+02:00", "-05:00", "+05:30")
N_USERS, N_ITEMS, PER_USER = 60, 80, 20
TINY = """
[examples]
seq_len = 8

[model]
k = 2
dim = 8
id_dim = 8
hidden_dim = 8
{model}
[train]
batch_size = 32
epochs = 1
max_steps = 5
threads = 1
"""


def readme_mapping() -> str:
    """The mapping TOML the README shows (between its own-data-mapping markers)."""
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- own-data-mapping:start -->\n```toml\n(.*?)```\n<!-- own-data-mapping:end -->",
        text,
        re.S,
    )
    assert block is not None, "README lost its own-data mapping block"
    return block.group(1)


def write_shop(folder: Path) -> dict[str, list[str]]:
    """The README's shop: files in `folder`; returns each user's followed topic keys."""
    rng = random.Random(0)
    items = []
    with (folder / "items.csv").open("w") as f:
        f.write("sku,title,categories,f0,f1,f2,f3,brand,colour\n")
        for i in range(N_ITEMS):
            t = i % len(TOPICS)
            vec = [round((j == t) + rng.gauss(0, 0.1), 3) for j in range(4)]
            items.append((f"sku-{i:03d}", TOPICS[t][0]))
            f.write(
                f"sku-{i:03d},{TOPICS[t][1]} no. {i},{TOPICS[t][0]},"
                f"{','.join(map(str, vec))},b{i % 5},{('red', 'blue')[i % 2]}\n"
            )
    (folder / "topics.csv").write_text(
        "topic,label\n" + "".join(f"{k},{name}\n" for k, name in TOPICS)
    )
    followed: dict[str, list[str]] = {}
    with (folder / "engagements.csv").open("w") as f, (folder / "follows.csv").open("w") as g:
        f.write("customer,sku,time,event,surface_topic\n")
        g.write("customer,topic,since\n")
        for u in range(N_USERS):
            user = f"u-{u:03d}"
            liked = rng.sample(range(len(TOPICS)), 2)
            followed[user] = [TOPICS[liked[0]][0]]
            g.write(f"{user},{TOPICS[liked[0]][0]},2024-02-01T08:00:00Z\n")
            for n in range(PER_USER):
                sku, topic = items[rng.randrange(N_ITEMS // 4) * 4 + rng.choice(liked)]
                surface = topic if rng.random() < 0.4 else ""
                event = rng.choice(("clk", "clk", "buy"))
                when = f"2024-03-{1 + n // 2:02d}T{10 + n % 8:02d}:{u:02d}:00{OFFSETS[n % 4]}"
                f.write(f"{user},{sku},{when},{event},{surface}\n")
    return followed


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _candidates(output: str) -> list[list[str]]:
    """Rows of `retrieve`'s candidate table: #, item, embedding, rank, score, also, topics."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[0].isdigit():
            rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]], dict]:
    """The shop prepared (CLI) and DCM and CR trained on it (CLI); the commands' output."""
    root = tmp_path_factory.mktemp("shop")
    followed = write_shop(root)
    (root / "mapping.toml").write_text(readme_mapping())
    (root / "tiny.toml").write_text(TINY.format(model=""))
    (root / "tiny_cr.toml").write_text(TINY.format(model='kind = "explicit"\n'))
    source, mapping = str(root / "engagements.csv"), str(root / "mapping.toml")
    said = {
        "prepare": _cli(
            "prepare",
            "--dataset",
            "csv",
            "--source",
            source,
            "--mapping",
            mapping,
            "--out",
            str(root / "data"),
        )
    }
    for name in ("dcm", "cr"):
        config = root / ("tiny.toml" if name == "dcm" else "tiny_cr.toml")
        said[name] = _cli(
            "train",
            "--data",
            str(root / "data"),
            "--out",
            str(root / name),
            "--config",
            str(config),
            "--no-progress",
        )
    return root, followed, said


def test_own_csv_prepares_trains_and_retrieves(shop):
    root, followed, said = shop
    data = root / "data"
    assert "shop: prepared" in said["prepare"]
    report = json.loads((data / "report.json").read_text())
    assert report["rows_quarantined"] == 0
    assert report["counts"] == {
        "users": N_USERS,
        "items": N_ITEMS,
        "engagements": N_USERS * PER_USER,
        "topics": len(TOPICS),
        "user_topics": N_USERS,
    }
    items = pq.read_table(data / "items.parquet")
    assert items.schema.field("vector").type.list_size == 4
    assert items.schema.field("categorical").type.list_size == 2
    titles = pq.read_table(data / "vocab" / "item_titles.parquet").column("title").to_pylist()
    assert titles[:2] == ["Shoes no. 0", "Hats no. 1"]
    logged = pq.read_table(data / "engagements.parquet").column("source_topic")
    assert 0 < logged.null_count < logged.length()  # about 40 % logged

    assert "trained dcm" in said["dcm"]
    assert "trained cr_source" in said["cr"]
    assert all("steps 5" in said[name] for name in ("dcm", "cr"))
    scored = _cli("evaluate", str(root / "cr"), "--data", str(data), "--no-progress")
    assert "filtered_hr@100" in scored

    user = "u-007"
    shown = _cli(
        "retrieve", str(root / "dcm"), "--user", user, "--budget", "12", "--index-factory", "Flat"
    )
    rows = _candidates(shown)
    assert len(rows) == 12
    assert all(re.fullmatch(r"sku-\d{3}", r[1]) for r in rows)  # ids from the input
    name = dict(TOPICS)[followed[user][0]]
    explicit = [r for r in rows if r[2] == f"explicit {name}"]
    assert explicit, shown  # the followed topic is served, by its name
    assert all(r[6] == name for r in explicit)  # and only its items

    # the framework: the CR run serves the followed topic beside the DCM run
    both = _cli(
        "retrieve", str(root / "dcm"), "--user", user, "--budget", "12",
        "--index-factory", "Flat", "--explicit", str(root / "cr"),
    )  # fmt: skip
    rows = _candidates(both)
    assert len(rows) == 12
    explicit = [r for r in rows if r[2] == f"explicit {name}"]
    assert explicit, both
    assert all(r[6] == name for r in explicit)
    assert [r[1] for r in rows] != [r[1] for r in _candidates(shown)]  # CR's own ranking
    # a CR run alone, or as the implicit run: a message, not a traceback
    refused = CliRunner().invoke(
        app, ["retrieve", str(root / "cr"), "--user", user], env={"COLUMNS": "200"}
    )
    assert refused.exit_code == 2, refused.output
    assert "a Conditional Retrieval run (model.kind = 'explicit') is served beside" in (
        " ".join(refused.output.split())
    )
    swapped = CliRunner().invoke(
        app,
        ["retrieve", str(root / "dcm"), "--user", user, "--explicit", str(root / "dcm")],
        env={"COLUMNS": "200"},
    )
    assert swapped.exit_code == 2, swapped.output
    assert "expected a Conditional Retrieval run" in " ".join(swapped.output.split())


def test_export_reads_histories_through_the_mapping(shop, tmp_path):
    root, _, _ = shop
    histories = tmp_path / "new.csv"
    histories.write_text(
        "customer,sku,time,event,surface_topic\n"
        "new-1,sku-000,2024-04-01T10:00:00+02:00,clk,\n"
        "new-1,sku-004,2024-04-01T11:00:00Z,clk,shoes\n"
        "new-2,sku-001,yesterday,clk,\n"  # not a time: listed, not used
        "new-2,sku-999,2024-04-01T12:00:00Z,clk,\n"  # unknown item
    )
    out = _cli(
        "export",
        str(root / "dcm"),
        "--out",
        str(tmp_path / "export"),
        "--users",
        str(histories),
        "--mapping",
        str(root / "mapping.toml"),
        "--data",
        str(root / "data"),
    )
    assert "refused rows: 1" in out
    users = pq.read_table(tmp_path / "export" / "users.parquet")
    assert set(users.column("user_id").to_pylist()) == {"new-1", "new-2"}
    quarantine = pq.read_table(tmp_path / "export" / "quarantine.parquet").to_pylist()
    assert [(q["line"], q["rule"].split(":")[0]) for q in quarantine] == [
        (4, "ts"),
        (5, "unknown item id"),
    ]
