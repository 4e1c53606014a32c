"""Offline evaluation: the paper's HR@K protocol, served lists, ComiRec metrics, segments.

- `multiembed.eval.metrics`: the metric functions, pure NumPy (no torch import).
- `multiembed.eval.evaluate`: `evaluate(run_dir, data_dir)` writes ``RUN/eval.json``;
  `evaluate_model` does the work on models in memory (an implicit `UserItemModel`,
  a `ConditionalModel`, or both); `summarize_seeds` gives mean and standard
  deviation over several seeds' reports.

Both are imported from their modules, so that the metrics stay free of torch.
For other packages that rank with their own protocol, this package also exposes
(imported on first use, for the same reason):

- `load_eval_data`, `EvalData`, `EvalRecords`: the evaluation records (histories,
  targets, per-user requests) and the corpus of a prepared data directory;
- `inference`, `embed_items`, `embed_users`, `UserBatch`, `UserItemModel`: a
  model's item and user embeddings, in eval mode without gradients, as NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiembed.eval._embed import (
        UserBatch,
        UserItemModel,
        embed_items,
        embed_users,
        inference,
    )
    from multiembed.eval._records import EvalData, EvalRecords, load_eval_data

_LAZY = {
    "EvalData": "multiembed.eval._records",
    "EvalRecords": "multiembed.eval._records",
    "load_eval_data": "multiembed.eval._records",
    "UserBatch": "multiembed.eval._embed",
    "UserItemModel": "multiembed.eval._embed",
    "embed_items": "multiembed.eval._embed",
    "embed_users": "multiembed.eval._embed",
    "inference": "multiembed.eval._embed",
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
    "embed_items",
    "embed_users",
    "inference",
    "load_eval_data",
]
