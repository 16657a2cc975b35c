"""Server-rendered pages for people: the review page's Jinja2 templates and its stylesheet.

Every template is autoescaped (whatever its name), and undefined names raise instead of
rendering empty: a page never shows a value it was not given on purpose.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("broker.web", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    from ..domain.review_diff import human_size

    env.filters["size"] = lambda n: "—" if n is None else human_size(n)
    env.filters["visible"] = visible
    return env


def visible(text: str) -> Markup:
    """`text` escaped, with each bidirectional control or invisible character shown as a mark (U+202E)."""
    from ..domain.review_diff import HIDDEN_CHARACTERS

    return Markup(HIDDEN_CHARACTERS.sub(lambda m: f'<mark class="hidden-char">U+{ord(m.group()):04X}</mark>',
                                        str(escape(text))))


def render(template: str, **values) -> str:
    return environment().get_template(template).render(**values)


@cache
def stylesheet() -> bytes:
    return files("broker.web").joinpath("static/review.css").read_bytes()
