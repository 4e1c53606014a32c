"""Offline evaluation: the paper's HR@K protocol, served lists, ComiRec metrics, segments.

- `multiembed.eval.metrics`: the metric functions, pure NumPy (no torch import).
- `multiembed.eval.evaluate`: `evaluate(run_dir, data_dir)` writes ``RUN/eval.json``;
  `evaluate_model` does the work on models in memory (an implicit `UserItemModel`,
  a `ConditionalModel`, or both); `summarize_seeds` gives mean and standard
  deviation over several seeds' reports.

Both are imported from their modules, so that the metrics stay free of torch.
"""
