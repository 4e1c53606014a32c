"""Table 6: the DCM ablation over validity-aware FPI, single-assignment routing and K.

Variants (all DCM, the rest of the config unchanged): the full model; without
validity-aware farthest-point initialisation (``model.validity_aware = false``);
with vanilla capsule routing instead of single-assignment routing
(``model.dcm_routing = "vanilla"``); and the full model with 2, 4 and 7 clusters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiembed.config import Config
from multiembed.experiments import _report
from multiembed.experiments._runs import announcer, run_jobs, with_overrides

VARIANTS: dict[str, dict[str, Any]] = {
    "DCM": {},
    "w/o VA-FPI": {"validity_aware": False},
    "w/o SAR (vanilla routing)": {"dcm_routing": "vanilla"},
    "DCM, K=2": {"k": 2},
    "DCM, K=4": {"k": 4},
    "DCM, K=7": {"k": 7},
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
    variants = {
        name: with_overrides(config, {"model": {"name": "dcm", **changes}})
        for name, changes in VARIANTS.items()
    }
    labels: dict[Config, str] = {}  # "DCM, K=4" is "DCM" when K = 4: trained once
    for name, cfg in variants.items():
        labels.setdefault(cfg, _label(name))
    trained = run_jobs(
        [(label, cfg) for cfg, label in labels.items()],
        data_dir,
        out_dir,
        seeds,
        progress=progress,
        announce=say,
        workers=workers,
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
    sections = [
        f"Mean ± std over {len(seeds)} seed(s). K = {config.model.k} unless stated.",
        _report.seed_table(summaries, METRICS, first="variant"),
        f"![ablation]({bars.name})\n\n![training curves]({curves.name})",
    ]
    return _report.write_report(out_dir, "Table 6: DCM ablation", sections)
