"""`train`: one explicit loop from a prepared data directory to a run directory.

`_train` reads top to bottom: the data, the model and its objective, and the rest
of the `Training` state (`multiembed.train._setup`); then the loop (1-7 below);
then `finish` (`multiembed.train._finish`): the run's weights, its directory, the
`TrainResult`.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from multiembed.config import Config
from multiembed.data.examples import make_loader
from multiembed.runs import VALIDATION_K, headline, model_label, trainable_from_config
from multiembed.train import _distributed
from multiembed.train._checkpoint import Position
from multiembed.train._distributed import DistContext
from multiembed.train._finish import TrainResult, finish
from multiembed.train._metrics import ProgressBar
from multiembed.train._objective import build_objective
from multiembed.train._setup import load_data, setup
from multiembed.train._validation import Validation, Validator
from multiembed.train.errors import TrainingDivergedError

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

    params = [p for p in model.parameters() if p.requires_grad]
    names = {id(p): n for n, p in model.named_parameters()}
    epoch, batch_index, step, seen, without, skipped = at
    loss_value: float | None = None
    grad_norm = math.nan
    window_loss, window_steps, window_examples = 0.0, 0, 0
    window_start = started = time.perf_counter()
    model.train()
    try:
        while epoch < tc.epochs and step < run.last_step and not stopping:
            loader = make_loader(
                data.dataset,
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
                if step >= run.last_step:
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
                run.estimator.update(ids[objective.counted(batch, ids)], step)
                log_q = run.estimator.log_q(ids)  # [B]
                # 3: the model's objective on this rank's rows
                run.optimiser.zero_grad(set_to_none=True)
                out = objective(batch, ids, log_q, start, stop, sizes)
                without += out.without_condition
                if out.loss is None:  # no example of the batch has a condition
                    skipped += 1
                else:
                    loss_value = out.value
                    # 4: non-finite loss
                    if not math.isfinite(loss_value):
                        raise _diverged(step, "loss", run.checkpoint, f"value {loss_value}")
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
                        raise _diverged(step, culprit, run.checkpoint, f"gradient norm {grad_norm}")
                    # 6: clip and update
                    torch.nn.utils.clip_grads_with_norm_(params, tc.grad_clip, norm)
                    run.optimiser.step()
                    window_loss += loss_value
                    window_steps += 1

                seen += len(ids)
                window_examples += len(ids)
                at_end = step == run.last_step or batch_index == run.per_epoch
                # 7: metrics, progress, checkpoints
                here = Position(epoch, batch_index, step, seen, without, skipped)
                if ctx.lead and (step % tc.log_every == 0 or at_end) and window_steps:
                    now = time.perf_counter()
                    speed = window_examples / max(now - window_start, 1e-9)
                    run.metrics.append(
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": loss_value,
                            "loss_avg": window_loss / window_steps,
                            "batch": len(ids),
                            "lr": run.optimiser.param_groups[0]["lr"],
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
                    batch_index == run.per_epoch or bool(every and step % every == 0)
                )
                if validator is not None and validating:
                    bar.validating()
                    checked = validator(model)
                    run.selection.observe(checked.score, step=step, epoch=epoch, model=model)
                    run.metrics.append(
                        {
                            "step": step,
                            "epoch": epoch,
                            "validation": checked.metrics,
                            "validation_records": checked.records,
                            "validation_s": checked.seconds,
                            "best": run.selection.best_step == step,
                        }
                    )
                    bar.validated(headline(checked.metrics))
                    window_start += checked.seconds  # examples/s counts training time only
                    if on_validation is not None:
                        on_validation(step, checked)
                if validating and tc.patience:  # rank 0 decides; every rank stops
                    stopping = bool(ctx.sum(torch.tensor([float(run.selection.stop)])).item())
                if stopping:
                    if batch_index < run.per_epoch:  # an epoch's end saves below
                        run.save(here)
                    break
                if step % tc.checkpoint_every == 0 or step == run.last_step:
                    run.save(here)
            if batch_index >= run.per_epoch:  # the epoch is done
                epoch, batch_index = epoch + 1, 0
                run.save(Position(epoch, 0, step, seen, without, skipped))
    finally:
        bar.close()
    wall = time.perf_counter() - started
    at = Position(epoch, batch_index, step, seen, without, skipped)
    return finish(run, at, final_loss=loss_value, stopped=stopping, wall_s=wall)


def _diverged(step: int, tensor: str, checkpoint: Path, detail: str) -> TrainingDivergedError:
    kept: Any = checkpoint if checkpoint.is_file() else None
    return TrainingDivergedError(step, tensor, kept, detail)
