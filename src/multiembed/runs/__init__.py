"""A trained run as data: the run directory, the model it holds, and inference with it.

What training leaves behind and every consumer of a run (evaluation, serving,
export, the experiments, the simulator) reads, so that none of them needs the
trainer:

- the run directory (``RUN/``: config, weights, item features, frequencies,
  vocabularies, metrics log, and a manifest with checksums written last):
  `write_run` writes it, `load_run` verifies it and returns the model in eval mode
  as a `LoadedRun` (weights of earlier releases renamed by `with_current_names`);
  `check_data_dir` refuses a data directory with another data
  fingerprint than the run's;
- the model of a config: `model_from_config` (implicit), `conditional_from_config`
  (explicit), `trainable_from_config` (by ``model.kind``), `model_label`;
- the item table a model embeds items from: `load_item_features`, `n_topic_ids`;
- batched inference: `inference` (eval mode, no gradient), `embed_users`,
  `embed_items`, `embed_conditioned`, against the `UserItemModel` and
  `ConditionalModel` protocols;
- the metrics log: `METRICS_FILE`, `VALIDATION_K`, `headline`.

Errors: `RunIntegrityError` (a damaged or mismatched run file), a `MultiembedError`.
"""

from multiembed.runs._embed import (
    ConditionalModel,
    UserBatch,
    UserItemModel,
    device_of,
    embed_conditioned,
    embed_items,
    embed_users,
    inference,
)
from multiembed.runs._features import (
    load_item_features,
    n_item_ids,
    n_topic_ids,
    prepared_table,
)
from multiembed.runs._load import LoadedRun, load_run, with_current_names
from multiembed.runs._metrics import HEADLINE_NAMES, METRICS_FILE, VALIDATION_K, headline
from multiembed.runs._model import (
    TrainableModel,
    conditional_from_config,
    model_from_config,
    model_label,
    trainable_from_config,
)
from multiembed.runs._rundir import (
    CONFIG_FILE,
    FEATURES_FILE,
    FREQUENCY_FILE,
    INDEX_DIR,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    check_data_dir,
    data_fingerprint,
    model_version,
    write_config,
    write_manifest,
    write_run,
)
from multiembed.runs.errors import RunIntegrityError

__all__ = [
    "CONFIG_FILE",
    "FEATURES_FILE",
    "FREQUENCY_FILE",
    "HEADLINE_NAMES",
    "INDEX_DIR",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "VALIDATION_K",
    "WEIGHTS_FILE",
    "ConditionalModel",
    "LoadedRun",
    "RunIntegrityError",
    "TrainableModel",
    "UserBatch",
    "UserItemModel",
    "check_data_dir",
    "conditional_from_config",
    "data_fingerprint",
    "device_of",
    "embed_conditioned",
    "embed_items",
    "embed_users",
    "headline",
    "inference",
    "load_item_features",
    "load_run",
    "model_from_config",
    "model_label",
    "model_version",
    "n_item_ids",
    "n_topic_ids",
    "prepared_table",
    "trainable_from_config",
    "with_current_names",
    "write_config",
    "write_manifest",
    "write_run",
]
