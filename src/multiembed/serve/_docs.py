"""``GET /docs``: the API reference as one self-contained page, readable offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so a service on a
network without Internet access (or a browser that blocks third-party scripts)
showed a blank page. This page carries its own script and style: it reads the
app's OpenAPI document and shows every endpoint with its request body, each
status it answers with that status's body schema, and a form that sends a
request (with the bearer token, kept in the page only) and shows the answer.
"""

from __future__ import annotations

import html
import json

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 980px; padding: 1em;
       color: #1b1f24; }
h1 { margin-bottom: 0.2em; } .muted { color: #57606a; }
details.op { border: 1px solid #d0d7de; border-radius: 6px; margin: 0.6em 0; }
details.op > summary { cursor: pointer; padding: 0.5em 0.8em; }
details.op > div { padding: 0 1em 1em; }
.method { display: inline-block; min-width: 4.5em; font-weight: 600; text-transform: uppercase; }
.get { color: #0969da; } .post { color: #1a7f37; } .put, .patch { color: #9a6700; }
.delete { color: #cf222e; }
code, pre, textarea { font: 13px ui-monospace, monospace; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left;
  vertical-align: top; border-top: 1px solid #d0d7de; padding: 0.3em 0.5em; }
ul.schema { margin: 0.2em 0; padding-left: 1.2em; } .type { color: #8250df; }
textarea { width: 100%; min-height: 6em; box-sizing: border-box; }
</style>
</head>
<body>
<h1 id="title">__TITLE__</h1>
<p class="muted" id="summary"></p>
<p><label>Bearer token (sent with every request from this page):
<input id="token" type="password" size="40" autocomplete="off"></label>
<a id="spec">OpenAPI document</a></p>
<div id="ops">Loading the OpenAPI document...</div>
<script>
"use strict";
const OPENAPI_URL = __OPENAPI_URL__;
const base = OPENAPI_URL.slice(0, OPENAPI_URL.lastIndexOf("/"));
let spec = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}
function resolve(s) {
  while (s && s.$ref) s = spec.components.schemas[s.$ref.split("/").pop()];
  return s || {};
}
function typeName(s) {
  const name = s && s.$ref ? s.$ref.split("/").pop() : null;
  s = resolve(s);
  const alt = s.anyOf || s.oneOf;
  if (alt) return alt.map(typeName).join(" | ");
  if (s.type === "array") return "list of " + typeName(s.items || {});
  if (s.type === "object" && s.additionalProperties)
    return "object of " + typeName(s.additionalProperties);
  return name || [s.type || "any", s.format].filter(Boolean).join(" ");
}
function schemaTree(s, depth) {
  s = resolve(s);
  const alt = s.anyOf || s.oneOf;
  if (alt) s = resolve(alt.find(a => resolve(a).properties) || s);
  if (s.type === "array") s = resolve(s.items);
  if (!s.properties || depth > 6) return document.createTextNode("");
  const list = el("ul", {class: "schema"});
  const required = new Set(s.required || []);
  for (const [name, sub] of Object.entries(s.properties)) {
    const info = resolve(sub);
    const item = el("li", {}, el("code", {}, name), " ",
      el("span", {class: "type"}, typeName(sub)), required.has(name) ? " (required)" : "");
    const bounds = ["minimum", "maximum", "default"].filter(k => k in info)
      .map(k => k + " " + JSON.stringify(info[k])).join(", ");
    const text = [sub.description || info.description, bounds].filter(Boolean).join("; ");
    if (text) item.append(": " + text);
    item.append(schemaTree(sub, depth + 1));
    list.append(item);
  }
  return list;
}
function example(s, depth) {
  s = resolve(s);
  if ("default" in s) return s.default;
  const alt = s.anyOf || s.oneOf;
  if (alt) return example(alt[0], depth + 1);
  if (s.type === "object" && depth < 4) {
    const out = {};
    for (const [k, sub] of Object.entries(s.properties || {})) out[k] = example(sub, depth + 1);
    return out;
  }
  return {integer: 0, number: 0, string: "", boolean: false, array: []}[s.type] ?? null;
}
function tryIt(path, method, op) {
  const body = op.requestBody && op.requestBody.content["application/json"];
  const area = el("textarea");
  if (body) area.value = JSON.stringify(example(body.schema, 0), null, 2);
  const out = el("pre", {}, "");
  const send = el("button", {type: "button"}, "Send");
  send.addEventListener("click", async () => {
    const headers = {};
    const token = document.getElementById("token").value;
    if (token) headers.Authorization = "Bearer " + token;
    if (body) headers["Content-Type"] = "application/json";
    out.textContent = "...";
    try {
      const res = await fetch(base + path, {method: method.toUpperCase(), headers,
                                            body: body ? area.value : undefined});
      const text = await res.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
      out.textContent = res.status + " " + res.statusText + "\\n" + shown;
    } catch (err) {
      out.textContent = "request failed: " + err;
    }
  });
  return el("div", {}, el("h4", {}, "Try it"), body ? area : "", send, out);
}
function operation(path, method, op) {
  const lock = op.security && op.security.length ? " (bearer token)" : "";
  const box = el("details", {class: "op"},
    el("summary", {}, el("span", {class: "method " + method}, method), " ",
       el("code", {}, path), " ", el("span", {class: "muted"}, (op.summary || "") + lock)));
  const inner = el("div");
  if (op.description) inner.append(el("p", {}, op.description));
  const body = op.requestBody && op.requestBody.content["application/json"];
  if (body) {
    inner.append(el("h4", {}, "Request body: ", el("span", {class: "type"},
      typeName(body.schema))), schemaTree(body.schema, 0));
  }
  const rows = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "body")));
  for (const [status, res] of Object.entries(op.responses || {})) {
    const content = res.content && res.content["application/json"];
    const cell = el("td", {}, res.description || "");
    if (content && content.schema) {
      cell.append(" ", el("span", {class: "type"}, typeName(content.schema)),
                  schemaTree(content.schema, 0));
    }
    rows.append(el("tr", {}, el("td", {}, el("code", {}, status)), cell));
  }
  inner.append(el("h4", {}, "Responses"), rows, tryIt(path, method, op));
  box.append(inner);
  return box;
}
async function main() {
  document.getElementById("spec").setAttribute("href", OPENAPI_URL);
  const ops = document.getElementById("ops");
  try {
    spec = await (await fetch(OPENAPI_URL)).json();
  } catch (err) {
    ops.textContent = "could not read " + OPENAPI_URL + ": " + err;
    return;
  }
  document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
  document.getElementById("summary").textContent = spec.info.summary || "";
  ops.textContent = "";
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) ops.append(operation(path, method, op));
  }
}
main();
</script>
</body>
</html>
"""


def docs_page(openapi_url: str, title: str) -> str:
    """The page's HTML, reading the OpenAPI document at `openapi_url` (no external asset).

    >>> page = docs_page("/openapi.json", "multiembed <API>")
    >>> "multiembed &lt;API&gt;" in page, '"/openapi.json"' in page, "://" in page
    (True, True, False)
    """
    # a JSON string is a JavaScript string; "</" is escaped so it cannot close the script
    url = json.dumps(openapi_url).replace("</", "<\\/")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__OPENAPI_URL__", url)
