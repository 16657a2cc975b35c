"""Rules for accounts: what a new account's name, email and password must be."""

from __future__ import annotations

import re

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._~-]{0,213}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


def new_account_problem(name: str, email: str, password: str) -> str | None:
    """Why an account cannot be created with these values, or None when it can."""
    if not _USERNAME.match(name):
        return "a username is lowercase letters, digits and . _ ~ -, starting with a letter or digit"
    if len(email) > 320 or not _EMAIL.match(email):
        return f"{email!r} is not an email address"
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    return None
