"""Typed errors of the serving layer."""

from __future__ import annotations

from multiembed.errors import MultiembedError


class ServeInputError(MultiembedError):
    """A retrieval request cannot be served as asked (unknown user, bad budget, ...).

    Attributes:
        field: the request field at fault.
        problem: what is wrong, naming the value and the rule.
        status: the HTTP status the service answers with (404 unknown user, else 422).

    Example:
        >>> str(ServeInputError("budget", "5000: must be in [1, 2000]"))
        'budget = 5000: must be in [1, 2000]'
    """

    def __init__(self, field: str, problem: str, *, status: int = 422) -> None:
        self.field = field
        self.problem = problem
        self.status = status
        super().__init__(f"{field} = {problem}")
