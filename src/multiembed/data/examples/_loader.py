"""Serving stored examples to PyTorch: a map-style Dataset and a seeded batch order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from multiembed.data.examples._format import Example
from multiembed.data.examples._store import ExampleStore


class ExampleDataset(Dataset[Example]):
    """Map-style dataset over an `ExampleStore`, returning `Example` tuples of tensors.

    ``dataset[i]`` gives one example (``history [L]``, ...); ``dataset[indices]``
    with a 1-D sequence or array of indices gives a batch (``history [B, L]``, ...),
    which is how `make_loader` reads: one memory-map gather per batch.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import pyarrow as pa
        >>> from multiembed.data.examples import build_examples
        >>> eng = pa.table({"user_id": [0, 0, 1], "item_id": [4, 5, 6], "ts": [1, 2, 1],
        ...                 "action": ["click"] * 3})
        >>> out = Path(tempfile.mkdtemp()) / "ex"
        >>> ds = ExampleDataset(build_examples(eng, out, seq_len=2, max_topics=1))
        >>> len(ds), ds[1].history.tolist(), ds[[1, 2]].target.tolist()
        (3, [-1, 4], [5, 6])
    """

    def __init__(self, store: ExampleStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | Tensor) -> Example:
        if isinstance(index, Tensor):
            index = index.numpy()
        if not isinstance(index, int | np.integer):
            index = np.asarray(index, dtype=np.int64)
            if index.ndim != 1:
                raise ValueError(
                    f"ExampleDataset: expected an int or indices of shape [B], "
                    f"got shape {list(index.shape)}"
                )
        arrays = (getattr(self.store, name) for name in Example._fields)
        return Example._make(
            None if a is None else torch.from_numpy(np.array(a[index])) for a in arrays
        )


class EpochBatchSampler(Sampler[np.ndarray]):
    """Batches of example indices in an order fixed by ``(seed, epoch)``.

    The order is ``numpy.random.default_rng((seed, epoch)).permutation(n)`` (or
    ``0 .. n-1`` without shuffling), cut into batches of ``batch_size``;
    ``start_batch`` skips the first batches, so a resumed run continues with
    exactly the batches it had not seen.

    Example:
        >>> [b.tolist() for b in EpochBatchSampler(5, batch_size=2, seed=0, shuffle=False)]
        [[0, 1], [2, 3], [4]]
        >>> a = list(EpochBatchSampler(5, batch_size=2, seed=3, epoch=1))
        >>> b = list(EpochBatchSampler(5, batch_size=2, seed=3, epoch=1, start_batch=1))
        >>> [x.tolist() for x in a[1:]] == [x.tolist() for x in b]
        True
    """

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        start_batch: int = 0,
    ) -> None:
        where = "EpochBatchSampler"
        for name, value, low in (
            ("n", n, 0),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
            ("epoch", epoch, 0),
            ("start_batch", start_batch, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{where}: expected {name} an int >= {low}, got {value!r}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.shuffle, self.drop_last, self.start_batch = shuffle, drop_last, start_batch

    def _n_batches(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __len__(self) -> int:
        return max(0, self._n_batches() - self.start_batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        else:
            order = np.arange(self.n, dtype=np.int64)
        for b in range(self.start_batch, self._n_batches()):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]


def make_loader(
    dataset: ExampleDataset,
    *,
    batch_size: int,
    seed: int,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    start_batch: int = 0,
    num_workers: int = 0,
) -> DataLoader[Example]:
    """A DataLoader yielding batched `Example`s in the order of `EpochBatchSampler`.

    The same ``(seed, epoch)`` gives the same batches, in the same order, with
    any ``num_workers``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import pyarrow as pa
        >>> from multiembed.data.examples import build_examples
        >>> eng = pa.table({"user_id": [0] * 5, "item_id": [0, 1, 2, 3, 4], "ts": [1, 2, 3, 4, 5],
        ...                 "action": ["click"] * 5})
        >>> out = Path(tempfile.mkdtemp()) / "ex"
        >>> ds = ExampleDataset(build_examples(eng, out, seq_len=2, max_topics=1))
        >>> [b.target.tolist() for b in make_loader(ds, batch_size=2, seed=0, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    sampler = EpochBatchSampler(
        len(dataset),
        batch_size=batch_size,
        seed=seed,
        epoch=epoch,
        shuffle=shuffle,
        drop_last=drop_last,
        start_batch=start_batch,
    )
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, collate_fn=_as_is, num_workers=num_workers
    )


def _as_is(batch: Any) -> Any:
    """Collate function for batches the dataset already assembled (picklable for workers)."""
    return batch
