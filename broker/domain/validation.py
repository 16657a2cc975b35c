"""The one way a pydantic validation error becomes a sentence: its first error, located.

Used by every boundary that parses into a model (request bodies, publish documents, trust
configurations, OIDC claims), so that a client always reads `<where>: <what is wrong>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class FirstError:
    where: str  # the dotted location, e.g. "tfa.mode" or "maintainers.0.name"; "" for the whole value
    message: str  # pydantic's message, e.g. "Field required"


def first_error(exc: ValidationError) -> FirstError:
    first = exc.errors()[0]
    return FirstError(".".join(str(part) for part in first["loc"]), first["msg"])


def describe(exc: ValidationError, what: str) -> str:
    """`invalid <what>: <where>: <message>`, naming the whole document when the error has no location."""
    error = first_error(exc)
    return f"invalid {what}: {error.where or 'document'}: {error.message}"
