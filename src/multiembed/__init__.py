"""multiembed: multi-embedding retrieval conditioned on implicit and explicit user interests.

A two-tower retriever that gives each user several embeddings: implicit interests
mined from the engagement sequence by a Differentiable Clustering Module, and
explicit interests (followed topics) through Conditional Retrieval. Each
embedding is searched in an item index with its own budget and the results are
merged round-robin with deduplication.

The Python API is `multiembed.api` (``prepare``, ``train``, ``evaluate``,
``export``, ``retrieve``), imported on first use so that ``import multiembed``
loads neither torch nor the data stack:

>>> import multiembed
>>> multiembed.api.__all__[-5:]
['evaluate', 'export', 'prepare', 'retrieve', 'train']

The functions keep their module's name: ``multiembed.train``, ``multiembed.export``
and ``multiembed.retrieve`` are the packages that implement them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from multiembed.errors import ConfigError, DataError, InputFileError, MultiembedError

if TYPE_CHECKING:
    from multiembed import api

__version__ = "0.1.0"  # the version in pyproject.toml, which a test keeps it equal to


def __getattr__(name: str) -> Any:
    """`api`, imported when first asked for (PEP 562)."""
    if name == "api":
        return importlib.import_module("multiembed.api")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConfigError", "DataError", "InputFileError", "MultiembedError", "__version__", "api"]
