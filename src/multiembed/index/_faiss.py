"""The FAISS backend: any inner-product index from a factory string, ids kept by IndexIDMap2."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from multiembed.index._checks import (
    check_depths,
    check_ids,
    check_int,
    check_new_ids,
    check_vectors,
)
from multiembed.index._hits import PAD_ID, PAD_SCORE, Hits, empty_hits
from multiembed.index._store import (
    FileEntry,
    Manifest,
    check_loaded,
    save_index,
    verify,
    write_atomic_path,
)
from multiembed.index.errors import IndexInputError, IndexIntegrityError

_FILE = "index.faiss"
_SETTINGS = ("ef_search", "ef_construction", "nprobe", "train_size", "seed")  # saved as params

CONCURRENT_ROWS = 32
"""HNSW searches with `depths` of at most this many rows (a request's queries) run their
calls side by side, one per thread, when the index has several threads; larger batches
let FAISS split each call's rows over the threads instead (`FaissIndex.search`)."""

_workers: dict[int, ThreadPoolExecutor] = {}
_workers_lock = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of `n` threads for side-by-side FAISS calls (FAISS releases the
    GIL while it searches), made on first use."""
    with _workers_lock:
        if n not in _workers:
            _workers[n] = ThreadPoolExecutor(n, thread_name_prefix="faiss")
        return _workers[n]


def _forget_workers() -> None:
    """In a forked child: the parent's pools have no threads there (work sent to them would
    wait forever), and its lock may have been held at the fork: start afresh."""
    global _workers_lock
    _workers.clear()
    _workers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run FAISS calls on `n` OpenMP threads, restoring the caller's setting afterwards.

    OpenMP's thread count is per calling thread, so concurrent callers do not
    disturb each other.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissIndex:
    """A FAISS inner-product index built from a factory string.

    The factory string is FAISS's own (``"Flat"``, ``"HNSW32"``, ``"IVF256,Flat"``,
    ``"IVF1024,PQ16"`` ...); it is wrapped as ``"IDMap2," + factory`` so the
    caller's int64 ids come back from searches, with ``METRIC_INNER_PRODUCT``.
    Indexes that need training (IVF, PQ) are trained on the first `add`, on at
    most `train_size` of its vectors sampled with `seed` (or call `train`).

    Args:
        dim: `D`.
        factory: FAISS factory string, without ``IDMap``.
        ef_search: HNSW search depth (``efSearch``); a search for ``k`` hits uses
            ``max(ef_search, k)``, since FAISS's HNSW returns fewer than ``k`` hits when
            ``k > efSearch``. Used by HNSW indexes only.
        ef_construction: HNSW build depth (``efConstruction``). HNSW only.
        nprobe: inverted lists visited per query. IVF indexes only.
        threads: OpenMP threads for build and search; default
            ``faiss.omp_get_max_threads()`` when the index is created. A batched
            search parallelises over queries; a build over items (an HNSW build is
            deterministic only with one thread).
        train_size: most vectors used to train an IVF/PQ index.
        seed: seed of that training sample.

    `search_settings` reports the settings that apply to this factory.

    >>> index = FaissIndex(dim=2, factory="Flat", threads=1)
    >>> index.add(np.array([5, 9]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> index.search(np.array([[0.2, 0.9]]), k=3).ids.tolist()
    [[9, 5, -1]]
    """

    backend = "faiss"

    def __init__(
        self,
        dim: int,
        factory: str = "HNSW32",
        *,
        ef_search: int = 128,
        ef_construction: int = 40,
        nprobe: int = 16,
        threads: int | None = None,
        train_size: int = 100_000,
        seed: int = 0,
    ) -> None:
        where = "FaissIndex"
        self._dim = check_int(where, "dim", dim)
        if not isinstance(factory, str) or "IDMap" in factory or not factory.strip():
            raise IndexInputError(
                where, "factory", "a FAISS factory string without IDMap", repr(factory)
            )
        self.factory = factory
        self.threads = check_int(
            where, "threads", faiss.omp_get_max_threads() if threads is None else threads
        )
        self.train_size = check_int(where, "train_size", train_size)
        self.seed = int(seed)
        try:
            index = faiss.index_factory(self._dim, f"IDMap2,{factory}", faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise IndexInputError(
                where, "factory", "a FAISS factory string", f"{factory!r} ({_first_line(err)})"
            ) from err
        self._index: Any = index  # faiss.IndexIDMap2
        self.ef_construction = check_int(where, "ef_construction", ef_construction)
        hnsw = self._hnsw()
        if hnsw is not None:
            hnsw.efConstruction = self.ef_construction
        self.ef_search = ef_search
        self.nprobe = nprobe

    # ----------------------------------------------------------------- settings
    def _hnsw(self) -> Any:
        sub = faiss.downcast_index(self._index.index)
        return sub.hnsw if isinstance(sub, faiss.IndexHNSW) else None

    def _ivf(self) -> Any:
        return faiss.try_extract_index_ivf(self._index.index)

    @property
    def ef_search(self) -> int:
        """HNSW ``efSearch`` (stored for other factories, where it does not apply)."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = check_int("FaissIndex", "ef_search", value)
        hnsw = self._hnsw()
        if hnsw is not None:
            hnsw.efSearch = self._ef_search

    @property
    def nprobe(self) -> int:
        """IVF ``nprobe`` (stored for other factories, where it does not apply)."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = check_int("FaissIndex", "nprobe", value)
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = self._nprobe

    @property
    def search_settings(self) -> dict[str, int]:
        """The search settings that apply to this factory, e.g. ``{"efSearch": 128}``."""
        out: dict[str, int] = {}
        if self._hnsw() is not None:
            out["efSearch"] = self._ef_search
        ivf = self._ivf()
        if ivf is not None:
            out["nprobe"] = min(self._nprobe, int(ivf.nlist))
        return out

    # --------------------------------------------------------------- protocol
    @property
    def dim(self) -> int:
        """`D`."""
        return self._dim

    @property
    def size(self) -> int:
        """`C`."""
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        """False for an IVF/PQ index before `train` (or its first `add`)."""
        return bool(self._index.is_trained)

    def ids(self) -> np.ndarray:
        """``[C]`` int64 ids in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def train(self, vectors: np.ndarray) -> None:
        """Train the coarse quantiser / codebooks on `vectors` ``[N, D]`` (at most `train_size`)."""
        vectors = check_vectors("FaissIndex.train", "vectors", vectors, self._dim)
        if vectors.shape[0] > self.train_size:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(vectors.shape[0], self.train_size, replace=False))
            vectors = vectors[rows]
        try:
            with faiss_threads(self.threads):
                self._index.train(vectors)
        except RuntimeError as err:
            raise IndexInputError(
                "FaissIndex.train",
                "vectors",
                f"enough training vectors for {self.factory!r}",
                f"{vectors.shape[0]} ({_first_line(err)})",
            ) from err

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `vectors` ``[C, D]`` under distinct new `ids` ``[C]``, training first if needed."""
        vectors = check_vectors("FaissIndex.add", "vectors", vectors, self._dim)
        ids = check_ids("FaissIndex.add", ids, vectors.shape[0])
        if self.size:
            check_new_ids("FaissIndex.add", ids, self.ids())
        if not self.is_trained:
            self.train(vectors)
        with faiss_threads(self.threads):
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids))

    def search(self, queries: np.ndarray, k: int, *, depths: np.ndarray | None = None) -> Hits:
        """Approximate top-`k` of `queries` ``[Q, D]`` in one batched call: `Hits` ``[Q, k]``.

        Rows the index cannot fill (fewer than `k` items, or too few reached by
        the graph / probed lists) are padded with ``-1`` / ``-inf``.

        `depths` (``[Q]``, each at most `k`) says row ``q`` needs only its first
        ``depths[q]`` hits. HNSW then gives each row the search depth of its own
        need, ``efSearch = max(ef_search, depths[q])`` (the rule of a search without
        `depths` at ``k = depths[q]``), instead of searching every row to `k`: the
        rows within `ef_search` share one FAISS call, and each deeper depth gets a
        call of its own. With several threads, the calls of up to `CONCURRENT_ROWS`
        rows (one request's) run side by side, one thread each, the longest first
        (the same hits as one thread gives); a larger batch shares one call at the
        largest depth among its deeper rows, which FAISS splits over the threads.
        Rows may end early (padded) beyond their own depth. Other factories search
        every row to `k`.
        """
        where = "FaissIndex.search"
        queries = check_vectors(where, "queries", queries, self._dim)
        k = check_int(where, "k", k)
        depths = check_depths(where, depths, queries.shape[0], k)
        if self.size == 0:  # an untrained IVF index cannot search at all
            return empty_hits(queries.shape[0], k)
        if self._hnsw() is None:
            return self._search(queries, k, None)
        if depths is None:
            return self._search(queries, k, max(self._ef_search, k))
        out = empty_hits(queries.shape[0], k)
        side_by_side = self.threads > 1 and queries.shape[0] <= CONCURRENT_ROWS
        groups = _ef_groups(depths, self._ef_search, 1 if side_by_side else self.threads)

        def run(calls: list[np.ndarray], threads: int) -> None:
            for rows in calls:
                kk = int(depths[rows].max())
                got = self._search(queries[rows], kk, max(self._ef_search, kk), threads)
                out.ids[rows, :kk], out.scores[rows, :kk] = got.ids, got.scores

        if not side_by_side or len(groups) == 1:
            run(groups, self.threads)
            return out
        work = [max(self._ef_search, int(depths[g].max())) * g.size for g in groups]
        mine, *others = [[groups[i] for i in s] for s in _shares(work, self.threads)]
        pending = [_executor(self.threads - 1).submit(run, calls, 1) for calls in others]
        try:
            run(mine, 1)
        finally:
            wait(pending)  # they write into `out`: never return (or raise) while they run
        for future in pending:
            future.result()  # a worker's error is raised here
        return out

    def _search(
        self, queries: np.ndarray, k: int, ef: int | None, threads: int | None = None
    ) -> Hits:
        # FAISS's HNSW returns fewer than k hits when k > efSearch: callers pass ef >= k.
        params = None if ef is None else faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        with faiss_threads(self.threads if threads is None else threads):
            scores, ids = self._index.search(queries, k, params=params)
        ids = ids.astype(np.int64, copy=False)
        scores = scores.astype(np.float32, copy=False)
        scores[ids == PAD_ID] = PAD_SCORE
        return Hits(ids, scores)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, *, model_version: str) -> Manifest:
        """Write ``index.faiss`` (``faiss.write_index``) and the manifest into `directory`."""

        def write(path: Path) -> dict[str, FileEntry]:
            return {
                _FILE: write_atomic_path(
                    path, _FILE, lambda p: faiss.write_index(self._index, str(p))
                )
            }

        params = {n: getattr(self, n) for n in _SETTINGS}
        params |= {"factory": self.factory, "metric": "inner_product"}
        return save_index(directory, self, model_version, write, params)

    @classmethod
    def load(
        cls, directory: str | Path, *, expected_model_version: str, threads: int | None = None
    ) -> FaissIndex:
        """Read an index written by `save`, after `verify` accepts every file.

        Search settings come from the manifest; `threads` is chosen anew for this
        machine (default ``faiss.omp_get_max_threads()``).

        Raises:
            IndexIntegrityError: missing, truncated or altered file; another model
                version; a manifest whose parameters do not describe the file.
        """
        path = Path(directory)
        manifest = verify(
            path, backend=cls.backend, expected_model_version=expected_model_version, files=(_FILE,)
        )
        p = manifest.params
        try:
            index = cls(manifest.dim, p["factory"], threads=threads, **{n: p[n] for n in _SETTINGS})
        except (KeyError, IndexInputError) as err:
            raise IndexIntegrityError(
                path / "manifest.json", f"bad FAISS parameters: {err}"
            ) from err
        stored = faiss.read_index(str(path / _FILE))
        if not isinstance(stored, faiss.IndexIDMap2):
            raise IndexIntegrityError(
                path / _FILE,
                "not an IDMap2 index",
                expected="IndexIDMap2",
                got=type(stored).__name__,
            )
        check_loaded(path, manifest, count=int(stored.ntotal), dim=int(stored.d))
        index._index = stored
        index.ef_search = index._ef_search  # re-apply the settings to the loaded object
        index.nprobe = index._nprobe
        return index


def _ef_groups(depths: np.ndarray, ef_search: int, threads: int) -> list[np.ndarray]:
    """Rows of `depths` ``[Q]`` that share one HNSW call, shallowest group first.

    Rows within `ef_search` share a call at ``efSearch = ef_search``. A deeper row
    needs ``efSearch = depth``: on one thread each gets its own call (a row
    searched deeper than its need only costs more), on several threads they
    share one call at their largest depth (FAISS splits a call's rows over its
    threads, so a one-row call would leave the others idle).

    >>> [g.tolist() for g in _ef_groups(np.array([300, 20, 192, 250, 300]), 192, threads=1)]
    [[1, 2], [3], [0, 4]]
    >>> [g.tolist() for g in _ef_groups(np.array([300, 20, 192, 250, 300]), 192, threads=2)]
    [[1, 2], [0, 3, 4]]
    """
    ef = np.maximum(depths, ef_search)  # [Q] each row's own need
    if threads > 1:
        ef = np.where(ef > ef_search, ef.max(), ef_search)
    values, group = np.unique(ef, return_inverse=True)
    return [np.flatnonzero(group == g) for g in range(values.size)]


def _shares(work: list[int], n: int) -> list[list[int]]:
    """Calls of `work` (their efSearch x rows) dealt to `n` threads, the longest first,
    each to the least loaded thread (longest processing time first); empty shares dropped.

    >>> _shares([128, 940, 300, 520], 2)
    [[1], [3, 2, 0]]
    """
    shares: list[list[int]] = [[] for _ in range(n)]
    load = [0] * n
    for i in sorted(range(len(work)), key=lambda i: -work[i]):
        t = load.index(min(load))
        shares[t].append(i)
        load[t] += work[i]
    return [s for s in shares if s]


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__
