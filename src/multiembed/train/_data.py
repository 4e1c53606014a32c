"""From a prepared data directory to training examples.

`training_examples`: the split chosen by ``config.split.protocol`` and the
examples built from its training targets, cached on disk under a key that hashes
everything they depend on. The item table a model embeds items from is
`multiembed.runs.load_item_features`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from multiembed._files import (
    SealError,
    atomic_write_bytes,
    open_sealed_json,
    remove_stale_temps,
    seal_json,
)
from multiembed.config import Config, to_dict
from multiembed.data.examples import FORMAT_VERSION, ExampleStore, build_examples
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ITEMS_FILE,
    USER_TOPICS_FILE,
    positive_mask,
)
from multiembed.data.split import split_events
from multiembed.errors import DataError, InputFileError
from multiembed.runs import prepared_table


def examples_key(config: Config, data_dir: Path) -> str:
    """Cache key of the training examples: split and example settings, format, input files.

    Input files are identified by size and modification time (``prepare``
    rewrites them), so re-preparing a directory invalidates its cache.
    """
    files = {}
    for name in (ENGAGEMENTS_FILE, ITEMS_FILE, USER_TOPICS_FILE):
        path = data_dir / name
        if path.is_file():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    payload = {
        "format_version": FORMAT_VERSION,
        "split": to_dict(config.split),
        "examples": to_dict(config.examples),
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


SPLIT_FILE = "split.json"
"""Beside cached examples: the counts of `EventSplit.summary` for the run's report."""


def training_examples(
    config: Config, data_dir: Path, cache_dir: Path
) -> tuple[ExampleStore, dict[str, int | float]]:
    """The training examples of ``config`` on ``data_dir``, built once into ``cache_dir``.

    The split is `split_events` under ``config.split`` (see `multiembed.data.split`):
    training targets are its ``train`` events with a positive action, histories
    hold its ``history`` events (the builder only looks strictly before each
    target, so held-out targets never leak into training).

    The examples live in ``cache_dir/examples-<key>`` (`examples_key`). A cached
    directory is verified before it is used (``meta.json`` and ``split.json``
    carry their own checksums, ``meta.json`` the CRC-32 of every array file); one
    that is damaged is rebuilt with a warning, never trained on. Temporary
    folders of builds that were killed are removed. Processes sharing the cache
    (parallel runs on one data directory) take turns on a lock file beside the
    examples: one builds, the others open its build.

    Returns:
        The examples and the split's counts (`EventSplit.summary`): engagements,
        positive, training_targets, training_share, validation_targets, test_targets.

    Raises:
        DataError: the split keeps under half of the log for training (unless
            ``split.allow_small_train``), or leaves no example.
    """
    path = cache_dir / f"examples-{examples_key(config, data_dir)}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One process builds; others training on the same data wait, then open its build.
    with _exclusive(cache_dir / f"{path.name}.lock"):
        remove_stale_temps(cache_dir)
        if path.is_dir():
            try:
                return _open_cached(path)
            except (InputFileError, DataError) as err:
                warnings.warn(
                    f"{err}: rebuilding the cached training examples in {path}",
                    UserWarning,
                    stacklevel=2,
                )
        return _build(config, data_dir, path)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (created if needed) across processes."""
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    config: Config, data_dir: Path, path: Path
) -> tuple[ExampleStore, dict[str, int | float]]:
    engagements = prepared_table(data_dir, ENGAGEMENTS_FILE)
    items = prepared_table(data_dir, ITEMS_FILE)
    follows = prepared_table(data_dir, USER_TOPICS_FILE, required=False)
    assert engagements is not None
    assert items is not None
    positive = positive_mask(engagements.column("action"))
    split = split_events(
        engagements.column("user_id"), engagements.column("ts"), positive, config.split
    )
    store = build_examples(
        engagements,
        path,
        seq_len=config.examples.seq_len,
        max_topics=config.examples.max_topics,
        targets=split.train,
        history=split.history,
        items=items,
        user_topics=follows,
        overwrite=True,
    )
    summary = split.summary(positive)
    atomic_write_bytes(path / SPLIT_FILE, seal_json(summary))
    return store, summary


def _open_cached(path: Path) -> tuple[ExampleStore, dict[str, int | float]]:
    """Cached examples and split counts, every byte verified."""
    split_path = path / SPLIT_FILE
    if not split_path.is_file():
        raise InputFileError(split_path, "missing (an interrupted build)")
    try:
        summary = open_sealed_json(split_path.read_bytes())
    except SealError as err:
        raise InputFileError(split_path, str(err)) from err
    return ExampleStore.open(path, verify=True), summary
