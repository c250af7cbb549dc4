"""Parse structured data out of untrusted model text: bounded in size and time, never `eval`.

Backends that support JSON mode return a bare object, but small local models wrap it in prose or code fences,
truncate it, or answer in prose. `extract_json` finds the first complete JSON value in the text; anything else
raises `ParseError` with a reason that becomes a rejected row.
"""

from __future__ import annotations

import json
import re

MAX_TEXT_CHARS = 50_000  # longer completions are refused before any scanning
MAX_JSON_CHARS = 20_000

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """A completion that could not be parsed; `reason` is short and stable enough to group by."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extract_json(text: str, *, expect: type = dict, max_chars: int = MAX_JSON_CHARS) -> object:
    """The first JSON value of type `expect` (dict or list) in `text`: fenced blocks first, then the first
    balanced `{...}` / `[...]` span. Raises `ParseError` (empty, too long, truncated, not JSON, wrong type)."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"completion longer than {MAX_TEXT_CHARS} characters")
    opener = "{" if expect is dict else "["
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    saw_open = False
    for candidate in candidates:
        start = candidate.find(opener)
        while start >= 0:
            saw_open = True
            span = _balanced_span(candidate, start, max_chars)
            if span is None:
                break
            try:
                value = json.loads(span)
            except json.JSONDecodeError:
                start = candidate.find(opener, start + 1)
                continue
            if isinstance(value, expect):
                return value
            start = candidate.find(opener, start + 1)
    if saw_open:
        raise ParseError(f"no complete JSON {expect.__name__} (truncated or malformed)")
    raise ParseError(f"no JSON {expect.__name__} in the completion (prose instead of JSON)")


def _balanced_span(text: str, start: int, max_chars: int) -> str | None:
    """The bracket-balanced span starting at `start` (strings and escapes respected), or None if unclosed."""
    depth = 0
    in_string = False
    escaped = False
    for pos in range(start, min(len(text), start + max_chars)):
        char = text[pos]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return text[start : pos + 1]
    return None


def field_text(obj: dict, key: str, *, max_chars: int = 4_000, required: bool = True) -> str | None:
    """`obj[key]` as stripped text (numbers are accepted and turned into text); `ParseError` if it is required
    and missing, empty, not a string/number, or longer than `max_chars`."""
    value = obj.get(key)
    if isinstance(value, bool) or value is None:
        if required:
            raise ParseError(f"missing field {key!r}")
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise ParseError(f"field {key!r} is {type(value).__name__}, not text")
    value = value.strip()
    if not value:
        if required:
            raise ParseError(f"empty field {key!r}")
        return None
    if len(value) > max_chars:
        raise ParseError(f"field {key!r} longer than {max_chars} characters")
    return value


def heading_section(text: str, heading: str, *, max_chars: int = 4_000) -> str | None:
    """The text after the last line that starts with `heading` (e.g. "FINAL:"), up to the next ALL-CAPS heading;
    the robust fallback when a model writes headings instead of JSON."""
    pattern = re.compile(rf"^[#*\s]*{re.escape(heading)}[*\s]*:?[*\s]*(.*)$", re.IGNORECASE | re.MULTILINE)
    matches = list(pattern.finditer(text[-MAX_TEXT_CHARS:]))
    if not matches:
        return None
    last = matches[-1]
    rest = (last.group(1) + text[-MAX_TEXT_CHARS:][last.end() :]).strip()
    stop = re.search(r"^[#*\s]*[A-Z][A-Z ]{2,}:", rest, re.MULTILINE)
    section = (rest[: stop.start()] if stop else rest).strip()
    return section[:max_chars] or None
