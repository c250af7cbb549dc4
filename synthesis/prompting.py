"""Prompt templates: one Jinja file per prompt under `synthesis/prompts/`, rendered strictly.

A template's version is its name plus a hash of its text, so editing a prompt changes the version recorded on
every row it produced (and, because the rendered text changes, the cache keys of its calls).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PROMPTS_DIR),
    undefined=jinja2.StrictUndefined,  # a missing variable is an error, not an empty string in a prompt
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render(name: str, **variables: object) -> str:
    """The prompt `synthesis/prompts/<name>.jinja` filled with `variables`, stripped of surrounding whitespace."""
    return _ENV.get_template(f"{name}.jinja").render(**variables).strip()


@cache
def prompt_version(name: str) -> str:
    """`<name>@<first 12 hex of sha256(template text)>`: changes whenever the template's text changes."""
    text = (PROMPTS_DIR / f"{name}.jinja").read_bytes()
    return f"{name}@{hashlib.sha256(text).hexdigest()[:12]}"


def prompt_names() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.jinja"))
