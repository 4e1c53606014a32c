"""Shipped presets and the layering of configuration documents.

A preset is a TOML configuration shipped in the package's ``presets/`` folder
(``multiembed presets`` lists them); its first comment line describes it. Any
configuration document, a preset or a user's file, may name the preset it builds
on with a top-level ``base = "NAME"``: its tables then override that preset's
settings key by key. The configuration a command runs with is, in order:

1. the library's defaults;
2. the preset named by ``preset`` (``--preset``);
3. the file at ``path`` (``--config``), whose keys win over the preset's.

A ``path`` that does not exist but is a preset's name (``--config paper``)
reads that preset.

>>> cfg = load_config(preset="paper")
>>> cfg.model.name, cfg.model.k, cfg.model.dhen_preset, cfg.split.protocol
('dcm', 7, 'paper', 'time')
>>> load_config(preset="mind").model.k  # mind.toml builds on paper.toml
7
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NamedTuple

from multiembed.config._core import loads_toml, parse, read_toml
from multiembed.config.sections import Config
from multiembed.errors import ConfigError

BASE_KEY = "base"
"""Top-level key of a configuration document naming the preset it builds on."""


def _folder() -> Traversable:
    return resources.files("multiembed") / "presets"


def preset_names() -> tuple[str, ...]:
    """Names of the shipped presets, sorted.

    >>> "paper" in preset_names()
    True
    """
    names = [p.name for p in _folder().iterdir() if p.is_file()]
    return tuple(sorted(n.removesuffix(".toml") for n in names if n.endswith(".toml")))


def _unknown(name: object, key: str) -> ConfigError:
    shown = f'"{name}"' if isinstance(name, str) else repr(name)
    return ConfigError([f"{key} = {shown}: unknown preset (known: {', '.join(preset_names())})"])


def preset_text(name: str) -> str:
    """The TOML text of preset `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in preset_names():
        raise _unknown(name, "preset")
    return (_folder() / f"{name}.toml").read_text(encoding="utf-8")


def preset_description(name: str) -> str:
    """The preset's first comment line, without the ``#``.

    >>> preset_description("paper").startswith("The paper")
    True
    """
    for line in preset_text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def merge_documents(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `under`: tables merge key by key, any other value replaces.

    >>> merge_documents({"model": {"k": 7, "dim": 8}}, {"model": {"k": 4}, "train": {}})
    {'model': {'k': 4, 'dim': 8}, 'train': {}}
    """
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_documents(out[key], value)
        else:
            out[key] = value
    return out


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except ConfigError as err:
        if err.problems != ["file not found"] or path.suffix or path.name != str(path):
            raise
        # a bare name: a mistyped preset?
        known = ", ".join(preset_names())
        raise ConfigError([f"file not found (nor a preset: known {known})"], str(path)) from None


def _resolve(document: dict[str, Any], source: str, chain: tuple[str, ...]) -> dict[str, Any]:
    """The document with its ``base`` preset (and that one's, ...) laid under it."""
    if BASE_KEY not in document:
        return document
    rest = {k: v for k, v in document.items() if k != BASE_KEY}
    base = document[BASE_KEY]
    if not isinstance(base, str) or base not in preset_names():
        err = _unknown(base, BASE_KEY)
        raise ConfigError(err.problems, source)
    if base in chain:
        cycle = " -> ".join((*chain, base))
        raise ConfigError([f'{BASE_KEY} = "{base}": presets build on each other ({cycle})'], source)
    under = _resolve(loads_toml(preset_text(base), _label(base)), _label(base), (*chain, base))
    return merge_documents(under, rest)


def _label(name: str) -> str:
    return f'preset "{name}"'


class ConfigDocument(NamedTuple):
    """A configuration document with its bases laid under it, ready for `parse`."""

    data: dict[str, Any]
    source: str | None
    """What it was read from, for messages: the file, the preset, or both."""


def config_document(path: str | Path | None = None, *, preset: str | None = None) -> ConfigDocument:
    """The settings of preset `preset` with the file at `path` on top (either may be None).

    A `path` that does not exist but names a preset reads that preset. A file
    whose ``base`` names another preset than `preset` is refused: one of them
    would be silently ignored.
    """
    data: dict[str, Any] = {}
    sources: list[str] = []
    if preset is not None:
        data = _resolve(loads_toml(preset_text(preset), _label(preset)), _label(preset), (preset,))
        sources.append(_label(preset))
    if path is not None:
        path = Path(path)
        chain: tuple[str, ...] = ()
        if not path.exists() and str(path) in preset_names():
            chain = (str(path),)
            label = _label(str(path))
            document = loads_toml(preset_text(str(path)), label)
        else:
            label = str(path)
            document = _read_file(path)
        resolved = _resolve(document, label, chain)
        base = document.get(BASE_KEY)
        if preset is not None and base is not None and base != preset:
            raise ConfigError(
                [f'{BASE_KEY} = "{base}": builds on another preset than "{preset}"; name one'],
                label,
            )
        data = merge_documents(data, resolved)
        sources.insert(0, label)
    return ConfigDocument(data, " on ".join(sources) or None)


def load_config(path: str | Path | None = None, *, preset: str | None = None) -> Config:
    """The validated `Config` of preset `preset` overlaid by the file at `path`.

    Raises:
        ConfigError: an unknown preset (listing the known ones), a missing or
            malformed file, or every bad setting of the result at once.
    """
    document = config_document(path, preset=preset)
    return parse(Config, document.data, source=document.source)
