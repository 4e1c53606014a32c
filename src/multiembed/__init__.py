"""multiembed: multi-embedding retrieval conditioned on implicit and explicit user interests.

A two-tower retriever that gives each user several embeddings: implicit interests
mined from the engagement sequence by a Differentiable Clustering Module, and
explicit interests (followed topics) through Conditional Retrieval. Each
embedding is searched in an item index with its own budget and the results are
merged round-robin with deduplication.
"""

from multiembed.errors import ConfigError, DataError, InputFileError, MultiembedError

__version__ = "0.1.0"  # the version in pyproject.toml, which a test keeps it equal to

__all__ = ["ConfigError", "DataError", "InputFileError", "MultiembedError", "__version__"]
