"""`tune`: an Optuna study over a search space, each trial a training run.

Each trial draws its values with a seeded TPE sampler, lays them on the base
configuration (`configured`) and trains with `multiembed.train.train` into
``OUT/trials/NNN``. After each validation the training loop hands the metric to
the trial (`ValidationHook`), reported at the validation's index (0, 1, ...), so
that trials with other batch sizes compare at the same point; with
``search.prune`` a `MedianPruner` stops a trial whose value falls below the
median of the completed trials' at that index (after ``search.startup_trials``
completed trials and ``search.warmup`` validations). A complete trial's value is
the metric at the validation whose weights its run kept (``train.keep``).

The study lives in ``OUT/study.db`` (SQLite): running `tune` again on the same
directory resumes it, counting the trials already done towards ``trials``. A
trial cut short (Ctrl-C, a killed process) is marked ``interrupted`` and its
values run again, from the start, as a new trial. The sampler of a resumed
search is seeded with ``search.seed`` plus the trials already in the study, so
it does not draw the first trials' values again. The directory keeps the space,
base configuration and data it was started with; another one is refused.

After each trial ``results.md``, ``results.json`` and ``best.toml`` are rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from multiembed._progress import runs_bar
from multiembed.config import Config, to_dict
from multiembed.errors import ConfigError
from multiembed.train import TrainingDivergedError, Validation, train
from multiembed.tune._report import BEST_TOML, RESULTS_JSON, RESULTS_MD, TrialRecord, write_results
from multiembed.tune._space import Choices, Dimension, SearchSpace, configured
from multiembed.tune.errors import TuneError

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial, Trial
    from rich.progress import Progress, TaskID

STUDY_NAME = "multiembed"
DB_FILE = "study.db"
TRIALS_DIR = "trials"
INSTALL_HINT = "pip install 'multiembed[tune]' (the package optuna)"
IDENTITY = "identity"
NOTE, INTERRUPTED, RERUN_OF = "note", "interrupted", "rerun_of"


class TuneResult(NamedTuple):
    """What `tune` did and wrote.

    Attributes:
        out_dir: the search directory.
        records: every trial of the study, by number.
        best: the best complete trial, or None when none completed.
        ran: trials this call ran.
        table: the results table (Markdown).
        results_md, results_json: the table's files.
        best_toml: the best trial's complete configuration, or None.
    """

    out_dir: Path
    records: tuple[TrialRecord, ...]
    best: TrialRecord | None
    ran: int
    table: str
    results_md: Path
    results_json: Path
    best_toml: Path | None


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise TuneError(
            f"multiembed tune needs the optional package optuna: {INSTALL_HINT}"
        ) from err
    return optuna


def tune(
    data_dir: str | Path,
    space: SearchSpace,
    out_dir: str | Path,
    *,
    config: Config,
    trials: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    device: str | None = None,
) -> TuneResult:
    """Search `space` over the base configuration `config` on a prepared data directory.

    Args:
        data_dir: a directory written by ``multiembed prepare``.
        space: the checked search space (`load_space`).
        out_dir: the search directory (created, or resumed when it holds a study).
        config: the base configuration each trial's values are laid on.
        trials: trials in all, those already done included (default ``search.trials``).
        timeout: start no trial after this many seconds of this call (default
            ``search.timeout``); a running trial finishes.
        progress: show a progress bar.
        device: the training device (see `multiembed.train.train`).

    Raises:
        TuneError: optuna is missing, or `out_dir` holds another search.
        DataError, InputFileError: the data cannot be trained or validated on (the
            search stops; the trial is marked interrupted and runs again on resume).
    """
    optuna = _optuna()
    out, data = Path(out_dir), Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = space.trials if trials is None else trials
    limit = space.timeout if timeout is None else timeout
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the table says what happened
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{(out / DB_FILE).resolve()}")
        study = _open(optuna, storage, space, config, data)
        _requeue_interrupted(optuna, storage, study)
        done = sum(1 for r in _records(optuna, study, space) if r.state != "interrupted")
        to_run = max(0, total - done)
        with runs_bar("{task.fields[note]}", enabled=progress) as bar:
            task = bar.add_task(f"tuning {space.metric}", total=to_run, note="")
            objective = _Objective(space, config, data, out, device, bar, task)
            finished: list[int] = []

            def after_trial(study: Study, trial: FrozenTrial) -> None:
                finished.append(trial.number)
                bar.advance(task)
                _write(optuna, study, space, config, out)
                value = "" if trial.value is None else f" {space.metric} {trial.value:.4f}"
                bar.update(
                    task, note=f"last: trial {trial.number} {trial.state.name.lower()}{value}"
                )

            if to_run:
                study.optimize(
                    objective,
                    n_trials=to_run,
                    timeout=limit,
                    catch=(TrainingDivergedError, ConfigError, TuneError),
                    callbacks=[after_trial],
                )
        table = _write(optuna, study, space, config, out)
        records = tuple(_records(optuna, study, space))
        best = _best(optuna, study)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return TuneResult(
        out_dir=out,
        records=records,
        best=next((r for r in records if r.number == best), None),
        ran=len(finished),
        table=table,
        results_md=out / RESULTS_MD,
        results_json=out / RESULTS_JSON,
        best_toml=None if best is None else out / BEST_TOML,
    )


def _open(optuna: Any, storage: Any, space: SearchSpace, config: Config, data: Path) -> Any:
    """The study of `storage`, created or resumed, with its sampler and pruner."""
    identity = {"space": space.document(), "base": to_dict(config), "data": str(data.resolve())}
    stored = json.loads(json.dumps(identity))  # as the study's storage gives it back
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, direction="maximize", load_if_exists=True
    )
    held = study.user_attrs.get(IDENTITY)
    if held is None:
        study.set_user_attr(IDENTITY, identity)
    elif held != stored:
        differs = [what for what in stored if held.get(what) != stored[what]]
        raise TuneError(
            f"{storage.url}: this directory holds a search with another "
            f"{' and '.join(_WHAT[w] for w in differs)}; resume it with the same ones, or "
            "give another --out to start a new search"
        )
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=space.startup_trials, n_warmup_steps=space.warmup
        )
        if space.prune
        else optuna.pruners.NopPruner()
    )
    sampler = optuna.samplers.TPESampler(seed=space.seed + len(study.trials))
    return optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner)


_WHAT = {"space": "search space or metric", "base": "base configuration", "data": "data directory"}


def _requeue_interrupted(optuna: Any, storage: Any, study: Any) -> None:
    """Trials cut short: marked failed and interrupted, their values queued to run again."""
    state = optuna.trial.TrialState
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    trials = study.get_trials(deepcopy=False)
    queued = _reruns(trials)
    for trial in trials:
        if _state(optuna, trial) not in ("running", "interrupted") or trial.number in queued:
            continue
        if trial.state == state.RUNNING:  # its process was killed: no one runs it now
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
            storage.set_trial_user_attr(trial_id, NOTE, "interrupted (its process ended)")
            storage.set_trial_state_values(trial_id, state.FAIL)
        study.enqueue_trial(trial.params, user_attrs={RERUN_OF: trial.number})


def _reruns(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials whose values were queued to run again."""
    return {t.user_attrs[RERUN_OF] for t in trials if RERUN_OF in t.user_attrs}


@dataclass
class _Objective:
    """One trial: draw values, train, report each validation, return the kept one's metric."""

    space: SearchSpace
    base: Config
    data: Path
    out: Path
    device: str | None
    bar: Progress
    task: TaskID

    def __call__(self, trial: Trial) -> float:
        optuna = _optuna()
        try:
            return self._run(optuna, trial)
        except optuna.TrialPruned:
            raise
        except (TrainingDivergedError, ConfigError, TuneError) as err:
            trial.set_user_attr(NOTE, str(err))
            raise
        except BaseException as err:  # Ctrl-C, or data that no trial can use: run it again
            trial.set_user_attr(INTERRUPTED, True)
            trial.set_user_attr(NOTE, f"interrupted ({type(err).__name__})")
            raise

    def _run(self, optuna: Any, trial: Trial) -> float:
        values = {d.key: _suggest(trial, d) for d in self.space.dimensions}
        config = configured(self.base, values)
        metric = self.space.metric
        reported: dict[int, float] = {}
        self.bar.update(self.task, description=f"trial {trial.number}: training")

        def report(step: int, validation: Validation) -> None:
            value = validation.metrics.get(metric)
            if value is None:
                raise TuneError(f"validation measured no {metric} (no record to score it on)")
            index = len(reported)
            reported[step] = value
            trial.report(value, index)
            self.bar.update(
                self.task,
                description=f"trial {trial.number}: validation {index + 1} {metric} {value:.4f}",
            )
            if trial.should_prune():
                trial.set_user_attr(NOTE, f"below the median at validation {index + 1}")
                raise optuna.TrialPruned()

        run_dir = self.out / TRIALS_DIR / f"{trial.number:03d}"
        result = train(
            config,
            self.data,
            run_dir,
            progress=False,
            resume=False,
            device=self.device,
            on_validation=report,
        )
        if not reported:
            raise TuneError(
                f"the trial ran no validation in {result.steps} steps: let it train a whole "
                "epoch (train.max_steps) or set train.validate_every"
            )
        kept = result.best_step if result.best_step in reported else max(reported)
        return reported[kept]


def _suggest(trial: Trial, dim: Dimension) -> Any:
    if isinstance(dim, Choices):
        return trial.suggest_categorical(dim.key, list(dim.values))
    if dim.integer:
        step = 1 if dim.step is None else int(dim.step)
        return trial.suggest_int(dim.key, int(dim.low), int(dim.high), step=step, log=dim.log)
    return trial.suggest_float(dim.key, dim.low, dim.high, step=dim.step, log=dim.log)


def _state(optuna: Any, trial: FrozenTrial) -> str:
    """complete, pruned, failed, running, waiting, or interrupted (a failed trial cut short)."""
    if trial.user_attrs.get(INTERRUPTED):
        return "interrupted"
    return "failed" if trial.state == optuna.trial.TrialState.FAIL else trial.state.name.lower()


def _records(optuna: Any, study: Any, space: SearchSpace) -> list[TrialRecord]:
    out = []
    trials = study.get_trials(deepcopy=False)
    reruns = _reruns(trials)
    for trial in trials:
        state = _state(optuna, trial)
        if state == "waiting":
            continue
        metric = trial.value
        if metric is None and trial.intermediate_values:
            metric = trial.intermediate_values[max(trial.intermediate_values)]
        seconds = None if trial.duration is None else trial.duration.total_seconds()
        note = trial.user_attrs.get(NOTE, "")
        if state == "interrupted" and trial.number in reruns:
            note = f"{note or 'interrupted'}; its values ran again as a later trial"
        values = {k: trial.params[k] for k in space.keys if k in trial.params}
        validations = len(trial.intermediate_values)
        out.append(TrialRecord(trial.number, state, values, metric, validations, seconds, note))
    return out


def _best(optuna: Any, study: Any) -> int | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    return int(max(complete, key=lambda t: (t.value, -t.number)).number)


def _write(optuna: Any, study: Any, space: SearchSpace, base: Config, out: Path) -> str:
    return write_results(out, space, base, _records(optuna, study, space), _best(optuna, study))
