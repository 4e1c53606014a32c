"""`bench/serve_latency.py`: whole requests timed, user tower included; lines name the machine."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
TOWER_S = 0.03  # what the slowed tower adds to every request


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # the script imports its helper modules from bench/
    try:
        spec = importlib.util.spec_from_file_location("serve_latency", BENCH / "serve_latency.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["serve_latency"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("serve_latency", None)
        sys.path.remove(str(BENCH))


TINY = [
    "--items", "2000", "--clusters", "20", "--broad", "3", "--requests", "5", "--warmup", "1",
    "--recall-requests", "3", "--ivf", "IVF8,Flat", "--exact-max-items", "200", "--threads", "1",
]  # fmt: skip


def test_every_line_names_the_machine_and_each_request_runs_the_tower(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(TINY)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line.get("study", line.get("mode")) for line in lines} == {
        "index_recall",
        "topic_search",
        "multi",
        "single",
    }
    for line in lines:
        assert isinstance(line["cpu"], str), line
        assert line["cpu"], line
        assert line["threads"] == {"search": 1, "torch": 1}, line
        assert isinstance(line["load_1m"], float), line
        assert line["load_1m"] >= 0, line
    modes = [line for line in lines if "mode" in line]
    assert len(modes) == 8  # two indexes x two towers x two modes
    assert sorted(line["tower"] for line in modes) == ["onnx"] * 4 + ["torch"] * 4
    for line in modes:
        assert line["stages"]["user_tower"] > 0, line
        assert line["stages_p90"]["user_tower"] > 0, line
        assert line["p50_ms"] >= line["stages"]["user_tower"], line
        assert line["requests"] == 5, line
        assert line["candidates_min"] == 1000, line
        assert line["index_distances_mean"] > 0, line  # HNSW and IVF both count


def small_serving(bench: ModuleType) -> tuple[Any, Any, Any]:
    """A 2,000-item world, its untrained models and a `Serving` over an exact index."""
    import latency_world as lw

    world = lw.make_world(2000, 16, 20, 3, seed=0)
    models = lw.default_models(world)
    index = bench.ExactIndex(models.vectors.shape[1])
    index.add(world.ids, models.vectors)
    serving = bench.Serving(
        models=models,
        index=index,
        topic_index=bench.TopicIndex.build(world.ids, models.vectors, world.item_topics),
        popular=bench.Ranked(world.ids[:100], np.linspace(1, 0, 100, dtype=np.float32)),
        centroids=bench.topic_centroids(world.item_topics, models.vectors, world.n_topics),
        settings=bench.PlanSettings(total=200, k_ex=5),
    )
    return world, models, serving


def slow(model: Any, calls: list[int]) -> Any:
    """`model.embed_users` that sleeps `TOWER_S` first and counts its calls."""
    inner = model.embed_users

    def embed_users(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(TOWER_S)
        return inner(*args, **kwargs)

    return embed_users


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_the_timed_request_includes_the_user_tower(
    bench: ModuleType, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latency_world as lw

    world, _, serving = small_serving(bench)
    calls: list[int] = []
    model = serving.model(mode)
    monkeypatch.setattr(model, "embed_users", slow(model, calls))
    users = lw.make_users(world, 4, seq_len=50, interests=(2, 6), seed=1)
    timed = bench.time_requests(mode, users, serving)
    assert len(calls) == len(users)  # the tower ran once per request
    for t in timed:
        assert t.stages_ms["user_tower"] >= TOWER_S * 1e3
        assert t.wall_ms >= t.stages_ms["user_tower"]  # inside the timed region
        assert t.candidates == 200
    assert ("explicit_queries" in timed[0].stages_ms) == (mode == "multi")


def test_the_onnx_tower_replaces_torch_in_the_timed_request(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import latency_world as lw

    world, models, serving = small_serving(bench)
    users = lw.make_users(world, 4, seq_len=50, interests=(2, 6), seed=1)
    with_torch = {mode: bench.serve(mode, users[0], serving)[0] for mode in bench.MODES}
    serving.graphs = bench.onnx_towers(models, bench.Config(), 1, tmp_path)
    for mode in bench.MODES:
        monkeypatch.setattr(serving.model(mode), "embed_users", None)  # PyTorch must not run
        res, stages = bench.serve(mode, users[0], serving)
        assert stages["user_tower"] > 0
        np.testing.assert_array_equal(res.candidates.ids, with_torch[mode].candidates.ids)


def test_each_request_counts_the_distances_its_own_searches_computed(bench: ModuleType) -> None:
    import latency_world as lw

    world, models, serving = small_serving(bench)
    users = lw.make_users(world, 3, seq_len=50, interests=(2, 6), seed=1)
    assert {t.distances for t in bench.time_requests("single", users, serving)} == {0}  # exact
    hnsw = bench.FaissIndex(models.vectors.shape[1], "HNSW32", threads=1)
    hnsw.add(world.ids, models.vectors)
    serving.index = hnsw
    twice = [bench.time_requests("multi", [user, user], serving) for user in users]
    for first, again in twice:
        assert first.distances > 0
        assert again.distances == first.distances  # counted per request, not summed up


def test_the_summary_counts_the_requests_that_searched_again(bench: ModuleType) -> None:
    def timed(stages: dict[str, float]) -> Any:
        return bench.Timed(5.0, 5.0, stages, 10, 2)

    once = timed({"user_tower": 1.0, "search_implicit": 2.0, "refill": 1.5, "merge": 0.5})
    rows = [once] + [timed({"user_tower": 1.0, "search_implicit": 2.0, "merge": 0.5})] * 3
    summary = bench.summarise(rows)
    assert summary["refilled"] == 0.25  # one of four requests searched a list again
    assert summary["stages"]["refill"] == 1.5  # the median over the requests that refilled


def test_the_overfetch_option_defaults_to_the_plan_setting(bench: ModuleType) -> None:
    assert bench.parse(["--overfetch", "0.5"]).overfetch == 0.5
    assert bench.parse([]).overfetch == bench.PlanSettings().overfetch
