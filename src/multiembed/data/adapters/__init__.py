"""Dataset adapters: one per source layout, all producing `RawDataset` for validation.

>>> sorted(ADAPTERS)
['csv', 'lastfm', 'movielens', 'parquet', 'synthetic', 'taobao']
"""

from __future__ import annotations

from pathlib import Path

from multiembed.config import Config
from multiembed.data.adapters.base import Adapter, RawDataset
from multiembed.errors import ConfigError

#: Dataset names accepted by `multiembed prepare --dataset`.
ADAPTERS = ("synthetic", "movielens", "lastfm", "taobao", "csv", "parquet")


def make_adapter(name: str, config: Config, *, mapping_file: Path | None = None) -> Adapter:
    """The adapter for dataset `name`, configured from `config`.

    `mapping_file` (TOML) gives the column mapping of the generic csv/parquet
    adapters.
    """
    if name == "synthetic":
        from multiembed.data.synthetic import SyntheticAdapter

        return SyntheticAdapter(config.synthetic)
    if name == "movielens":
        from multiembed.data.adapters.movielens import MovieLensAdapter

        return MovieLensAdapter(
            rating_threshold=config.data.rating_threshold, batch_rows=config.data.batch_rows
        )
    if name == "lastfm":
        from multiembed.data.adapters.lastfm import LastfmAdapter

        return LastfmAdapter(batch_rows=config.data.batch_rows)
    if name == "taobao":
        from multiembed.data.adapters.taobao import TaobaoAdapter

        return TaobaoAdapter(batch_rows=config.data.batch_rows)
    if name in ("csv", "parquet"):
        from multiembed.data.adapters.generic import load_generic_adapter

        return load_generic_adapter(name, mapping_file, batch_rows=config.data.batch_rows)
    raise ConfigError([f'dataset = "{name}": must be one of {", ".join(ADAPTERS)}'])


__all__ = ["ADAPTERS", "Adapter", "RawDataset", "make_adapter"]
