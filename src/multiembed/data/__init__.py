"""Data layer: canonical schema, validation with quarantine, adapters, splits, examples.

The flow: an adapter reads a source into raw tables, `prepare` validates them
into canonical Parquet tables (bad rows quarantined, vocabularies saved),
`split` chooses training and evaluation events, and `examples` builds the
memory-mapped training examples that `ExampleDataset` serves to PyTorch.
Torch-dependent pieces (`multiembed.data.examples`,
`multiembed.data.frequency`) are imported from their modules.
"""

from multiembed.data.prepare import prepare, prepare_dataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.split import Role, TimeSplit, comirec_split, time_split
from multiembed.data.vocab import Vocab

__all__ = [
    "Quarantine",
    "Role",
    "TimeSplit",
    "Vocab",
    "comirec_split",
    "prepare",
    "prepare_dataset",
    "time_split",
]
