"""Parse structured data out of untrusted model text: bounded in size and time, never `eval`.

Backends that support JSON mode return a bare object, but small local models wrap it in prose or code fences,
truncate it, or answer in prose. `extract_json` finds the first complete JSON value in the text; anything else
raises `ParseError` with a reason that becomes a rejected row. When it finds none, two salvage helpers keep what
a broken reply still holds: `close_truncated` closes a value the token cap cut off at its last complete element,
and `complete_objects` collects the complete objects of otherwise broken JSON.
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


def complete_objects(
    text: str, *, after: str | None = None, skip_broken: bool = True, max_objects: int | None = None
) -> list[dict]:
    """The complete JSON objects in `text`, outermost first: what a reply with broken or truncated JSON still
    holds. Scanning starts at the first `{` (after the first `after`, e.g. `"["` for the entries of a list); at
    an object that does not parse it moves on to the next `{` (`skip_broken`, so the entries inside a broken
    outer object are found) or stops there (the entry a truncation cut through, and nothing after it). At most
    `max_objects` objects and 256 starts are tried; a text longer than `MAX_TEXT_CHARS` yields none."""
    if len(text) > MAX_TEXT_CHARS:
        return []
    pos = 0
    if after is not None:
        if after not in text:
            return []
        pos = text.index(after) + len(after)
    decoder, found, starts = json.JSONDecoder(), [], 0
    pos = text.find("{", pos)
    while pos >= 0 and starts < 256 and (max_objects is None or len(found) < max_objects):
        starts += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            if not skip_broken:
                break
            pos = text.find("{", pos + 1)
            continue
        found.append(value)  # decoding from a "{" can only give a dict
        pos = text.find("{", end)
    return found


_CLOSER = {"{": "}", "[": "]"}


def close_truncated(text: str) -> object | None:
    """A JSON value cut off by the token cap, closed at its last complete element: small models often run a
    list away (`"subtopics": ["a", "b", "b", "b", ...`) until the cap. None when the text is not an unclosed
    JSON value or the closed text does not parse."""
    starts = [p for p in (text.find("{"), text.find("[")) if p >= 0]
    if not starts:
        return None
    start = min(starts)
    stack: list[str] = []
    cut: tuple[int, str] | None = None  # (end position, closers) of the last point the value could end
    in_string = escaped = False
    for pos in range(start, len(text)):
        char = text[pos]
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
            continue
        if char == '"':
            in_string = True
        elif char in _CLOSER:
            stack.append(_CLOSER[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return None  # the value closed by itself: not truncated (and not valid JSON, or it had parsed)
            cut = (pos + 1, "".join(reversed(stack)))
        elif char == "," and stack:
            cut = (pos, "".join(reversed(stack)))
    if not stack or cut is None:
        return None
    try:
        return json.loads(text[start : cut[0]] + cut[1])
    except json.JSONDecodeError:
        return None
