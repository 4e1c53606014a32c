"""Thread settings of the serving process, applied before FAISS or NumPy load.

OpenMP's default active spin-wait makes FAISS search threads on a few shared
cores stall for whole scheduler quanta (measured: 10x slower searches on two
shared cores), and a multi-threaded BLAS fights the request threads for the
same cores. The service runs several requests at once, each searching with one
thread, so both are pinned here. Values already in the environment win.
"""

from __future__ import annotations

import os

SERVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}


def set_serving_threads() -> None:
    """Set `SERVE_ENV` (without overriding the caller's values); call before faiss/numpy load."""
    for key, value in SERVE_ENV.items():
        os.environ.setdefault(key, value)
