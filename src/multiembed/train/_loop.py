"""`train`: one explicit loop from a prepared data directory to a run directory.

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
   ``train.patience`` validations without improvement, the run stops;
   every ``train.checkpoint_every`` steps and at each epoch's end, a checkpoint.

When the run stops (all epochs, early stopping, or ``train.max_steps``) the run
directory is written (`multiembed.runs.write_run`) with the best validation's
weights (``train.keep = "best"``) or the last step's. A run directory with a
checkpoint resumes from it: same weights, optimiser moments, RNG states, estimator and place in the
data order, so the result is bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from multiembed.config import Config
from multiembed.data.examples import ExampleDataset, ExampleStore, make_loader
from multiembed.data.frequency import FrequencyEstimator
from multiembed.runs import (
    MANIFEST_FILE,
    VALIDATION_K,
    headline,
    load_item_features,
    model_label,
    n_topic_ids,
    trainable_from_config,
    write_config,
    write_run,
)
from multiembed.train import _checkpoint, _distributed, _rng
from multiembed.train._checkpoint import Position
from multiembed.train._data import training_examples
from multiembed.train._distributed import DistContext
from multiembed.train._metrics import MetricsLog, ProgressBar
from multiembed.train._objective import build_objective
from multiembed.train._selection import Selection
from multiembed.train._validation import Validation, Validator
from multiembed.train.errors import TrainingDivergedError

ValidationHook = Callable[[int, Validation], None]
"""Called as ``hook(step, validation)`` after each validation is logged (rank 0 only)."""


class TrainResult(NamedTuple):
    """What `train` did.

    Attributes:
        run_dir: the run directory.
        steps: global steps done in total (including before a resume).
        epochs: epochs completed.
        examples: training examples seen in total.
        final_loss: the loss of the last step run by this call (None if it ran none).
        examples_per_s: examples per second of this call's steps (0.0 if none).
        wall_s: seconds this call spent in the loop.
        model_version: the version written to the manifest.
        resumed_from: the step of the checkpoint this call resumed from, or None.
        complete: every configured epoch is done, or early stopping ended the run
            (False when ``max_steps`` stopped it).
        stopped_early: ``train.patience`` validations in a row did not improve.
        split: the split's counts (`EventSplit.summary`): engagements, positive,
            training_targets, training_share, validation_targets, test_targets.
        best_step: the step whose weights the run kept (``train.keep = "best"``), or
            None when it kept the last step's.
        best_score: the best validation HR@100 seen (None without validation).
    """

    run_dir: Path
    steps: int
    epochs: int
    examples: int
    final_loss: float | None
    examples_per_s: float
    wall_s: float
    model_version: str
    resumed_from: int | None
    complete: bool
    stopped_early: bool
    split: dict[str, Any]
    best_step: int | None
    best_score: float | None


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


def _examples(
    config: Config, data_dir: Path, run_dir: Path, ctx: DistContext
) -> tuple[ExampleStore, dict[str, Any]]:
    """Training examples and the split's counts, cached beside the data (or in the run dir
    if the data is read-only).

    Rank 0 builds them; the other ranks wait and open the same directory.
    """
    writable = os.access(data_dir, os.W_OK)
    cache = data_dir / ".cache" if writable else run_dir / "cache"
    built = training_examples(config, data_dir, cache) if ctx.lead else None
    ctx.barrier()
    return built if built is not None else training_examples(config, data_dir, cache)


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
    if ctx.lead:
        run_dir.mkdir(parents=True, exist_ok=True)
    store, split_counts = _examples(config, data_dir, run_dir, ctx)
    dataset = ExampleDataset(store)
    features = load_item_features(data_dir)
    n_topics = n_topic_ids(data_dir)
    followed = config.model.followed_topics

    model = trainable_from_config(config, features, n_topics=n_topics).to(ctx.device)
    objective = build_objective(model, ctx, followed=followed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    estimator = FrequencyEstimator(
        tc.freq_buckets, num_items=features.n_items, alpha=tc.freq_alpha
    ).to(ctx.device)
    metrics = MetricsLog(run_dir)
    checkpoint = _checkpoint.checkpoint_path(run_dir)
    selection = Selection(patience=tc.patience if tc.validation else 0)

    resumed_from: int | None = None
    if resume and checkpoint.is_file():
        position = _checkpoint.load(
            run_dir,
            model=model,
            optimiser=optimiser,
            estimator=estimator,
            config=config,
            selection=selection,
        )
        resumed_from = position.step
        if ctx.lead:
            metrics.truncate_after(position.step)
    else:
        _rng.seed_all(tc.seed)
        position = Position()
        if ctx.lead:
            checkpoint.unlink(missing_ok=True)
            metrics.clear()
    if ctx.lead:
        (run_dir / MANIFEST_FILE).unlink(missing_ok=True)  # unfinished until the end
        write_config(run_dir, config)
    ctx.barrier()

    def save_checkpoint(position: Position) -> None:
        if ctx.lead:
            _checkpoint.save(
                run_dir,
                model=model,
                optimiser=optimiser,
                estimator=estimator,
                position=position,
                config=config,
                selection=selection,
            )

    params = [p for p in model.parameters() if p.requires_grad]
    names = {id(p): n for n, p in model.named_parameters()}
    per_epoch = math.ceil(len(dataset) / tc.batch_size)
    last_step = tc.epochs * per_epoch
    if tc.max_steps:
        last_step = min(last_step, tc.max_steps)
    validator = None
    stopping = selection.stop  # early stopping, agreed by every rank
    if ctx.lead and tc.validation and position.step < last_step and not stopping:
        validator = Validator(config, data_dir)
        validator.load()  # unusable validation data stops the run before its first step
    bar = ProgressBar(
        last_step,
        position.step,
        enabled=progress and ctx.lead,
        title=f"training {model_label(config)}",
        validation=None if validator is None else f"HR@{VALIDATION_K}",
    )

    epoch, batch_index, step, seen, without, skipped = position
    loss_value: float | None = None
    grad_norm = math.nan
    window_loss, window_steps, window_examples = 0.0, 0, 0
    window_start = started = time.perf_counter()
    call_examples = 0
    model.train()
    try:
        while epoch < tc.epochs and step < last_step and not stopping:
            loader = make_loader(
                dataset,
                batch_size=tc.batch_size,
                seed=tc.seed,
                epoch=epoch,
                start_batch=batch_index,
            )
            # Creating the iterator draws a worker base seed from torch's global RNG;
            # fork it so the training stream does not depend on where a run resumed.
            with torch.random.fork_rng(devices=[]):
                batches = iter(loader)
            for batch in batches:
                if step >= last_step:
                    break
                start, stop, sizes = _distributed.shard_bounds(ctx, len(batch.target))
                batch_index += 1
                if stop == start:  # a final batch smaller than the world size (torchrun only)
                    continue
                step += 1

                # 1-2: the global batch's ids -> frequency estimate -> log q; the estimate
                # counts the rows whose items the loss takes as negatives (CR: those with
                # a condition)
                ids = batch.target.to(ctx.device)  # [B] global
                estimator.update(ids[objective.counted(batch, ids)], step)
                log_q = estimator.log_q(ids)  # [B]
                # 3: the model's objective on this rank's rows
                optimiser.zero_grad(set_to_none=True)
                out = objective(batch, ids, log_q, start, stop, sizes)
                without += out.without_condition
                if out.loss is None:  # no example of the batch has a condition
                    skipped += 1
                else:
                    loss_value = out.value
                    # 4: non-finite loss
                    if not math.isfinite(loss_value):
                        raise _diverged(step, "loss", checkpoint, f"value {loss_value}")
                    # 5: gradients and their norm
                    out.loss.backward()
                    grads = [p.grad for p in params if p.grad is not None]
                    norm = torch.nn.utils.get_total_norm(grads)
                    grad_norm = float(norm)
                    if not math.isfinite(grad_norm):
                        # every gradient can be finite while the sum of their squares
                        # overflows: then no one tensor is to blame
                        culprit = next(
                            (
                                names[id(p)]
                                for p in params
                                if p.grad is not None and not torch.isfinite(p.grad).all()
                            ),
                            "gradient norm (every gradient finite; their total overflows)",
                        )
                        raise _diverged(step, culprit, checkpoint, f"gradient norm {grad_norm}")
                    # 6: clip and update
                    torch.nn.utils.clip_grads_with_norm_(params, tc.grad_clip, norm)
                    optimiser.step()
                    window_loss += loss_value
                    window_steps += 1

                seen += len(ids)
                call_examples += len(ids)
                window_examples += len(ids)
                at_end = step == last_step or batch_index == per_epoch
                # 7: metrics, progress, checkpoints
                here = Position(epoch, batch_index, step, seen, without, skipped)
                if ctx.lead and (step % tc.log_every == 0 or at_end) and window_steps:
                    now = time.perf_counter()
                    speed = window_examples / max(now - window_start, 1e-9)
                    metrics.append(
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": loss_value,
                            "loss_avg": window_loss / window_steps,
                            "batch": len(ids),
                            "lr": optimiser.param_groups[0]["lr"],
                            "examples_per_s": speed,
                            "grad_norm": grad_norm,
                            **out.fields(here),
                        }
                    )
                    bar.update(step, loss_value, speed)
                    window_loss, window_steps, window_examples = 0.0, 0, 0
                    window_start = now
                elif ctx.lead:
                    bar.update(step, loss_value, None)
                every = tc.validate_every
                validating = tc.validation and (
                    batch_index == per_epoch or bool(every and step % every == 0)
                )
                if validator is not None and validating:
                    bar.validating()
                    checked = validator(model)
                    selection.observe(checked.score, step=step, epoch=epoch, model=model)
                    metrics.append(
                        {
                            "step": step,
                            "epoch": epoch,
                            "validation": checked.metrics,
                            "validation_records": checked.records,
                            "validation_s": checked.seconds,
                            "best": selection.best_step == step,
                        }
                    )
                    bar.validated(headline(checked.metrics))
                    window_start += checked.seconds  # examples/s counts training time only
                    if on_validation is not None:
                        on_validation(step, checked)
                if validating and tc.patience:  # rank 0 decides; every rank stops
                    stopping = bool(ctx.sum(torch.tensor([float(selection.stop)])).item())
                if stopping:
                    if batch_index < per_epoch:  # an epoch's end saves below
                        save_checkpoint(here)
                    break
                if step % tc.checkpoint_every == 0 or step == last_step:
                    save_checkpoint(here)
            if batch_index >= per_epoch:  # the epoch is done
                epoch, batch_index = epoch + 1, 0
                save_checkpoint(Position(epoch, 0, step, seen, without, skipped))
    finally:
        bar.close()
    wall = time.perf_counter() - started

    kept_best = tc.keep == "best" and selection.restore_best(model)
    version = ""
    if ctx.lead:
        version = write_run(
            run_dir,
            config=config,
            data_dir=data_dir,
            model=model,
            features=features,
            estimator=estimator,
            n_topics=n_topics,
            training={
                "steps": step,
                "epochs_completed": epoch,
                "examples": seen,
                "final_loss": loss_value,
                "world_size": ctx.world_size,
                "split": split_counts,
                "selection": selection.summary(tc.keep),
                **objective.summary(Position(epoch, batch_index, step, seen, without, skipped)),
            },
        )
    ctx.barrier()
    return TrainResult(
        run_dir=run_dir,
        steps=step,
        epochs=epoch,
        examples=seen,
        final_loss=loss_value,
        examples_per_s=call_examples / wall if call_examples else 0.0,
        wall_s=wall,
        model_version=version,
        resumed_from=resumed_from,
        complete=epoch >= tc.epochs or stopping,
        stopped_early=stopping,
        split=split_counts,
        best_step=selection.best_step if kept_best else None,
        best_score=selection.best_score,
    )


def _diverged(step: int, tensor: str, checkpoint: Path, detail: str) -> TrainingDivergedError:
    kept: Any = checkpoint if checkpoint.is_file() else None
    return TrainingDivergedError(step, tensor, kept, detail)
