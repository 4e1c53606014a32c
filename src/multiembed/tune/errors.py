"""The error of a hyper-parameter search."""

from __future__ import annotations

from multiembed.errors import MultiembedError


class TuneError(MultiembedError):
    """A search cannot run as asked: optuna is missing, or the output directory holds a
    study of another search space, base configuration or data directory (the message
    names what differs and how to go on)."""
