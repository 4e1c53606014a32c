"""Table 6: the DCM ablation over validity-aware FPI, single-assignment routing and K.

The paper's six rows (all DCM, the rest of the config unchanged):

| VA-FPI | SAR | K | settings |
|---|---|---|---|
| no | no | 7 | ``dcm_init = "gaussian"``, ``dcm_routing = "vanilla"`` (MIND's start and routing) |
| no | yes | 7 | ``dcm_init = "gaussian"`` |
| yes | no | 7 | ``dcm_routing = "vanilla"`` |
| yes | yes | 2, 4, 7 | the full model |

Without VA-FPI routing starts from MIND's Gaussian centroids. Every row routes
MIND's three rounds (``dcm_iterations = 3``; the library's DCM routes once from
its farthest-point seeds), so that random centroids get the rounds to move. One more row, not in
the paper, separates the two halves of VA-FPI: farthest-point seeds without Eq. 6's
validity mask (``validity_aware = false``). Run it under ``--preset paper`` for the
paper's setting; under the library defaults every row also carries their cluster
pruning, best-embedding scoring and summary field, and the report says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiembed.config import Config
from multiembed.experiments import _report
from multiembed.experiments._runs import announcer, run_jobs, with_overrides

GAUSSIAN, VANILLA = {"dcm_init": "gaussian"}, {"dcm_routing": "vanilla"}
FULL = {
    "dcm_init": "farthest_point",
    "validity_aware": True,
    "dcm_routing": "single_assignment",
    "dcm_iterations": 3,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "no VA-FPI, no SAR, K=7": {**FULL, **GAUSSIAN, **VANILLA, "k": 7},
    "no VA-FPI, SAR, K=7": {**FULL, **GAUSSIAN, "k": 7},
    "VA-FPI, no SAR, K=7": {**FULL, **VANILLA, "k": 7},
    "VA-FPI, SAR, K=2": {**FULL, "k": 2},
    "VA-FPI, SAR, K=4": {**FULL, "k": 4},
    "VA-FPI, SAR, K=7": {**FULL, "k": 7},
    "FPI without Eq. 6, SAR, K=7 (not in the paper)": {**FULL, "validity_aware": False, "k": 7},
}
PAPER_HR100 = {  # the paper's Table 6, offline HR@100 on Pinterest's data
    "no VA-FPI, no SAR, K=7": 0.175,
    "no VA-FPI, SAR, K=7": 0.176,
    "VA-FPI, no SAR, K=7": 0.175,
    "VA-FPI, SAR, K=2": 0.176,
    "VA-FPI, SAR, K=4": 0.180,
    "VA-FPI, SAR, K=7": 0.185,
}
METRICS = {
    "hr@100": "HR@100",
    "hr@1000": "HR@1000",
    "coverage_round_robin": "coverage",
    "diversity_round_robin": "diversity",
}


def _label(name: str) -> str:
    return "dcm-" + "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Train and evaluate every variant for every seed (on `workers` processes); write
    ``out_dir/report.md``."""
    say = announcer(progress)
    variants = variant_configs(config)
    labels: dict[Config, str] = {}  # identical variants are trained once
    for name, cfg in variants.items():
        labels.setdefault(cfg, _label(name))
    jobs = [(label, cfg) for cfg, label in labels.items()]
    trained = run_jobs(
        jobs, data_dir, out_dir, seeds, progress=progress, announce=say, workers=workers
    )
    summaries = {}
    runs = {}
    for name, cfg in variants.items():
        results = trained[labels[cfg]]
        summaries[name] = _report.summarize([r.report for r in results])
        runs[name] = [r.run_dir for r in results]
    bars = _report.plot_bars(
        summaries, METRICS, out_dir / "ablation.png", title="DCM ablation (mean ± std)"
    )
    curves = _report.plot_curves(runs, out_dir / "training_curves.png", title="training loss")
    paper = {name: {"paper_hr@100": {"mean": v, "std": 0.0}} for name, v in PAPER_HR100.items()}
    rows = {name: {**summary, **paper.get(name, {})} for name, summary in summaries.items()}
    sections = [
        f"Mean ± std over {len(seeds)} seed(s). {setting_note(config)} The paper's column "
        "is its offline HR@100 on Pinterest's data, for the order of the rows, not the scale.",
        _report.seed_table(rows, {**METRICS, "paper_hr@100": "paper HR@100"}, first="variant"),
        f"![ablation]({bars.name})\n\n![training curves]({curves.name})",
    ]
    return _report.write_report(out_dir, "Table 6: DCM ablation", sections)


def variant_configs(config: Config) -> dict[str, Config]:
    """Each row's config: `config` with the row's DCM settings."""
    return {
        name: with_overrides(config, {"model": {"name": "dcm", **changes}})
        for name, changes in VARIANTS.items()
    }


def setting_note(config: Config) -> str:
    """Which of the paper's settings `config` departs from, in one sentence."""
    m = config.model
    departures = [
        f"{key} = {value!r}"
        for key, value, paper in (
            ("dcm_min_share", m.dcm_min_share, 0.0),
            ("scoring", m.scoring, "associated"),
            ("user_summary", m.user_summary, "mean"),
            ("share_items", m.share_items, False),
            ("global_interest", m.global_interest, False),
        )
        if value != paper
    ]
    if not departures:
        return "Every row has the paper's scoring, summary field and fixed K (no pruning)."
    return (
        "Every row also has these settings, which the paper's DCM does not: "
        + ", ".join(departures)
        + " (use --preset paper for the paper's)."
    )
