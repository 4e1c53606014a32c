"""The API's documentation: a complete OpenAPI document, and a ``/docs`` page that works offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from multiembed.serve import ServingBundle, create_app

# every status each operation can answer (the body limits apply to every request)
STATUSES = {
    ("/retrieve", "post"): {"200", "400", "401", "404", "408", "413", "422", "503", "504"},
    ("/admin/reload", "post"): {"200", "401", "408", "409", "413"},
    ("/healthz", "get"): {"200", "408", "413"},
    ("/readyz", "get"): {"200", "408", "413", "503"},
    ("/version", "get"): {"200", "408", "413"},
}


def _no_bundle() -> ServingBundle:
    raise AssertionError("the documentation needs no bundle")


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(_no_bundle, token="t"))  # no lifespan: nothing loads


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _schema(spec: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]])


def test_every_operation_declares_each_status_with_a_named_body(spec: dict[str, Any]) -> None:
    found = {
        (p, m): set(op["responses"]) for p, ops in spec["paths"].items() for m, op in ops.items()
    }
    assert found == STATUSES
    for (path, method), statuses in STATUSES.items():
        for status in statuses:
            response = spec["paths"][path][method]["responses"][status]
            schema = response["content"]["application/json"]["schema"]
            assert "$ref" in schema, (path, method, status, schema)
            assert response["description"], (path, method, status)


def test_retrieve_200_has_the_response_schema(spec: dict[str, Any]) -> None:
    ok = spec["paths"]["/retrieve"]["post"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/RetrieveResponse"}
    body = _schema(spec, ref)
    assert set(body["required"]) >= {"model_version", "lists", "candidates", "also_found_by"}
    candidates = _schema(spec, body["properties"]["candidates"])
    assert set(candidates["properties"]) == {"item_id", "score", "list", "rank", "topics"}


def test_docs_page_loads_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert re.search(r"https?://|//cdn|src=", page.text, re.IGNORECASE) is None
    assert '"/openapi.json"' in page.text
    assert client.get("/redoc").status_code == 404  # ReDoc's page loads from a CDN


def test_docs_page_follows_the_root_path(spec: dict[str, Any]) -> None:
    app = create_app(_no_bundle, token="t")
    page = TestClient(app, root_path="/api").get("/docs")
    assert '"/api/openapi.json"' in page.text


_DOM = """
const fs = require("fs");
const [page, specFile] = process.argv.slice(2);
const script = fs.readFileSync(page, "utf8").match(/<script>([\\s\\S]*)<\\/script>/)[1];
const spec = JSON.parse(fs.readFileSync(specFile, "utf8"));
class Node_ {
  constructor(tag) { this.tag = tag; this.children = []; this.attrs = {}; this._text = ""; }
  append(...c) { this.children.push(...c); }
  setAttribute(k, v) { this.attrs[k] = v; }
  addEventListener() {}
  set textContent(t) { this._text = t; this.children = []; }
  get textContent() { return this._text + this.children.map(c => c.textContent).join(""); }
}
class Text_ extends Node_ { constructor(t) { super("#text"); this._text = t; } }
const byId = {};
globalThis.Node = Node_;
globalThis.document = {
  createElement: tag => new Node_(tag),
  createTextNode: t => new Text_(t),
  getElementById: id => (byId[id] ??= new Node_("div")),
};
Node_.prototype.append = function (...c) {
  this.children.push(...c.map(x => (x instanceof Node_ ? x : new Text_(String(x)))));
};
globalThis.fetch = async url => ({ json: async () => (url === "/openapi.json" ? spec : null) });
eval(script);
setTimeout(() => console.log(JSON.stringify({
  title: byId.title.textContent, ops: byId.ops.textContent,
})), 50);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
def test_docs_page_renders_every_operation_status_and_field(
    client: TestClient, spec: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "page.html").write_text(client.get("/docs").text)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "dom.js").write_text(_DOM)
    run = subprocess.run(
        [
            "node",
            str(tmp_path / "dom.js"),
            str(tmp_path / "page.html"),
            str(tmp_path / "spec.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["title"] == f"multiembed {spec['info']['version']}"
    text = shown["ops"]
    for path, method in STATUSES:
        assert f"{method} {path}" in text
    for field in ("user_id", "history", "followed_topics", "budget", "include_topics"):
        assert field in text  # the request body's fields
    for field in ("also_found_by", "candidates", "item_id", "stages_ms"):
        assert field in text  # the 200 body's fields
    assert "RetrieveResponse" in text
    assert "InputErrorBody" in text
    assert "(bearer token)" in text
