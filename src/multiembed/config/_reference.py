"""The configuration described by its own metadata: every setting, a TOML file, a reference page.

Each setting's type, default, rules (`Check` and `Cross` texts) and one-line doc
come from its `setting(...)` field, so `multiembed config show` and
``docs/config.md`` say what the code checks.

>>> import tomllib
>>> from multiembed.config import parse
>>> paper = load_config(preset="paper")
>>> info = {s.key: s for s in settings(paper)}
>>> info["model.k"].value, info["model.k"].default, info["model.k"].rule
(7, 4, '> 0; <= 1_024')
>>> parse(Config, tomllib.loads(to_toml(paper))) == paper
True
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NamedTuple, get_args, get_origin, get_type_hints

from multiembed.config._core import to_dict
from multiembed.config._presets import load_config, preset_description, preset_names
from multiembed.config.sections import Config

REFERENCE_PRESET = "paper"
"""The preset whose values the reference page shows beside the defaults."""


class SettingInfo(NamedTuple):
    """One setting as `settings` describes it."""

    key: str
    """``section.key``, as in TOML and in error messages."""
    value: Any
    default: Any
    kind: str
    """``integer``, ``number``, ``boolean``, ``string`` or ``list of integers``."""
    rule: str
    """Allowed values and bounds, ``;``-separated (empty: any value of its kind)."""
    doc: str


def _kind(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Literal:
        return "string"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_kind(get_args(tp)[0])}s"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _rule(section: type, field: dataclasses.Field[Any], tp: Any) -> str:
    parts = []
    if get_origin(tp) is typing.Literal:
        parts.append("one of " + ", ".join(map(str, get_args(tp))))
    parts.extend(check.text for check in field.metadata.get("rules", ()))
    parts.extend(c.text for c in getattr(section, "_cross", ()) if c.keys[0] == field.name)
    return "; ".join(parts)


def settings(config: Config | None = None) -> list[SettingInfo]:
    """Every setting of `config` (default: the defaults) in section and field order."""
    config = Config() if config is None else config
    defaults = Config()
    out = []
    for section_field in dataclasses.fields(Config):
        section = getattr(config, section_field.name)
        cls = type(section)
        hints = get_type_hints(cls)
        for f in dataclasses.fields(section):
            out.append(
                SettingInfo(
                    key=f"{section_field.name}.{f.name}",
                    value=getattr(section, f.name),
                    default=getattr(getattr(defaults, section_field.name), f.name),
                    kind=_kind(hints[f.name]),
                    rule=_rule(cls, f, hints[f.name]),
                    doc=f.metadata.get("doc", ""),
                )
            )
    return out


def _toml_string(text: str) -> str:
    def escape(ch: str) -> str:
        if ch in '"\\':
            return "\\" + ch
        return f"\\u{ord(ch):04x}" if ch < " " or ch == "\x7f" else ch

    return '"' + "".join(map(escape, text)) + '"'


def toml_value(value: Any) -> str:
    """`value` as TOML writes it.

    >>> toml_value(True), toml_value(1e-06), toml_value((50, 100)), toml_value('a "b"')
    ('true', '1e-06', '[50, 100]', '"a \\\\"b\\\\""')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def to_toml(config: Config, *, comment: str = "") -> str:
    """`config` as a complete TOML document that `load_toml` reads back to an equal config.

    `comment` (any lines) heads the document as ``#`` comments.
    """
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    for name, section in to_dict(config).items():  # None values omitted
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def markdown_cell(text: str) -> str:
    """`text` escaped for a Markdown table cell (no ``|``, one line)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{markdown_cell(toml_value(value))}`"


REFERENCE_INTRO = """\
Settings are read from TOML, one table per section. Pass a file with
`--config FILE`, start from a shipped preset with `--preset NAME` (or
`--config NAME` when no file of that name exists), or both: the file's keys win
over the preset's. A file may also name the preset it builds on with a top-level
`base = "NAME"`. Unknown keys, wrong types and out-of-range values are all
reported at once, one line each (`section.key = value: rule`).

`multiembed config show [--preset NAME] [--config FILE]` prints the value each
setting takes; `--format toml` prints a complete file to start from. Every
number must also be finite and every integer fit in 64 bits."""


def reference_markdown() -> str:
    """The configuration reference page (``docs/config.md``), from the settings' metadata."""
    paper = {s.key: s.value for s in settings(load_config(preset=REFERENCE_PRESET))}
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `multiembed config show --format markdown`: edit the settings'",
        "     docs in src/multiembed/config/ and the presets, then regenerate. -->",
        "",
        REFERENCE_INTRO,
        "",
        "## Presets",
        "",
        "Shipped in the package (`multiembed presets`); every other preset builds on `paper`.",
        "",
        "| preset | description |",
        "|:--|:--|",
        *(f"| `{n}` | {markdown_cell(preset_description(n))} |" for n in preset_names()),
        "",
        "## Settings",
        "",
        f"The *{REFERENCE_PRESET}* column shows the `{REFERENCE_PRESET}` preset's value where it "
        "differs from the default.",
    ]
    rows = settings()
    for section_field in dataclasses.fields(Config):
        name = section_field.name
        doc = type(getattr(Config(), name)).__doc__ or ""
        lines += ["", f"### `[{name}]`", "", doc.strip().splitlines()[0], ""]
        lines += [
            f"| key | type | default | {REFERENCE_PRESET} | rule | description |",
            "|:--|:--|:--|:--|:--|:--|",
        ]
        for s in rows:
            if s.key.split(".")[0] != name:
                continue
            other = paper[s.key]
            lines.append(
                f"| `{s.key.split('.', 1)[1]}` | {s.kind} | {_code(s.default)} | "
                f"{_code(other) if other != s.default else ''} | {markdown_cell(s.rule)} | "
                f"{markdown_cell(s.doc)} |"
            )
    return "\n".join(lines) + "\n"
