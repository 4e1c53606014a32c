"""Thread settings of every command's process, set before NumPy, FAISS or torch load.

On a few shared cores, OpenMP's default active spin-wait stalls FAISS and torch
threads for whole scheduler quanta, and a multi-threaded BLAS fights the
command's own threads for the same cores. Every command runs with the settings
the HTTP service uses (`multiembed.serve.set_serving_threads`); values already in
the environment win. They are set at the entry point, not at import, so that
importing the command line changes nothing in the importer's process.
"""

from __future__ import annotations

import os

THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}


def set_process_threads() -> None:
    """Set `THREAD_ENV` without overriding the caller's values."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
