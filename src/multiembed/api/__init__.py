"""The Python API: the command line's five steps as functions taking paths (and tables).

Each function is a thin wrapper over the library call the matching command runs,
and returns a small typed result:

- `prepare(source, out, ...)`: a dataset, a log file or an in-memory table of
  engagements (Arrow table, pandas or polars DataFrame) -> a prepared data
  directory (`Prepared`);
- `train(data, out, ...)`: -> a run directory (`multiembed.train.TrainResult`);
- `evaluate(run, ...)`: -> ``RUN/eval.json`` and its headline metrics (`Evaluation`);
- `export(run, out, ...)`: -> item (and user) embeddings as Parquet (`Exported`);
- `retrieve(run, users, ...)`: -> candidates with provenance per user
  (`multiembed.serve.Served`).

Settings come as the commands take them: ``preset`` (a shipped preset's name)
and ``config`` (a TOML file, a preset's name, a nested dict of sections laid
over the preset, or a `multiembed.config.Config`). Importing this module loads
neither torch nor the data stack; each function imports what it runs.

Examples run in a scratch directory ``tmp`` with a small configuration ``tiny``
(a world of 60 users and 300 items, D = 16), so that each takes seconds; in the
function examples ``tmp / "data"`` is that world prepared and ``tmp / "run"`` a
3-step run on it.

Examples:
    >>> import multiembed.api as me
    >>> tiny["model"]
    {'k': 2, 'dim': 16, 'id_dim': 8, 'hidden_dim': 16}
    >>> data = me.prepare(None, tmp / "world", config=tiny)     # the synthetic world
    >>> data.counts["users"], data.quarantined["engagements"]
    (60, 0)
    >>> run = me.train(data.data_dir, tmp / "dcm", config=tiny, max_steps=3, progress=False)
    >>> run.steps
    3
    >>> evaluation = me.evaluate(run.run_dir, progress=False)   # writes tmp/dcm/eval.json
    >>> 0.0 <= evaluation.metrics["hr@100"] <= 1.0
    True
    >>> me.export(run.run_dir, tmp / "export").items_file.name
    'items.parquet'
    >>> [served] = me.retrieve(run.run_dir, [1], budget=5, index_factory="Flat")
    >>> len(served.item_ids)
    5
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiembed.api._tables import PathLike, implied_dataset, mapping_toml, write_table
from multiembed.errors import ConfigError, DataError

if TYPE_CHECKING:
    from multiembed.config import Config
    from multiembed.serve import RetrieveRequest, Served
    from multiembed.train import TrainResult


@dataclass(frozen=True)
class Prepared:
    """A prepared data directory and what `prepare` counted.

    Attributes:
        data_dir: the directory of canonical tables (the ``--data`` of later steps).
        report_file: ``report.json``: rows in, kept and quarantined per table.
        quarantine_file: ``quarantine.parquet``: every rejected row with its
            file, row, column, rule and value.
        counts: users, items, engagements, topics and user_topics kept.
        quarantined: rows quarantined per table.
        report: the whole report.
    """

    data_dir: Path
    report_file: Path
    quarantine_file: Path
    counts: dict[str, int]
    quarantined: dict[str, int]
    report: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """A written ``RUN/eval.json`` and its metrics over all evaluated records.

    Attributes:
        run_dir: the evaluated run.
        report_file: ``RUN/eval.json``.
        metrics: metric name -> value for the ``all`` segment (``hr@100``, ...);
            None where a metric has no records.
        report: the whole report (segments, corpus, protocol, seconds).
    """

    run_dir: Path
    report_file: Path
    metrics: dict[str, float | None]
    report: dict[str, Any]


@dataclass(frozen=True)
class Exported:
    """The Parquet files `export` wrote, for a vector database.

    Attributes:
        out_dir: the export directory.
        items_file: ``items.parquet``: item_id (raw) and embedding ``[D]``.
        users_file: ``users.parquet`` (user_id, slot, embedding, importance), or
            None without user histories.
        model_version: the run's model version.
        dim: D, the embedding dimension.
        summary: the whole ``export.json``.
    """

    out_dir: Path
    items_file: Path
    users_file: Path | None
    model_version: str
    dim: int
    summary: dict[str, Any]


def prepare(
    source: PathLike | Any | None,
    out: PathLike,
    *,
    dataset: str | None = None,
    mapping: PathLike | Mapping[str, Any] | None = None,
    tables: Mapping[str, Any] | None = None,
    config: Config | Mapping[str, Any] | PathLike | None = None,
    preset: str | None = None,
) -> Prepared:
    """Validate a source into canonical Parquet tables in `out`; bad rows are quarantined.

    Args:
        source: None for the synthetic world; a path (a dataset's folder, a CSV
            or Parquet log); or a table of engagements: a `pyarrow.Table`, a
            pandas or polars DataFrame, or anything `pyarrow.table` accepts.
        out: the directory to write (replaced whole when complete).
        dataset: ``synthetic``, ``movielens``, ``lastfm``, ``taobao``, ``csv`` or
            ``parquet``; by default ``synthetic`` without a source, ``parquet``
            for a table, else taken from the file's suffix (``.csv``, ``.tsv``,
            ``.parquet``).
        mapping: for ``csv``/``parquet``, the column mapping: a TOML mapping file
            or the same keys as a dict (``{"user": "customer", "item": "sku",
            "ts": "time", "integer_ids": False, "items": {"vector": [...]}}``).
            Relative paths under ``file`` keys of a dict are read from the
            current directory.
        tables: in-memory side tables of the mapping, by its table name
            (``items``, ``topics``, ``user_topics``), e.g. ``{"items": items_df}``:
            each is written to a temporary file (Parquet, or CSV for
            ``dataset="csv"``) that becomes that table's ``file``; its columns
            are mapped as the mapping's table of that name says.
        config: settings (see the module docstring); prepare reads ``[data]``
            and, for the synthetic world, ``[synthetic]``.
        preset: a shipped preset under `config`.

    A table's rows are numbered from 0 in the quarantine, whose ``source_file``
    names the temporary copy (``engagements.parquet`` for `source`, ``NAME.parquet``
    for ``tables[NAME]``).

    Raises:
        ConfigError: an unknown dataset or a bad mapping or setting.
        InputFileError: a file that cannot be read or lacks a mapped column.
        DataError: a table Arrow cannot convert (the message names the column),
            or no valid row (the report and quarantine are written all the same).

    Examples:
        >>> import pandas as pd
        >>> log = pd.DataFrame({"who": ["ann", "bob"] * 20,
        ...                     "what": [f"i{n % 7}" for n in range(40)],
        ...                     "when": [f"2024-05-01T10:{n:02d}:00Z" for n in range(40)]})
        >>> prepared = prepare(log, tmp / "mine",
        ...                    mapping={"user": "who", "item": "what", "ts": "when",
        ...                             "integer_ids": False})
        >>> prepared.counts["users"], prepared.counts["items"], prepared.quarantined["engagements"]
        (2, 7, 0)
    """
    from multiembed.data.prepare import prepare_dataset

    cfg = _config(config, preset)
    with tempfile.TemporaryDirectory(prefix="multiembed-prepare-") as scratch:
        work = Path(scratch)
        name = implied_dataset(source, dataset)
        path: Path | None
        if source is None or isinstance(source, str | os.PathLike):
            path = None if source is None else Path(source)
        else:
            path = write_table(source, work / "engagements.parquet", "source", "parquet")
        mapping_file = mapping_toml(mapping, tables, work, name)
        report = prepare_dataset(name, path, Path(out), config=cfg, mapping_file=mapping_file)
    out_dir = Path(out)
    return Prepared(
        data_dir=out_dir,
        report_file=out_dir / "report.json",
        quarantine_file=out_dir / report["quarantine_file"],
        counts=dict(report["counts"]),
        quarantined={k: t["rows_quarantined"] for k, t in report["tables"].items()},
        report=report,
    )


def train(
    data: PathLike,
    out: PathLike,
    *,
    config: Config | Mapping[str, Any] | PathLike | None = None,
    preset: str | None = None,
    max_steps: int | None = None,
    epochs: int | None = None,
    resume: bool = True,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a retrieval model on a prepared data directory into the run directory `out`.

    Args:
        data: a directory written by `prepare`.
        out: the run directory (weights, config, vocabularies, metrics log).
        config: settings (see the module docstring).
        preset: a shipped preset under `config`.
        max_steps: overrides ``train.max_steps``.
        epochs: overrides ``train.epochs``.
        resume: continue from ``out/checkpoint`` when there is one.
        device: ``"cpu"``, ``"cuda"``, ...; None picks CUDA when available.
        progress: show a progress bar.

    Returns:
        `multiembed.train.TrainResult` (run directory, steps, best validation
        HR@100, model version, ...).

    Examples:
        >>> result = train(tmp / "data", tmp / "run2", config=tiny, max_steps=2, progress=False)
        >>> result.steps, result.run_dir.name
        (2, 'run2')
    """
    import dataclasses

    from multiembed.train import train as train_run

    cfg = _config(config, preset)
    overrides: dict[str, Any] = {
        k: v for k, v in (("max_steps", max_steps), ("epochs", epochs)) if v is not None
    }
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    return train_run(cfg, Path(data), Path(out), progress=progress, resume=resume, device=device)


def evaluate(
    run: PathLike,
    data: PathLike | None = None,
    *,
    config: Config | Mapping[str, Any] | PathLike | None = None,
    preset: str | None = None,
    progress: bool = True,
) -> Evaluation:
    """Evaluate a run under the paper's protocol and write ``RUN/eval.json``.

    Args:
        run: a run directory written by `train`.
        data: its prepared data directory; None reads the one the run records.
        config: when given (or `preset`), the ``[eval]`` section of the settings
            replaces the run's.
        preset: a shipped preset under `config`.
        progress: show a progress bar.

    Examples:
        >>> result = evaluate(tmp / "run", progress=False)
        >>> [name for name in result.metrics if name.startswith("hr@")]
        ['hr@50', 'hr@100', 'hr@1000']
    """
    from multiembed.eval.evaluate import EVAL_FILE
    from multiembed.eval.evaluate import evaluate as evaluate_run

    chosen = config is not None or preset is not None
    eval_config = _config(config, preset).eval if chosen else None
    data_dir = _recorded_data(run) if data is None else Path(data)
    report = evaluate_run(run, data_dir, config=eval_config, progress=progress)
    return Evaluation(
        run_dir=Path(run),
        report_file=Path(run) / EVAL_FILE,
        metrics=dict(report["segments"]["all"]["metrics"]),
        report=report,
    )


def export(
    run: PathLike,
    out: PathLike,
    *,
    users: PathLike | None = None,
    mapping: PathLike | None = None,
    data: PathLike | None = None,
) -> Exported:
    """Write a run's item embeddings (and users' embeddings) as Parquet under raw ids.

    Args:
        run: a run directory written by `train`.
        out: the export directory.
        users: a file of user histories in raw ids: a CSV with the columns
            ``user_id, item_id, timestamp``, or any log that `mapping` describes.
        mapping: a TOML column mapping of `users`, as `prepare` reads one.
        data: the run's prepared data directory (item validity for the users).

    Examples:
        >>> exported = export(tmp / "run", tmp / "export2")
        >>> exported.items_file.name, exported.dim
        ('items.parquet', 16)
    """
    from multiembed.export import export_run

    summary = export_run(run, out, users_csv=users, data_dir=data, users_mapping=mapping)
    out_dir = Path(out)
    return Exported(
        out_dir=out_dir,
        items_file=out_dir / "items.parquet",
        users_file=None if users is None else out_dir / "users.parquet",
        model_version=summary["model_version"],
        dim=summary["dim"],
        summary=summary,
    )


def retrieve(
    run: PathLike,
    users: Iterable[int | str | RetrieveRequest],
    *,
    data: PathLike | None = None,
    budget: int = 50,
    index_factory: str = "HNSW32",
    seed: int = 0,
) -> list[Served]:
    """Candidates with provenance for each user, as the service answers them.

    The run's item index is built (or loaded from ``RUN/index/``) once for all users.

    Args:
        run: a run directory written by `train`.
        users: raw user ids of the data directory, or `multiembed.serve.RetrieveRequest`
            objects (a new user's history and followed topics in raw ids).
        data: the prepared data directory; None reads the one the run records.
        budget: candidates per user (for requests without their own budget).
        index_factory: the FAISS factory string of the item index (``"Flat"`` is exact).
        seed: the topic-sampling seed.

    Returns:
        One `multiembed.serve.Served` per user, in order: ``item_ids``,
        ``rows()`` for display, ``as_json()`` for the service's response body.

    Raises:
        ServeInputError: an unknown user or a malformed request.

    Examples:
        >>> [served] = retrieve(tmp / "run", [3], budget=4, index_factory="Flat")
        >>> len(served.item_ids), served.user_id
        (4, 3)
    """
    import dataclasses

    from multiembed.serve import RetrieveRequest, build_bundle
    from multiembed.serve import retrieve as answer

    data_dir = _recorded_data(run) if data is None else Path(data)
    bundle = build_bundle(Path(run), data_dir, index_factory)
    served = []
    for user in users:
        if isinstance(user, RetrieveRequest):
            request = user if user.budget is not None else dataclasses.replace(user, budget=budget)
        else:
            request = RetrieveRequest(user_id=user, budget=budget, seed=seed)
        served.append(answer(bundle, request))
    return served


def _config(config: Config | Mapping[str, Any] | PathLike | None, preset: str | None) -> Config:
    """The settings: a `Config` as is, a dict laid over `preset`, a file or preset name."""
    from multiembed.config import Config, config_document, load_config, merge_documents, parse

    if isinstance(config, Config):
        if preset is not None:
            raise ConfigError([f'preset = "{preset}": give a preset or a Config object, not both'])
        return config
    if isinstance(config, Mapping):
        base = config_document(None, preset=preset).data
        source = "the config dict" + ("" if preset is None else f' over preset "{preset}"')
        return parse(Config, merge_documents(base, dict(config)), source=source)
    return load_config(None if config is None else os.fspath(config), preset=preset)


def _recorded_data(run: PathLike) -> Path:
    """The data directory `run` was trained on, from its verified manifest."""
    from multiembed.runs import load_run

    recorded = Path(load_run(Path(run)).manifest["data"]["dir"])
    if not recorded.is_dir():
        raise DataError(
            f"{run}: the data directory it was trained on, {recorded}, does not exist; "
            "pass data= with the prepared data directory"
        )
    return recorded


__all__ = [
    "Evaluation",
    "Exported",
    "Prepared",
    "evaluate",
    "export",
    "prepare",
    "retrieve",
    "train",
]
