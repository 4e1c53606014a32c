"""Offline evaluation: the paper's HR@K protocol, served lists, ComiRec metrics, segments.

- `multiembed.eval.metrics`: the metric functions, pure NumPy (no torch import).
- `multiembed.eval.evaluate`: `evaluate(run_dir, data_dir)` writes ``RUN/eval.json``;
  `evaluate_model` does the work on models in memory (an implicit `UserItemModel`,
  a `ConditionalModel`, or both); `summarize_seeds` gives mean and standard
  deviation over several seeds' reports.

Both are imported from their modules, so that the metrics stay free of torch.
For other packages that rank with their own protocol, this package also exposes
(imported on first use, for the same reason):

- `load_eval_data`, `EvalData`, `EvalRecords`, `corpus_position`: the evaluation
  records (histories, targets, per-user requests) and the corpus of a prepared
  data directory, and where items stand in that corpus;
- `inference`, `embed_items`, `embed_users`, `UserBatch`, `UserItemModel`: a
  model's item and user embeddings, in eval mode without gradients, as NumPy
  (`multiembed.runs`'s, named here too).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiembed.eval._records import EvalData, EvalRecords, corpus_position, load_eval_data
    from multiembed.runs import UserBatch, UserItemModel, embed_items, embed_users, inference

_LAZY = {
    "EvalData": "multiembed.eval._records",
    "EvalRecords": "multiembed.eval._records",
    "corpus_position": "multiembed.eval._records",
    "load_eval_data": "multiembed.eval._records",
    "UserBatch": "multiembed.runs",
    "UserItemModel": "multiembed.runs",
    "embed_items": "multiembed.runs",
    "embed_users": "multiembed.runs",
    "inference": "multiembed.runs",
}


def __getattr__(name: str) -> Any:
    """The re-exported names, imported when first asked for (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "EvalData",
    "EvalRecords",
    "UserBatch",
    "UserItemModel",
    "corpus_position",
    "embed_items",
    "embed_users",
    "inference",
    "load_eval_data",
]
