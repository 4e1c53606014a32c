"""Experiments: the registry, the report writer, and `merge` and `figure5` end to end (tiny)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed import experiments
from multiembed.eval import metrics
from multiembed.eval.errors import MetricInputError
from multiembed.experiments import UnknownExperimentError, _case, _report, table1
from multiembed.experiments.merge import serve, served_variants
from multiembed.retrieve import global_topk_merger, round_robin_merge
from tests.experiments.experiment_helpers import tiny_config


def test_registry_imports_on_demand():
    for name in ("table1", "table6", "merge", "figure5", "figure6"):
        assert callable(experiments.get(name).run)
    assert "table1" in experiments.available()
    with pytest.raises(UnknownExperimentError, match="unknown experiment 'table9'"):
        experiments.get("table9")


def test_registered_but_missing_module_is_a_clear_error():
    if importlib.util.find_spec("multiembed.experiments.table2") is not None:
        assert "table2" in experiments.available()
        return
    assert "table2" not in experiments.available()
    with pytest.raises(UnknownExperimentError, match="registered but its module"):
        experiments.get("table2")


def test_seed_table_mean_and_std(tmp_path: Path):
    reports = [
        {"segments": {"all": {"metrics": {"hr@100": v, "coverage_round_robin": c}}}}
        for v, c in ((0.25, 0.5), (0.75, 0.5))
    ]
    summary = _report.summarize(reports)
    table = _report.seed_table({"dcm": summary}, {"hr@100": "HR@100", "hr@1000": "HR@1000"})
    assert table.splitlines() == [
        "| model | HR@100 | HR@1000 |",
        "|:--|--:|--:|",
        "| dcm | 0.5000 ± 0.3536 | - |",
    ]
    path = _report.write_report(tmp_path, "T", [table])
    assert path.read_text().startswith("# T\n\n| model |")
    png = _report.plot_bars({"dcm": summary}, {"hr@100": "HR@100"}, tmp_path / "b.png", title="t")
    wide = _report.plot_bars(
        {"dcm": summary, "mind": summary},
        {"hr@100": "HR@100", "coverage_round_robin": "coverage"},
        tmp_path / "two.png",
        title="t",
    )
    # one panel per metric, side by side: twice as wide as one panel
    assert matplotlib.image.imread(wide).shape[1] > 1.5 * matplotlib.image.imread(png).shape[1]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_report_mean_std_is_the_evaluations_as_a_dict():
    values = [0.25, 0.5, 1.5]
    assert _report.mean_std(values) == metrics.mean_std(values)._asdict()
    assert _report.mean_std([2.0, 4.0]) == {"mean": 3.0, "std": math.sqrt(2.0), "n": 2}
    assert _report.fmt(_report.mean_std([7.5]), 1) == "7.5"
    with pytest.raises(MetricInputError, match="values must be a non-empty 1-D sequence"):
        _report.mean_std([])
    with pytest.raises(MetricInputError, match="values must be finite numbers"):
        _report.mean_std([1.0, math.nan])


def test_final_loss_of_runs_without_one_reads_as_missing():
    def run(loss: float | None) -> Any:
        return SimpleNamespace(training={"final_loss": loss})

    assert _report.fmt(table1._final_loss([run(None), run(None)]), 3) == "-"
    assert _report.fmt(table1._final_loss([run(2.0), run(None), run(4.0)]), 3) == "3.000 ± 1.414"


def test_serve_budgets_and_merges():
    ids = np.array([[1, 2, 3, 4], [2, 5, 6, 7]])
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.95, 0.5, 0.4, 0.3]], dtype=np.float32)
    imp = np.array([3.0, 1.0])
    kw = {"total": 4, "overfetch": 0.0}
    # budgets 3/1 without overfetch: slot 1 places 2 in round 0, so slot 0's list, cut to
    # [1, 2, 3], runs dry at its third item and is searched deeper for 4
    got = serve(ids, scores, imp, np.array([3, 1]), round_robin_merge, **kw).tolist()
    assert got == [1, 2, 3, 4]
    with_overfetch = {"total": 4, "overfetch": 1.0}  # deep enough at once: the same list
    assert serve(
        ids, scores, imp, np.array([3, 1]), round_robin_merge, **with_overfetch
    ).tolist() == [1, 2, 3, 4]
    # budgets 2/2: both lists run dry ({1, 2} and {2, 5}); searched deeper, 3 and 5 fill
    got = serve(ids, scores, imp, np.array([2, 2]), round_robin_merge, **kw).tolist()
    assert got == [1, 2, 3, 5]
    got = serve(ids, scores, imp, np.array([2, 2]), global_topk_merger, **kw).tolist()
    assert sorted(got) == [1, 2, 3, 4]  # short at depth 2: the best 4 of the deeper lists


def test_merge_end_to_end(tiny_data: Path, tmp_path: Path):
    report = experiments.get("merge").run(
        tiny_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False
    )
    text = report.read_text()
    for label in ("importance, round-robin", "equal, round-robin", "importance, global top-k"):
        assert label in text
    assert (tmp_path / "merge_dcm.png").is_file()
    assert (tmp_path / "merge_mind.png").is_file()
    run_dir = tmp_path / "runs" / "dcm-seed0"
    evaluated = json.loads((run_dir / "eval.json").read_text())["segments"]["all"]["metrics"]
    served = served_variants(run_dir, tiny_data)
    for merge, key in (("round-robin", "round_robin"), ("global top-k", "global_topk")):
        assert served[f"importance, {merge}"]["served_hr"] == pytest.approx(
            evaluated[f"served_hr_{key}"]
        )
        assert served[f"importance, {merge}"]["coverage"] == pytest.approx(
            evaluated[f"coverage_{key}"]
        )


def test_figure5_end_to_end(tiny_data: Path, tmp_path: Path):
    report = experiments.get("figure5").run(
        tiny_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False
    )
    assert "| DCM w/o validity mask |" in report.read_text()
    assert (tmp_path / "figure5.png").read_bytes()[:4] == b"\x89PNG"


def test_figure6_end_to_end(tiny_data: Path, tmp_path: Path):
    report = experiments.get("figure6").run(
        tiny_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False
    )
    assert "| embedding | importance |" in report.read_text()
    page = (tmp_path / "figure6.html").read_text()
    assert page.count("<h2>Embedding") >= 1
    # the explicit half: CR candidates for the user's followed topic, inside that topic
    assert page.count("<h2>Followed topic") >= 1
    cr_rows = [line for line in report.read_text().splitlines() if line.startswith("| CR ")]
    assert cr_rows
    for line in cr_rows:  # the relevance filter: candidates come from the followed topic
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == cells[0].removeprefix("CR ").split("/")[0], line
    assert "topic_0" in page  # topic names from vocab/topic_names.parquet
    png = tmp_path / "figure6.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, channels = matplotlib.image.imread(png).shape
    assert width > height > 200  # the history and K = 3 embeddings side by side
    assert channels in (3, 4)
    assert "![Figure 6: history and candidates per embedding](figure6.png)" in report.read_text()


def test_plot_case_caps_rows_and_colours_by_top_level_topic(tmp_path: Path):
    topics = _case.Topics(["art", "music", "art/sculpture"], np.array([0, 1, 0]))
    long = "a very long topic name that will not fit in a column of the figure"
    columns = [
        _case.CaseColumn("history", ["art/sculpture"] * 20, [0] * 20),
        _case.CaseColumn("embedding 0", ["music", long, "(no topic)"], [1, 0, -1]),
    ]
    png = _case.plot_case(columns, topics, tmp_path / "case.png", title="case", max_rows=5)
    assert matplotlib.image.imread(png).ndim == 3
    colours = _case.topic_colours([0, 1, 0, -1])
    assert len(set(colours.values())) == 3
    assert _case.shorten(long) == long[:25] + "…"
    assert len(_case.shorten(long)) == _case.LABEL_WIDTH


def _metrics(run: Path, lines: list[dict]) -> Path:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


def test_training_curves_show_loss_and_validation_hr(tmp_path: Path):
    implicit = _metrics(
        tmp_path / "dcm",
        [
            {"step": 5, "loss": 4.0},
            {"step": 10, "loss": 3.5},
            {"step": 10, "validation": {"hr@50": 0.1, "hr@100": 0.2}, "validation_s": 0.1},
            {"step": 20, "loss": 3.0},
            {"step": 20, "validation": {"hr@50": 0.2, "hr@100": 0.3}, "validation_s": 0.1},
        ],
    )
    explicit = _metrics(
        tmp_path / "cr",
        [
            {"step": 10, "loss": 2.0},
            {"step": 10, "validation": {"explicit_hr@100": None}},
            {"step": 20, "validation": {"explicit_hr@100": 0.4}},
        ],
    )
    assert _report.read_losses(implicit) == ([5, 10, 20], [4.0, 3.5, 3.0])
    # an epoch's short last batch: its own loss is low, the window's mean is plotted
    short = _metrics(
        tmp_path / "short",
        [
            {"step": 20, "loss": 5.0, "loss_avg": 5.2, "batch": 512},
            {"step": 27, "loss": 0.1, "loss_avg": 4.4, "batch": 3},
        ],
    )
    assert _report.read_losses(short) == ([20, 27], [5.2, 4.4])
    assert _report.read_validation(implicit) == ([10, 20], [0.2, 0.3])
    assert _report.read_validation(explicit) == ([20], [0.4])  # null values are skipped
    assert _report.read_validation(tmp_path / "missing") == ([], [])
    for runs in ({"dcm": [implicit], "cr": [explicit]}, {"cr": [tmp_path / "missing"]}):
        png = _report.plot_curves(runs, tmp_path / "curves.png", title="training loss")
        height, width, _ = matplotlib.image.imread(png).shape
        assert width > 1.8 * height  # two panels side by side


def test_table1_skips_pfs_without_item_vectors(tmp_path: Path):
    from multiembed.experiments.table1 import unsupported

    pq.write_table(pa.table({"item_id": [0, 1], "valid": [True, True]}), tmp_path / "items.parquet")
    assert unsupported(("single", "pfs"), tmp_path) == {
        "pfs": "the items have no pretrained vectors to cluster into topics"
    }
    assert unsupported(("single", "dcm"), tmp_path) == {}


def test_table6_rows_are_the_papers_grid():
    """The paper's six rows: (VA-FPI, SAR, K) = (no, no, 7), (no, yes, 7), (yes, no, 7),
    (yes, yes, 2 / 4 / 7); without VA-FPI routing starts from Gaussian centroids."""
    from multiembed.config import Config, load_config
    from multiembed.experiments import table6

    rows = table6.variant_configs(load_config(preset="paper"))
    grid = [
        (
            c.model.name,
            c.model.dcm_init == "farthest_point" and c.model.validity_aware,
            c.model.dcm_routing == "single_assignment",
            c.model.k,
        )
        for c in rows.values()
    ]
    assert grid[:6] == [
        ("dcm", False, False, 7),
        ("dcm", False, True, 7),
        ("dcm", True, False, 7),
        ("dcm", True, True, 2),
        ("dcm", True, True, 4),
        ("dcm", True, True, 7),
    ]
    assert [c.model.dcm_init for c in list(rows.values())[:2]] == ["gaussian", "gaussian"]
    # every row gets MIND's rounds, under the library's defaults (one round) too
    assert {c.model.dcm_iterations for c in table6.variant_configs(Config()).values()} == {3}
    assert list(table6.PAPER_HR100) == list(rows)[:6]
    assert table6.setting_note(load_config(preset="paper")).startswith("Every row has the paper's")
    assert "dcm_min_share = 0.05" in table6.setting_note(Config())


def test_figure5_draws_each_model_in_the_space_it_clusters_in():
    """MIND's capsules are sums of S e_i, so its items are drawn as S e_i; DCM's as e_i."""
    from types import SimpleNamespace

    import torch

    from multiembed.experiments.figure5 import sequence_and_centroids
    from multiembed.nn.features import ItemFeatures, encode_items
    from tests.model_helpers import implicit_model

    features = ItemFeatures(n_items=30, vector=torch.randn(30, 4, generator=torch.Generator()))
    history = np.array([-1, -1, 3, 7, 7, 12, 20])
    valid = history >= 0
    for name in ("mind", "dcm"):
        model = implicit_model(name, features=features, k=3, dim=8, hidden_dim=16, seed=1).eval()
        items, centroids, importance, rows = sequence_and_centroids(
            SimpleNamespace(model=model), history, valid
        )
        tower = model.user_tower
        with torch.no_grad():
            ids = torch.as_tensor(history[None])
            e = encode_items(tower.summariser, model.features().lookup(ids))[0]
            want = e @ tower.conditions.extractor.bilinear if name == "mind" else e
        np.testing.assert_allclose(items, want.numpy()[rows], rtol=1e-5, atol=1e-6)
        assert rows.tolist() == [2, 3, 4, 5, 6]
        assert centroids.shape[1] == items.shape[1]
        assert len(importance) == len(centroids)


def test_adaptive_k_end_to_end(tiny_data: Path, tmp_path: Path):
    from multiembed.experiments import adaptive_k

    shares = [c.model.dcm_min_share for c in adaptive_k.variant_configs(tiny_config()).values()]
    assert shares == [0.0, 0.05, 0.15]
    report = experiments.get("adaptive_k").run(
        tiny_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False
    )
    rows = [line for line in report.read_text().splitlines() if line.startswith("| fixed")]
    rows += [line for line in report.read_text().splitlines() if line.startswith("| adaptive")]
    per_user = [float(line.strip("|").split("|")[5]) for line in rows]
    # pruning only ever drops clusters: fewer interests per user as the share grows
    assert per_user[0] >= per_user[1] >= per_user[2]
    assert per_user[0] > per_user[2]
    assert (tmp_path / "adaptive_k.png").is_file()
