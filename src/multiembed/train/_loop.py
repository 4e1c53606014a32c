"""`train`: one explicit loop from a prepared data directory to a run directory.

`_train` reads top to bottom: the data, the model and its objective, and the rest
of the `Training` state (`multiembed.train._setup`); then the loop, whose every
step is `train_step` (1-6 below, `multiembed.train._update`), then a metrics line,
`_validate` (validation and model selection) and a checkpoint (7); then `finish`
(`multiembed.train._finish`): the run's weights, its directory, the `TrainResult`.

Each step, in order:

1. the next global batch of ``train.batch_size`` examples, in the order fixed by
   ``(train.seed, epoch)``; under torchrun this rank keeps its slice;
2. the frequency estimator records the target ids of the global batch's rows
   whose items the loss takes as negatives (every row for an implicit model; the
   rows with a condition for an explicit one) at this step, *then* gives their
   log q. Updating first follows Yi et al. (RecSys'19), whose
   training step estimates the batch's sampling probabilities with the batch
   itself counted: the correction then reflects the current batch, including an
   item repeated ``c`` times in it (the estimator's spread update credits all
   ``c`` sightings), instead of lagging one step behind. The order is part of
   the resumable state: a checkpoint holds the estimator after its step's update;
3. the model's objective (`multiembed.train._objective`): for an implicit model
   the towers' forward and Eq. 9 against every item of the global batch (in-batch
   negatives, logQ correction, accidental hits masked); for an explicit
   (Conditional Retrieval, ``model.kind = "explicit"``) model its own loss: the
   association's conditions, examples without one dropped and counted, Eq. 9 among
   the kept examples. A batch that keeps no example makes no update (counted);
4. a non-finite loss stops the run (`TrainingDivergedError`, step and "loss");
5. backward, then the gradient norm; a non-finite gradient stops the run, naming
   the first parameter whose gradient is not finite;
6. clipping to ``train.grad_clip`` and an AdamW update;
7. every ``train.log_every`` steps a line in ``RUN/metrics.jsonl``; at each
   epoch's end (and every ``train.validate_every`` steps when set) rank 0
   validates: HR@K of the current model on the held-out validation users
   (`multiembed.train._validation`), which leaves the trajectory untouched (eval
   mode, RNG states restored); `Selection` keeps the best weights and, after
   ``train.patience`` validations without improvement, the run stops; with
   ``train.select_interests`` and ``train.select_during`` it also compares the
   served K with one embedding (also ``train.select_checks - 1`` times between
   an epoch's validations), and once the one wins the run trains that one
   (`multiembed.train._interests`);
   every ``train.checkpoint_every`` steps and at each epoch's end, a checkpoint.

When the run stops (all epochs, early stopping, or ``train.max_steps``) the run
directory is written (`multiembed.runs.write_run`) with the best validation's
weights (``train.keep = "best"``) or the last step's. A run directory with a
checkpoint resumes from it: same weights, optimiser moments, RNG states, estimator and place in the
data order, so the result is bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from multiembed.config import Config, TrainConfig
from multiembed.data.examples import Example, make_loader
from multiembed.nn.retrieval import RetrievalModel
from multiembed.runs import VALIDATION_K, headline, model_label, trainable_from_config
from multiembed.train import _distributed
from multiembed.train._checkpoint import Position
from multiembed.train._distributed import DistContext
from multiembed.train._finish import TrainResult, finish
from multiembed.train._interests import choose_during_training
from multiembed.train._metrics import ProgressBar, Window
from multiembed.train._objective import build_objective
from multiembed.train._setup import Training, load_data, setup
from multiembed.train._update import Update, train_step
from multiembed.train._validation import Validation, Validator

ValidationHook = Callable[[int, Validation], None]
"""Called as ``hook(step, validation)`` after each validation is logged (rank 0 only)."""


def train(
    config: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    progress: bool = True,
    resume: bool = True,
    device: str | None = None,
    on_validation: ValidationHook | None = None,
) -> TrainResult:
    """Train ``config.model`` on a prepared data directory and write ``run_dir``.

    Args:
        config: the whole configuration (split, examples, model, train sections).
        data_dir: a directory written by ``multiembed prepare``.
        run_dir: where the run's files go (created if needed).
        progress: show a progress bar (rank 0 only).
        resume: continue from ``run_dir/checkpoint`` if there is one; False starts over.
        device: ``"cpu"``, ``"cuda"``, ...; None picks CUDA when available.
        on_validation: called with the step and the `Validation` after each
            validation is logged to ``metrics.jsonl`` (rank 0 only), e.g. to report
            it to a hyper-parameter search. An exception it raises ends the run
            there and propagates: the run directory keeps its last checkpoint and
            no manifest.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is joined here and
    the global batch is split over the ranks (see `multiembed.train._distributed`);
    only rank 0 writes files.

    A fresh run seeds torch's, NumPy's and Python's global generators with
    ``train.seed`` (the model's own generators come from ``model.seed``); a
    resumed run restores all of them from the checkpoint. ``train.threads`` > 0
    sets torch's intra-op threads for the process.

    Returns:
        A `TrainResult`.

    Raises:
        TrainingDivergedError: a non-finite loss or gradient (the last good
            checkpoint is kept).
        RunIntegrityError: a checkpoint that is damaged or from another config.
        InputFileError, DataError, ConfigError: unusable data or configuration.
    """
    ctx = _distributed.setup(device)
    try:
        return _train(config, Path(data_dir), Path(run_dir), ctx, progress, resume, on_validation)
    finally:
        _distributed.teardown(ctx)


def _train(
    config: Config,
    data_dir: Path,
    run_dir: Path,
    ctx: DistContext,
    progress: bool,
    resume: bool,
    on_validation: ValidationHook | None,
) -> TrainResult:
    tc = config.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    # the data, the model and its objective; then the optimiser, the estimator and the
    # model selection, from the checkpoint or freshly seeded (`multiembed.train._setup`)
    data = load_data(config, data_dir, run_dir, ctx)
    model = trainable_from_config(config, data.features, n_topics=data.n_topics).to(ctx.device)
    objective = build_objective(model, ctx, followed=config.model.followed_topics)
    run = setup(config, data_dir, run_dir, ctx, data, model, objective, resume=resume)
    if run.selection.interests is not None and isinstance(model, RetrievalModel):
        model.serve_interests(run.selection.interests["served_k"])  # chosen before
    at = run.start
    stopping = run.selection.stop  # early stopping, agreed by every rank
    validator = None
    if ctx.lead and tc.validation and at.step < run.last_step and not stopping:
        validator = Validator(config, data_dir)
        validator.load()  # unusable validation data stops the run before its first step
    bar = ProgressBar(
        run.last_step,
        at.step,
        enabled=progress and ctx.lead,
        title=f"training {model_label(config)}",
        validation=None if validator is None else f"HR@{VALIDATION_K}",
    )

    last: Update | None = None  # the last step that made an update
    window = Window()
    started = time.perf_counter()
    model.train()
    try:
        while at.epoch < tc.epochs and at.step < run.last_step and not stopping:
            for batch in _batches(run, at):
                if at.step >= run.last_step:
                    break
                start, stop, sizes = _distributed.shard_bounds(ctx, len(batch.target))
                if stop == start:  # a final batch smaller than the world size (torchrun only)
                    at = at._replace(batch=at.batch + 1)
                    continue
                # 1-6: log q, the objective, backward, clip, AdamW (`multiembed.train._update`)
                done = train_step(run, at, batch, start, stop, sizes)
                at = done.position
                last = done if done.loss is not None else last
                # 7: a metrics line, validation and model selection, a checkpoint
                window.add(done.loss, done.examples)
                if ctx.lead:
                    _log(run, done, last, window, bar)
                if _validates(tc, at, run.per_epoch):
                    stopping = _validate(run, at, validator, bar, window, on_validation)
                elif _checks_interests(run, at):
                    _check_interests(run, at, validator, window)
                if stopping:
                    if at.batch < run.per_epoch:  # an epoch's end saves below
                        run.save(at)
                    break
                if at.step % tc.checkpoint_every == 0 or at.step == run.last_step:
                    run.save(at)
            if at.batch >= run.per_epoch:  # the epoch is done
                at = at._replace(epoch=at.epoch + 1, batch=0)
                run.save(at)
    finally:
        bar.close()
    wall = time.perf_counter() - started
    final_loss = None if last is None else last.loss
    return finish(
        run, at, final_loss=final_loss, stopped=stopping, wall_s=wall, validator=validator
    )


def _batches(run: Training, at: Position) -> Iterator[Example]:
    """The global batches of ``at.epoch`` after its first ``at.batch``, in the order fixed
    by ``(train.seed, epoch)``."""
    tc = run.config.train
    loader = make_loader(
        run.data.dataset,
        batch_size=tc.batch_size,
        seed=tc.seed,
        epoch=at.epoch,
        start_batch=at.batch,
    )
    # Creating the iterator draws a worker base seed from torch's global RNG;
    # fork it so the training stream does not depend on where a run resumed.
    with torch.random.fork_rng(devices=[]):
        return iter(loader)


def _log(
    run: Training, done: Update, last: Update | None, window: Window, bar: ProgressBar
) -> None:
    """Rank 0's record of the step ``done``: every ``train.log_every`` steps and at an
    epoch's or the run's end, a line in ``metrics.jsonl`` (once the window holds an
    update; loss and gradient norm of the ``last`` update); the progress bar."""
    at, loss = done.position, None if last is None else last.loss
    every = run.config.train.log_every
    at_end = at.step == run.last_step or at.batch == run.per_epoch
    if last is not None and window.updates and (at.step % every == 0 or at_end):
        loss_avg, speed = window.take()
        run.metrics.append(
            {
                "step": at.step,
                "epoch": at.epoch,
                "loss": loss,
                "loss_avg": loss_avg,
                "batch": done.examples,
                "lr": run.optimiser.param_groups[0]["lr"],
                "examples_per_s": speed,
                "grad_norm": last.grad_norm,
                **done.out.fields(at),
            }
        )
        bar.update(at.step, loss, speed)
    else:
        bar.update(at.step, loss, None)


def _validates(tc: TrainConfig, at: Position, per_epoch: int) -> bool:
    """The step that reached ``at`` validates: an epoch's end, every ``train.validate_every``."""
    every = tc.validate_every
    return tc.validation and (at.batch == per_epoch or bool(every and at.step % every == 0))


def _validate(
    run: Training,
    at: Position,
    validator: Validator | None,
    bar: ProgressBar,
    window: Window,
    on_validation: ValidationHook | None,
) -> bool:
    """Validate the model at ``at`` (rank 0: ``validator`` set) and select; True when early
    stopping ends the run (rank 0 decides, every rank agrees)."""
    if validator is not None:
        bar.validating()
        checked = validator(run.model)
        run.selection.observe(checked.score, step=at.step, epoch=at.epoch, model=run.model)
        run.metrics.append(
            {
                "step": at.step,
                "epoch": at.epoch,
                "validation": checked.metrics,
                "validation_records": checked.records,
                "validation_s": checked.seconds,
                "best": run.selection.best_step == at.step,
            }
        )
        bar.validated(headline(checked.metrics))
        if _selects_during(run):
            started = time.perf_counter()
            _choose_interests(run, at, validator)
            checked = checked._replace(seconds=checked.seconds + time.perf_counter() - started)
        window.pause(checked.seconds)  # examples/s counts training time only
        if on_validation is not None:
            on_validation(at.step, checked)
    tc = run.config.train
    if tc.select_interests and tc.select_during and getattr(run.model, "k", 1) != 1:
        _narrow(run)  # every rank, at every validation until it narrows
    if not tc.patience:
        return False
    return bool(run.ctx.sum(torch.tensor([float(run.selection.stop)])).item())


def _checks_interests(run: Training, at: Position) -> bool:
    """Between validations, the step that reached ``at`` compares K with one embedding:
    the first batch at or past each of the epoch's ``train.select_checks`` even marks."""
    tc, marks = run.config.train, run.config.train.select_checks
    if not (tc.validation and tc.select_interests and tc.select_during) or marks == 1:
        return False
    at_mark = at.batch * marks // run.per_epoch > (at.batch - 1) * marks // run.per_epoch
    return at_mark and getattr(run.model, "k", 1) != 1


def _check_interests(
    run: Training, at: Position, validator: Validator | None, window: Window
) -> None:
    """Rank 0 makes the K-or-one choice at ``at``; every rank narrows once it is made."""
    if validator is not None and _selects_during(run):
        started = time.perf_counter()
        _choose_interests(run, at, validator)
        window.pause(time.perf_counter() - started)
    _narrow(run)


def _selects_during(run: Training) -> bool:
    """Rank 0 still chooses the served K at validations (``train.select_during``)."""
    tc = run.config.train
    return tc.select_interests and tc.select_during and run.selection.interests is None


def _choose_interests(run: Training, at: Position, validator: Validator) -> None:
    """Rank 0: record in the selection that the one embedding wins at ``at``, if it does."""
    choice = choose_during_training(
        run.config,
        run.model,
        validator,
        features=run.data.features,
        n_topics=run.data.n_topics,
        step=at.step,
    )
    if choice is not None:
        run.selection.interests = choice.document()
        run.metrics.append({"step": at.step, "epoch": at.epoch, "interests": choice.document()})


def _narrow(run: Training) -> None:
    """Every rank trains the one embedding from now on once rank 0 chose it."""
    chosen = run.ctx.sum(torch.tensor([float(run.selection.interests is not None)])).item()
    if chosen and isinstance(run.model, RetrievalModel) and run.model.k != 1:
        run.model.serve_interests(1)
