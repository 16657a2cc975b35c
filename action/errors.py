"""The action's one exception family: every failure knows its title and how to explain itself."""

from __future__ import annotations

from typing import ClassVar


class ActionError(Exception):
    """A failure the action reports as one `::error` annotation (and in the job summary).

    `title` names the kind of failure; `hint()` says what to do about it, chosen by the cause,
    not by the wording of a message (as sigstore-python's errors own their `diagnostics()`).
    """

    title: ClassVar[str] = "stagegate action failed"

    def hint(self) -> str | None:
        return None

    def diagnostics(self) -> str:
        hint = self.hint()
        return f"{self}\n\n{hint}" if hint else str(self)
