"""Request bodies into their pydantic models: a body that does not fit is a 400 naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..domain.validation import describe
from ..errors import bad_request

M = TypeVar("M", bound=BaseModel)


def body_as(model: type[M], raw: Any, what: str) -> M:
    """`raw` (parsed JSON) as `model`; 400 "invalid <what>: <field>: <problem>" otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise bad_request(describe(exc, what)) from None
