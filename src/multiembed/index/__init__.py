"""Item index: one `VectorIndex` protocol, an exact backend and a FAISS adapter.

- `VectorIndex`: ``add(ids [C], vectors [C, D])``, batched
  ``search(queries [Q, D], k) -> Hits [Q, k]`` by inner product, ``save`` /
  ``load``, ``size``, ``dim``. Short rows are padded with id ``-1`` and score
  ``-inf``; `Hits.row` strips the padding into a `Ranked` list.
- `ExactIndex`: brute force, ties broken by smaller id; the reference.
- `FaissIndex`: any FAISS factory string (``"Flat"``, ``"HNSW32"``,
  ``"IVF256,Flat"``, ``"IVF1024,PQ16"``) with inner product, explicit
  ``ef_search`` / ``nprobe`` and thread count; a request's HNSW calls of different
  depths run side by side on its threads (`CONCURRENT_ROWS`).
- `ItemTopics` and `TopicIndex`: topic-restricted search for explicit
  (topic-conditioned) embeddings: exact scans of contiguous per-topic blocks,
  ANN plus post-filter for huge topics.
- Saved indexes carry a ``manifest.json`` (`MANIFEST_NAME`) with SHA-256 checksums and the model
  version; `load_index` (or ``Backend.load``) refuses a damaged file or another
  model version with `IndexIntegrityError`.

Shapes: ``C`` corpus items, ``D`` dimension, ``Q`` queries, ``k`` depth,
``T`` topics, ``M`` (item, topic) pairs.
"""

from multiembed.index._exact import ExactIndex
from multiembed.index._faiss import CONCURRENT_ROWS, FaissIndex, faiss_threads
from multiembed.index._hits import Hits, Ranked, topk_by_score
from multiembed.index._load import load_index
from multiembed.index._protocol import VectorIndex
from multiembed.index._store import MANIFEST_NAME, FileEntry, Manifest, read_manifest
from multiembed.index._topic_index import ITEMS_PER_DEPTH, TopicHits, TopicIndex
from multiembed.index._topics import ItemTopics
from multiembed.index.errors import IndexInputError, IndexIntegrityError

__all__ = [
    "CONCURRENT_ROWS",
    "ITEMS_PER_DEPTH",
    "MANIFEST_NAME",
    "ExactIndex",
    "FaissIndex",
    "FileEntry",
    "Hits",
    "IndexInputError",
    "IndexIntegrityError",
    "ItemTopics",
    "Manifest",
    "Ranked",
    "TopicHits",
    "TopicIndex",
    "VectorIndex",
    "faiss_threads",
    "load_index",
    "read_manifest",
    "topk_by_score",
]
