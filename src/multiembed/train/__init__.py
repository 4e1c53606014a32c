"""Training: one explicit loop from a prepared data directory to a verified run directory.

- `train(config, data_dir, run_dir)` runs AdamW on Eq. 9 (in-batch negatives,
  logQ from the streaming frequency estimator, gradient clipping) for an implicit
  model or, with ``model.kind = "explicit"``, a Conditional Retrieval model
  (`conditional_from_config`; examples without a condition counted), logs to
  ``RUN/metrics.jsonl`` (with HR@K on a fixed validation slice every
  ``train.validate_every`` steps, each also handed to ``on_validation``, a
  `ValidationHook`, when given), checkpoints atomically and resumes bit-identically;
  under ``torchrun`` it trains data parallel with negatives gathered across ranks.
- `training_examples` turns a prepared data directory into training examples.

The run directory it writes, and what reads it, are `multiembed.runs`'s; these of
its names are also importable from here: `load_run` (verifies a run directory and
returns the model in eval mode as a `LoadedRun`), `load_item_features`,
`model_from_config`, `conditional_from_config`, `model_label`, `RunIntegrityError`.

Errors: `RunIntegrityError` (a damaged or mismatched run file) and
`TrainingDivergedError` (a non-finite loss or gradient), both `MultiembedError`.
"""

from multiembed.runs import (
    LoadedRun,
    conditional_from_config,
    load_item_features,
    load_run,
    model_from_config,
    model_label,
)
from multiembed.train._data import training_examples
from multiembed.train._finish import TrainResult
from multiembed.train._loop import ValidationHook, train
from multiembed.train._validation import Validation, validation_ks
from multiembed.train.errors import RunIntegrityError, TrainingDivergedError

__all__ = [
    "LoadedRun",
    "RunIntegrityError",
    "TrainResult",
    "TrainingDivergedError",
    "Validation",
    "ValidationHook",
    "conditional_from_config",
    "load_item_features",
    "load_run",
    "model_from_config",
    "model_label",
    "train",
    "training_examples",
    "validation_ks",
]
