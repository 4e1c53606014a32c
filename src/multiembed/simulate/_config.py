"""Settings of a simulated A/B test, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from multiembed.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """How the simulated users behave and how the test is read.

    Attributes:
        days: simulated days (the paper's tests ran two weeks).
        shown: items the ranking stage shows per session (the top ``N``).
        ranker_noise: standard deviation of the ranking stage's fixed noise around
            each user's true interest in an item.
        engage_scale: an item shown with true interest ``p`` is engaged with
            probability ``engage_scale * p``.
        save_share: share of engagements that are saves (the rest are clicks).
        sibling_interest: true interest in an item of a sibling sub-topic of one of
            the user's interests (the world's logging policy uses 0.2).
        stranger_interest: true interest in any other item (the world uses 0.02).
        engagements_per_session: logged positive engagements that count as one
            session when a user's activity level is estimated from the log.
        min_sessions_per_day: least activity level (users whose log is empty).
        history_len: items kept in each user's engagement history.
        adopt_saves: saves on one sub-topic in one week that adopt it (A-Pincepts: 3).
        core_saves: a user with more saves than this in ``core_days`` before the
            test is core (the paper's footnote 4: more than 4 in 28 days).
        core_days: the look-back of the core definition, in days.
        bootstrap: resamples of users for the confidence intervals.
        confidence: two-sided level of the intervals.
        seed: seed of every random draw of the simulation (sessions, the ranker's
            noise, engagements, the legacy retriever's daily draw, topic sampling).

    >>> SimulationConfig(days=7).shown
    10
    """

    days: int = 14
    shown: int = 10
    ranker_noise: float = 0.3
    engage_scale: float = 0.5
    save_share: float = 0.3
    sibling_interest: float = 0.2
    stranger_interest: float = 0.02
    engagements_per_session: float = 4.0
    min_sessions_per_day: float = 0.05
    history_len: int = 64
    adopt_saves: int = 3
    core_saves: int = 4
    core_days: int = 28
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name, low in (
            ("days", 1),
            ("shown", 1),
            ("history_len", 1),
            ("adopt_saves", 1),
            ("core_saves", 0),
            ("core_days", 1),
            ("bootstrap", 10),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"simulate.{name} = {value!r}: must be an int >= {low}")
        for name in ("engage_scale", "save_share", "sibling_interest", "stranger_interest"):
            value = getattr(self, name)
            if not _number(value) or not 0.0 <= value <= 1.0:
                problems.append(f"simulate.{name} = {value!r}: must be a number in [0, 1]")
        for name in ("ranker_noise", "min_sessions_per_day"):
            value = getattr(self, name)
            if not _number(value) or value < 0.0:
                problems.append(f"simulate.{name} = {value!r}: must be a number >= 0")
        value = self.engagements_per_session
        if not _number(value) or value <= 0.0:
            problems.append(f"simulate.engagements_per_session = {value!r}: must be a number > 0")
        if not _number(self.confidence) or not 0.5 <= self.confidence < 1.0:
            problems.append(f"simulate.confidence = {self.confidence!r}: must be in [0.5, 1)")
        if problems:
            raise ConfigError(problems)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
