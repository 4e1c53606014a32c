"""The end of a training call: the weights the run keeps, its directory, a `TrainResult`.

With ``train.keep = "best"`` the weights of the best validation replace the last
step's; with ``train.select_interests`` rank 0 then picks the number of interests
the run serves (`multiembed.train._interests`); it writes the run directory
(`multiembed.runs.write_run`), its manifest last, with what training did in the
manifest's ``training``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from multiembed.runs import write_run
from multiembed.train._checkpoint import Position
from multiembed.train._interests import InterestChoice, choose_interests
from multiembed.train._setup import Training
from multiembed.train._validation import Validator


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
        interests: the number of interests the run serves and each one's validation
            score (``train.select_interests``), or None when it serves ``model.k``.
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
    interests: InterestChoice | None = None


def finish(
    run: Training,
    at: Position,
    *,
    final_loss: float | None,
    stopped: bool,
    wall_s: float,
    validator: Validator | None = None,
) -> TrainResult:
    """Keep the run's weights and write its directory, the loop having stopped at ``at``.

    ``final_loss`` is the loss of this call's last update; ``stopped`` says early
    stopping ended the run; ``wall_s`` is the loop's time; ``validator`` is the loop's
    (rank 0; one is made when the loop had none, e.g. a finished run resumed).
    """
    tc, ctx, selection = run.config.train, run.ctx, run.selection
    kept_best = tc.keep == "best" and selection.restore_best(run.model)
    version = ""
    interests = None
    if ctx.lead and selection.interests is not None:  # chosen during training
        interests = InterestChoice.from_document(selection.interests)
    elif ctx.lead and tc.validation and tc.select_interests:
        interests = choose_interests(
            run.config,
            run.model,
            validator or Validator(run.config, run.data_dir),
            features=run.data.features,
            n_topics=run.data.n_topics,
        )
    if ctx.lead:
        version = write_run(
            run.run_dir,
            config=run.config,
            data_dir=run.data_dir,
            model=run.model,
            features=run.data.features,
            estimator=run.estimator,
            n_topics=run.data.n_topics,
            training={
                "steps": at.step,
                "epochs_completed": at.epoch,
                "examples": at.examples,
                "final_loss": final_loss,
                "world_size": ctx.world_size,
                "split": run.data.split,
                "selection": selection.summary(tc.keep),
                **({} if interests is None else {"interests": interests.document()}),
                **run.objective.summary(at),
            },
        )
    ctx.barrier()
    examples = at.examples - run.start.examples  # this call's
    return TrainResult(
        run_dir=run.run_dir,
        steps=at.step,
        epochs=at.epoch,
        examples=at.examples,
        final_loss=final_loss,
        examples_per_s=examples / wall_s if examples else 0.0,
        wall_s=wall_s,
        model_version=version,
        resumed_from=run.resumed_from,
        complete=at.epoch >= tc.epochs or stopped,
        stopped_early=stopped,
        split=run.data.split,
        best_step=selection.best_step if kept_best else None,
        best_score=selection.best_score,
        interests=interests,
    )
