"""Data for training: item features from items.parquet, examples per split protocol, TOML."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from multiembed.config import Config, ModelConfig, TrainConfig, parse, to_dict
from multiembed.data.split import Role, comirec_split, time_split
from multiembed.runs._toml import dumps
from multiembed.train import load_item_features, training_examples
from multiembed.train._data import examples_key
from tests.train.train_helpers import tiny_config


def test_item_features_match_items_table_row_by_row(tiny_data: Path):
    items = pq.read_table(tiny_data / "items.parquet").to_pylist()
    features = load_item_features(tiny_data)
    features.check()
    assert features.n_items == len(items)
    for row in items[:300]:
        i = row["item_id"]
        present = row["vector"] is not None
        assert bool(features.vector_present[i]) == present
        if present:
            np.testing.assert_array_equal(features.vector[i].numpy(), np.float32(row["vector"]))
        codes = [-1 if c is None else c for c in (row["categorical"] or [None, None])]
        assert features.codes[i].tolist() == codes
        topics = features.topics[i].tolist()
        assert topics[: len(row["topics"])] == row["topics"]
        assert all(t == -1 for t in topics[len(row["topics"]) :])


def test_time_protocol_targets_are_the_training_window(tiny_data: Path):
    config = dataclasses.replace(
        tiny_config(), split=dataclasses.replace(tiny_config().split, protocol="time")
    )
    store, _ = training_examples(config, tiny_data, tiny_data / ".cache")
    engagements = pq.read_table(tiny_data / "engagements.parquet")
    split = time_split(engagements.column("ts"), train_days=14.0, eval_days=1.0)
    assert split.train[store.event].all()
    ts = engagements.column("ts").to_numpy()
    # histories only hold events strictly before the target: never the eval window
    assert (store.target_ts <= split.eval_start).all()
    assert np.isin(store.event, np.flatnonzero(split.train)).all()
    assert ts[store.event].tolist() == store.target_ts.tolist()


def test_comirec_protocol_trains_on_training_users_only(tiny_data: Path):
    config = dataclasses.replace(
        tiny_config(), split=dataclasses.replace(tiny_config().split, protocol="comirec")
    )
    store, _ = training_examples(config, tiny_data, tiny_data / ".cache")
    engagements = pq.read_table(tiny_data / "engagements.parquet")
    roles = comirec_split(engagements.column("user_id"), engagements.column("ts"), seed=0)
    train_users = np.unique(engagements.column("user_id").to_numpy()[roles == Role.TRAIN])
    assert np.isin(store.user, train_users).all()
    assert (roles[store.event] == Role.TRAIN).all()


def test_examples_are_cached_by_key(tiny_data: Path):
    config = tiny_config()
    first, counts = training_examples(config, tiny_data, tiny_data / ".cache")
    again, counts_again = training_examples(config, tiny_data, tiny_data / ".cache")
    assert counts == counts_again
    assert first.path == again.path
    longer = parse(Config, {**to_dict(config), "examples": {"seq_len": 13}})
    assert examples_key(longer, tiny_data) != examples_key(config, tiny_data)
    assert examples_key(dataclasses.replace(config, train=TrainConfig(lr=1.0)), tiny_data) == (
        examples_key(config, tiny_data)
    )


def test_toml_round_trip_of_a_resolved_config():
    config = parse(
        Config,
        {
            "model": to_dict(ModelConfig(name="mind", tau=0.25, temperature=1e-6)),
            "train": {"lr": 3.5e-4, "weight_decay": 0.0},
            "eval": {"ks": [5, 10]},
        },
    )
    assert parse(Config, tomllib.loads(dumps(to_dict(config)))) == config


def test_toml_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match=r"cannot write t\.x = \{"):
        dumps({"t": {"x": {"nested": 1}}})
