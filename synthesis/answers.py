"""Extract a final answer from free text: the last `\\boxed{}`, else "the answer is …", else the last number.

Model output is untrusted, so every step is bounded: the text is cut to its last `MAX_SCAN_CHARS`, brace
matching stops at `MAX_ANSWER_CHARS`, and only linear-time regular expressions are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SCAN_CHARS = 20_000
MAX_ANSWER_CHARS = 4_000  # room for big matrices; longer "answers" are refused as unparseable, not checked

# The answer starts after the phrase's own colons and spaces: "the final answer is:" cut off before its answer
# has none (it used to read the colon itself as the answer)
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*[:\s]*\$?([^\n$:\s][^\n$]{0,199})", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
# One number with its digits grouped in threes: "1,000", "12,345.5" (not "2,12", not the "12,102" of "(2,12)")
_GROUPED_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])")
_MATH_TOKEN = re.compile(r"^[-(\[\\\d][\w\\{}^()\[\],.+\-*/=]*$")
_CHOICE = re.compile(r"(?:^|[\s(\[{*:])([A-E])(?:$|[\s)\]}.,*:])")
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\ufe63": "-", "\uff0d": "-"})


@dataclass(frozen=True, slots=True)
class ExtractedAnswer:
    text: str
    method: str  # "boxed", "answer_is", "last_number"


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces matched; None if absent or unclosed."""
    text = text[-MAX_SCAN_CHARS:]
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or brace - start > 7:
        return None
    depth = 0
    for pos in range(brace, min(len(text), brace + MAX_ANSWER_CHARS + 2)):
        char = text[pos]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : pos].strip()
    return None


_DELIMITERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$", "$"))


def _clean(answer: str) -> str:
    answer = answer.translate(_MINUS).strip().rstrip(".,;").strip()
    # "\(42\)", "$42$" and the tail "126\)" of "\(47 + 79 = 126\)" all mean 42 / 126
    for opening, closing in _DELIMITERS:
        answer = answer.removeprefix(opening).removesuffix(closing).strip()
    answer = answer.strip("$").strip().rstrip(".,;").strip()
    return drop_thousands_separators(answer)


def drop_thousands_separators(answer: str) -> str:
    """`1,000` -> `1000`, but only where every comma of the answer groups the digits of one number: a comma that
    separates items (`(2,12) \\cup (12,102)`, `1,2,3`) means the answer is a tuple, interval or list, and
    a lone grouped number in brackets (`(12,102)`, `\\{5,123\\}`) is a pair, not a number."""
    groups = list(_GROUPED_NUMBER.finditer(answer))
    if not groups or answer.count(",") != sum(group.group().count(",") for group in groups):
        return answer
    for group in groups:
        before, after = answer[: group.start()].rstrip()[-1:], answer[group.end() :].lstrip()[:1]
        if before and after and before in "([{" and after in ")]}\\":
            return answer
    return _GROUPED_NUMBER.sub(lambda group: group.group().replace(",", ""), answer)


def extract_final_answer(text: str, *, choices: bool = False) -> ExtractedAnswer | None:
    """The final answer a completion commits to, or None when it commits to none.

    With `choices=True` (multiple-choice gold), a letter A–E is looked for after "the answer is" and then as
    the last standalone letter, instead of the last number."""
    tail = text[-MAX_SCAN_CHARS:].translate(_MINUS)
    boxed = last_boxed(tail)
    if boxed:
        return ExtractedAnswer(_clean(boxed)[:MAX_ANSWER_CHARS], "boxed")
    if choices:
        return _extract_choice(tail)
    matches = list(_ANSWER_IS.finditer(tail))
    if matches:
        candidate = _clean(matches[-1].group(1))
        if candidate:
            return ExtractedAnswer(candidate[:MAX_ANSWER_CHARS], "answer_is")
    trailing = _trailing_expression(tail)
    if trailing:
        return ExtractedAnswer(trailing, "last_expression")
    numbers = _NUMBER.findall(tail)
    if numbers:
        return ExtractedAnswer(_clean(numbers[-1]), "last_number")
    return None


def _trailing_expression(tail: str) -> str | None:
    """The completion's last token when it is a bare math expression ("We get \\frac{14}{3}"), so the
    last-number fallback does not cut a fraction or a tuple in half."""
    stripped = tail.rstrip().rstrip(".,;:!").rstrip()
    token = stripped.rsplit(None, 1)[-1] if stripped else ""
    if 0 < len(token) <= 200 and any(c.isdigit() for c in token) and _MATH_TOKEN.match(token):
        cleaned = _clean(token)
        return cleaned if cleaned.count("{") == cleaned.count("}") else None
    return None


def _extract_choice(tail: str) -> ExtractedAnswer | None:
    said = list(_ANSWER_IS.finditer(tail))
    if said:
        letters = _CHOICE.findall(" " + said[-1].group(1) + " ")
        if letters:
            return ExtractedAnswer(letters[0], "answer_is")
    letters = _CHOICE.findall(tail[-2000:])
    return ExtractedAnswer(letters[-1], "last_choice") if letters else None
