"""Serving: a bundle per model version, a pure request function, and the HTTP app.

- `build_bundle(run_dir, data_dir)`: load a trained run, embed every item, build
  (or load and verify) the item and topic indexes under ``RUN/index/<factory>/``;
  a `ServingBundle` is immutable; ``user_tower=`` a ``multiembed export-onnx`` folder
  embeds request histories with onnxruntime (`OnnxUserTower`).
- `retrieve(bundle, RetrieveRequest(...))`: user tower, topic sampling, the
  retrieval plan, raw ids with provenance (`Served`, columnar; `Served.rows`
  for display).
- `create_app(bundle_loader, token=..., limits=ServeLimits())`: the FastAPI app
  (``POST /retrieve``, ``GET /healthz``, ``/readyz``, ``/version``,
  ``POST /admin/reload``) with bearer-token auth, limits and atomic hot swap;
  ``uvicorn.run(app, **server_options(limits))`` adds the connection timeouts.

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` and
``OPENBLAS_NUM_THREADS=1`` when unset (see `set_serving_threads`); for them to
take effect, import it before NumPy or FAISS are loaded.
"""

from multiembed.serve._threads import set_serving_threads

set_serving_threads()

from multiembed.serve._app import BundleSlot, create_app  # noqa: E402
from multiembed.serve._bundle import (  # noqa: E402
    ServingBundle,
    ServingVocab,
    UserHistories,
    build_bundle,
    index_dir_for,
    with_user_tower,
)
from multiembed.serve._limits import ServeLimits  # noqa: E402
from multiembed.serve._retrieve import (  # noqa: E402
    DEFAULT_BUDGET,
    CandidateTopics,
    RetrieveRequest,
    Served,
    ServedCandidate,
    SourceLabel,
    retrieve,
)
from multiembed.serve._server import server_options  # noqa: E402
from multiembed.serve._tower import OnnxUserTower  # noqa: E402
from multiembed.serve.errors import ServeInputError  # noqa: E402

__all__ = [
    "DEFAULT_BUDGET",
    "BundleSlot",
    "CandidateTopics",
    "OnnxUserTower",
    "RetrieveRequest",
    "ServeInputError",
    "ServeLimits",
    "Served",
    "ServedCandidate",
    "ServingBundle",
    "ServingVocab",
    "SourceLabel",
    "UserHistories",
    "build_bundle",
    "create_app",
    "index_dir_for",
    "retrieve",
    "server_options",
    "set_serving_threads",
    "with_user_tower",
]
