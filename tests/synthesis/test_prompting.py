"""`synthesis/prompting.py`: templates render strictly and carry a content-derived version."""

from __future__ import annotations

import jinja2
import pytest

from synthesis.prompting import PROMPTS_DIR, prompt_names, prompt_version, render


def test_every_template_has_a_stable_version() -> None:
    names = prompt_names()
    assert names, f"no templates under {PROMPTS_DIR}"
    for name in names:
        version = prompt_version(name)
        assert version.startswith(f"{name}@") and len(version) == len(name) + 13
        assert prompt_version(name) == version


def test_missing_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render(prompt_names()[0])


def test_unknown_template_is_an_error() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        render("no_such_prompt")
