"""The subset of minimatch that npm-packlist and ignore-walk use, ported to Python.

Options as ignore-walk sets them: matchBase, dot, flipNegate, nocase, plus partial matching of
directories. Patterns are brace-expanded (bracex), split on "/", and each part becomes a literal,
a regular expression, or GLOBSTAR ("**").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bracex

GLOBSTAR = object()
_QMARK = "[^/]"
_STAR = "[^/]*?"
# With dot: true, wildcards may match names starting with "." but never "." or "..".
_NOT_DOT_OR_DOTDOT = r"(?!\.\.?(?:$|/))"


def _part_regex(part: str) -> re.Pattern[str] | str:
    """A literal when the part has no magic, else an anchored case-insensitive regex."""
    out, i, magic = [], 0, False
    while i < len(part):
        c = part[i]
        if c == "\\" and i + 1 < len(part):
            out.append(re.escape(part[i + 1]))
            i += 2
            continue
        if c == "*":
            magic = True
            while i + 1 < len(part) and part[i + 1] == "*":
                i += 1
            out.append(_STAR)
        elif c == "?":
            magic = True
            out.append(_QMARK)
        elif c == "[":
            end, cls = _char_class(part, i)
            if cls is None:
                out.append(re.escape(c))
            else:
                magic = True
                out.append(cls)
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    if not magic:
        return part.replace("\\", "") if "\\" in part else part
    prefix = _NOT_DOT_OR_DOTDOT if part[:1] in ("*", "?", "[") else ""
    return re.compile("^" + prefix + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def _char_class(part: str, start: int) -> tuple[int, str | None]:
    """Parse [...] at `start`; returns (index of "]", regex class) or (start, None) if unclosed."""
    i = start + 1
    negate = i < len(part) and part[i] in "!^"
    if negate:
        i += 1
    body = []
    first = True
    while i < len(part):
        c = part[i]
        if c == "]" and not first:
            inner = "".join(body)
            return i, f"[{'^' if negate else ''}{inner}]"
        if c == "\\" and i + 1 < len(part):
            body.append(re.escape(part[i + 1]))
            i += 2
            first = False
            continue
        if c == "[" and part.startswith("[:", i):
            close = part.find(":]", i)
            if close != -1:
                body.append(_POSIX.get(part[i + 2:close], ""))
                i = close + 2
                first = False
                continue
        body.append("\\" + c if c in "^[]\\" else c)
        first = False
        i += 1
    return start, None


_POSIX = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
          "space": r"\s", "xdigit": "0-9a-fA-F", "punct": r"!-/:-@\[-`{-~", "word": r"\w"}


def _split(pattern: str) -> list[object]:
    raw_parts = pattern.split("/")
    # a//b is a/b (only a leading or trailing empty part means something)
    raw_parts = [p for i, p in enumerate(raw_parts) if p or i in (0, len(raw_parts) - 1)]
    parts: list[object] = []
    for raw in raw_parts:
        if raw == "**":
            if parts and parts[-1] is GLOBSTAR:
                continue  # a/**/**/b is a/**/b
            parts.append(GLOBSTAR)
        else:
            parts.append(_part_regex(raw))
    return parts


@dataclass
class Minimatch:
    pattern: str
    negate: bool
    comment: bool
    empty: bool
    glob_parts: list[list[str]]
    _set: list[list[object]]

    @classmethod
    def compile(cls, pattern: str) -> "Minimatch":
        if pattern.startswith("#"):
            return cls(pattern, False, True, False, [], [])
        if not pattern:
            return cls(pattern, False, False, True, [], [])
        negate, offset = False, 0
        while offset < len(pattern) and pattern[offset] == "!":
            negate = not negate
            offset += 1
        body = pattern[offset:]
        try:
            expanded = bracex.expand(body) if "{" in body else [body]
        except (ValueError, RuntimeError):
            expanded = [body]
        glob_parts = [e.split("/") for e in expanded]
        return cls(pattern, negate, False, False, glob_parts, [_split(e) for e in expanded])

    def match(self, path: str, partial: bool = False) -> bool:
        """Whether the pattern (negation ignored: flipNegate) matches `path`."""
        if self.comment:
            return False
        if self.empty:
            return path == ""
        if path == "/" and partial:
            return True
        file = path.split("/")
        filename = file[-1]
        if not filename:
            for part in reversed(file[:-1]):
                if part:
                    filename = part
                    break
        for pattern in self._set:
            target = [filename] if len(pattern) == 1 else file
            if _match_one(target, pattern, partial):
                return True
        return False


def _literal_hit(f: str, p: object) -> bool:
    if isinstance(p, str):
        return f.lower() == p.lower()
    return bool(p.match(f))


def _match_one(file: list[str], pattern: list[object], partial: bool) -> bool:
    fi, pi, fl, pl = 0, 0, len(file), len(pattern)
    while fi < fl and pi < pl:
        p, f = pattern[pi], file[fi]
        if p is GLOBSTAR:
            rest = pattern[pi + 1:]
            if not rest:
                return all(part not in (".", "..") for part in file[fi:])
            fr = fi
            while fr < fl:
                if _match_one(file[fr:], rest, partial):
                    return True
                if file[fr] in (".", ".."):
                    break
                fr += 1
            return partial and fr == fl
        if not _literal_hit(f, p):
            return False
        fi += 1
        pi += 1
    if fi == fl and pi == pl:
        return True
    if fi == fl:
        return partial
    return fi == fl - 1 and file[fi] == ""
