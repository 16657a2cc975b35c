"""An approximation of ICU's root collation for ASCII, as JavaScript's localeCompare('en') sorts.

npm sorts tarball entries (and the file list it prints) this way: punctuation before digits
before letters, letters case-insensitively first and lowercase before uppercase on a tie.
"""

from __future__ import annotations

import re

_ORDER = "\t\n\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789"
_PRIMARY = {c: i for i, c in enumerate(_ORDER)}
_LETTER_BASE = len(_ORDER)


def _primary(c: str) -> int:
    if c in _PRIMARY:
        return _PRIMARY[c]
    if c.isascii() and c.isalpha():
        return _LETTER_BASE + ord(c.lower()) - ord("a")
    return _LETTER_BASE + 26 + ord(c)


def locale_key(text: str, numeric: bool = False) -> tuple:
    """A sort key: compare all primary weights first, then case (lowercase first)."""
    if numeric:  # a run of digits weighs as one number, where digits sort
        primary = tuple((_PRIMARY["0"], int(p)) if p.isdigit() else (_primary(p), 0)
                        for p in re.findall(r"\d+|\D", text))
    else:
        primary = tuple((_primary(c), 0) for c in text)
    tertiary = tuple(1 if c.isupper() else 0 for c in text)
    return primary, tertiary


def packlist_order(paths: list[str]) -> list[str]:
    """npm-packlist's order: by extension, then base name, then the whole path."""
    def key(path: str) -> tuple:
        base = path.rsplit("/", 1)[-1]
        dot = base.rfind(".")
        ext = base[dot:] if dot > 0 else ""
        return locale_key(ext.lower()), locale_key(base.lower()), locale_key(path)
    return sorted(paths, key=key)


def listing_order(paths: list[str]) -> list[str]:
    """`npm pack --dry-run`'s printed order: names starting with an uppercase first, numeric compare."""
    uppers = [p for p in paths if p[:1] == p[:1].upper()]
    others = [p for p in paths if p[:1] != p[:1].upper()]
    return sorted(uppers, key=lambda p: locale_key(p, True)) + sorted(others, key=lambda p: locale_key(p, True))
