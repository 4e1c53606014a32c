"""The HTTP API's bodies as pydantic models: strict requests, documented responses and errors.

Requests are validated strictly: an integer field takes a JSON integer in the
int64 range only (no ``true``, no ``"5"``, no ``2.0``, no ``NaN``), a raw id is
such an integer or a string, and unknown fields are refused. A refused request
is answered 422 with an `InputErrorBody` whose message names each field, the
value and the rule (`input_problems` turns pydantic's errors into those).

Responses are serialised by orjson straight from NumPy columns, not through
these models: the models document the shapes (OpenAPI) and let tests check that
a body matches them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from multiembed.serve._retrieve import DEFAULT_BUDGET, INT64_MAX, INT64_MIN

# documented as OpenAPI's int64 format: bounds written as JSON numbers would be
# rounded to floats by the schema generator (2^63 - 1 would read as 2^63)
Int64 = Annotated[
    int,
    Field(ge=INT64_MIN, le=INT64_MAX),
    WithJsonSchema({"type": "integer", "format": "int64"}),
]
NonNegativeInt64 = Annotated[
    int,
    Field(ge=0, le=INT64_MAX),
    WithJsonSchema({"type": "integer", "format": "int64", "minimum": 0}),
]
RawIdOut = int | str
# aliases: two response columns are named ``list``, which would shadow the builtin there
Ints = list[int]
IntRows = list[list[int]]
Floats = list[float]
RawIds = list[RawIdOut]


def _raw_id(value: Any) -> int | str:
    """A raw id: a JSON integer in the int64 range, or a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    raise PydanticCustomError("raw_id", "must be an integer in the int64 range or a string")


RawId = Annotated[int | str, PlainValidator(_raw_id, json_schema_input_type=Int64 | str)]


class RetrieveBody(BaseModel):
    """``POST /retrieve`` body: a known ``user_id``, or a ``history`` and ``followed_topics``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: RawId | None = Field(None, description="raw user id of the data directory")
    history: list[RawId] = Field(
        default_factory=list, description="raw item ids, oldest first (at most max_history)"
    )
    followed_topics: list[RawId] = Field(
        default_factory=list, description="raw topic ids (at most max_topics)"
    )
    budget: Int64 | None = Field(
        None,
        description=f"candidates to return, in [1, max_budget]; default {DEFAULT_BUDGET} "
        "or max_budget if lower",
    )
    seed: NonNegativeInt64 = Field(0, description="topic-sampling seed")
    include_topics: bool = Field(
        False, description="also return each candidate's topics (ids and names)"
    )


class ListSource(BaseModel):
    """Where a list of candidates came from."""

    kind: str = Field(description="implicit, explicit or popular")
    slot: int | None = Field(None, description="implicit: the interest slot")
    topic: RawIdOut | None = Field(None, description="explicit: the raw topic id")
    topic_name: str | None = Field(None, description="explicit: the topic's display name")


class ListInfo(BaseModel):
    """One searched list: its source, budget, hits and hits removed as off-topic."""

    source: ListSource
    budget: int
    found: int
    filtered: int


class CandidateColumns(BaseModel):
    """``[N]`` columns of the merged candidates, in merged order."""

    item_id: RawIds = Field(description="raw item ids")
    score: Floats = Field(description="score in the list that placed the item (finite)")
    list: Ints = Field(description="index into `lists` of the list that placed the item")
    rank: Ints = Field(description="0-based rank of the item in that list")
    topics: IntRows | None = Field(
        None, description="with include_topics: each item's topics, as indices into `topics`"
    )


class AlsoFoundBy(BaseModel):
    """``[E]`` other lists that returned a deduplicated candidate."""

    candidate: Ints = Field(description="index into the candidate columns")
    list: Ints = Field(description="index into `lists`")
    rank: Ints
    score: Floats


class TopicTable(BaseModel):
    """``[U]`` the topics that occur among the candidates."""

    topic: RawIds
    name: list[str]


class RetrieveResponse(BaseModel):
    """``POST /retrieve`` answer: candidates with provenance, as columns (`Served.as_json`)."""

    model_config = ConfigDict(extra="forbid")

    model_version: str
    user_id: RawIdOut | None = Field(description="the user's raw id as in the data, or null")
    lists: list[ListInfo]
    candidates: CandidateColumns
    also_found_by: AlsoFoundBy
    unknown_items: int = Field(description="history ids not in the item vocabulary")
    unknown_topics: int = Field(description="followed topic ids not in the topic vocabulary")
    stages_ms: dict[str, float]
    topics: TopicTable | None = Field(None, description="with include_topics")


class ErrorBody(BaseModel):
    """An error: what went wrong, in one sentence."""

    detail: str


class FieldProblem(BaseModel):
    """One refused field: where (``history[3]``), and the value with the rule it broke."""

    field: str
    problem: str


class InputErrorBody(BaseModel):
    """A refused request body (422): every problem, each naming its field."""

    detail: str = Field(description="the problems joined, each as 'field = value: rule'")
    errors: list[FieldProblem]


class ReadyBody(BaseModel):
    """``GET /readyz``: ready with a model version, or not yet (with the last load error)."""

    ready: bool
    model_version: str | None = None
    error: str | None = None


class HealthBody(BaseModel):
    """``GET /healthz``: the process answers."""

    status: str = Field(description='always "ok"')


class VersionBody(BaseModel):
    """``GET /version``: the served model version (null before one is loaded) and the library's."""

    model_version: str | None
    library_version: str


class ReloadBody(BaseModel):
    """``POST /admin/reload``: the version now served and the one it replaced."""

    model_version: str
    previous: str | None


class ReloadRefused(BaseModel):
    """``POST /admin/reload`` refused: why, and the version still served."""

    detail: str
    model_version: str | None


def input_error(problems: Sequence[FieldProblem]) -> dict[str, Any]:
    """The 422 body for `problems`."""
    detail = "; ".join(f"{p.field} = {p.problem}" for p in problems)
    return InputErrorBody(detail=detail, errors=list(problems)).model_dump()


def input_problems(errors: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """pydantic's (or FastAPI's) validation errors as `FieldProblem` s, one per field.

    The value is shown briefly (a few dozen characters; ``NaN`` as in the body),
    never echoed whole, and never as a non-finite JSON number.
    """
    problems: dict[str, FieldProblem] = {}
    for error in errors:
        if error.get("type") == "json_invalid":  # loc: ("body", character offset)
            at = error.get("loc", ("body", "?"))[-1]
            reason = (error.get("ctx") or {}).get("error", "cannot be decoded")
            problems.setdefault(
                "body",
                FieldProblem(field="body", problem=f"invalid JSON at character {at}: {reason}"),
            )
            continue
        loc = [part for part in error.get("loc", ()) if part != "body"]
        field = _field_name(loc)
        if field in problems:
            continue  # the first rule broken is enough per field
        rule = _rule(error)
        shown = "" if error.get("type") == "missing" else f"{_show(error.get('input'))}: "
        problems[field] = FieldProblem(field=field, problem=f"{shown}{rule}")
    return list(problems.values())


def _field_name(loc: Sequence[Any]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


_KNOWN = ", ".join(RetrieveBody.model_fields)
_OBJECT = "the body must be a JSON object, sent as Content-Type: application/json"
_RULES = {
    "int_type": "must be an integer",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "extra_forbidden": f"unknown field (the body takes {_KNOWN})",
    "model_attributes_type": _OBJECT,
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "missing": "required",
}


def _rule(error: Mapping[str, Any]) -> str:
    rule = _RULES.get(error.get("type", ""))
    if rule is None:
        return str(error.get("msg", "invalid"))
    ctx = error.get("ctx") or {}
    return rule.format(ge=ctx.get("ge"), le=ctx.get("le"))


def _show(value: Any, width: int = 40) -> str:
    """A short rendering of a refused value (JSON-like; ``NaN``, ``Infinity`` as written)."""
    if value is None or isinstance(value, bool | float):  # null, true, NaN, Infinity, 2.5
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else f"{text[: width - 3]}..."
