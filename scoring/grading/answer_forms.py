"""Answer forms Gradus's base extraction (`synthesis.answers`) and comparison used to miss (issue 25, item 1).

Each rule is a small pure function on text; nothing here parses mathematics or evaluates model text.

- Display math after a word ("Answer $$ 9 $$", "\\( \\n 3/4 \\n \\)", "$$A + B = \\begin{pmatrix}…$$"): when a
  completion has no box and no "the answer is", and it *ends* with display math (`$$…$$`, `\\[…\\]`, or
  `\\(…\\)` / `$…$` on its own line), the block's content — the right-hand side of an equation — is the
  answer, not the last number inside it (which cut `\\frac{3}{4}` to `4` and a matrix to its last entry).
- A trailing relation ("… so x != 5"): the whole relation, not its right-hand number.
- "Final Answer: The final answer is $…$. I hope it is correct." (Minerva format): the answer follows the
  *last* answer phrase; the base extractor's capture swallowed the second phrase.
- ASCII relations: `!=`, `<=`, `>=` (and `≠ ≤ ≥`) are read as `\\neq`, `\\leq`, `\\geq`.
- Decimal commas: a single comma between digits is a decimal comma when it is followed by 1, 2 or 4+ digits
  (`1000,99` = 1000.99, `12,50` = 12.5), and a thousands separator when followed by exactly 3 digits
  (`1,000` = 1000, as in GSM8K; a European `1,000` meaning 1 is therefore graded as 1000). It applies only
  when the gold answer is a single number written without a comma, so lists and tuples (`1,5`) keep their
  meaning.
- Decimal approximations of exact fractions (`0.33` for `1/3`): accepted when the answer has at least
  `MIN_DECIMALS` (2) digits after the point and at least `MIN_SIGNIFICANT` (2) significant digits (leading
  zeros do not count: `0.0033` has two, `0.00` none), and it is the fraction correctly rounded to that many
  decimals (within half a unit in the last place, so either rounding of an exact tie passes). Truncations
  (`0.66` for 2/3) and coarser answers (`0.3`) are wrong. Only a gold written as a fraction qualifies: a gold
  written as a decimal already says how exact the answer must be.
"""

from __future__ import annotations

import re
from fractions import Fraction

from synthesis.answers import MAX_ANSWER_CHARS, MAX_SCAN_CHARS, ExtractedAnswer, extract_final_answer

MIN_DECIMALS = 2
MIN_SIGNIFICANT = 2
UNANCHORED = ("last_expression", "last_number")  # base extraction methods that found no box and no answer phrase

_BLOCKS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_TRAILING = ".,;:!"
_RELATION_OP = r"(?:!=|<=|>=|\u2260|\u2264|\u2265|\\neq?|\\leq?|\\geq?|<|>)"
_TRAILING_RELATION = re.compile(
    rf"(?<![\w\\])([A-Za-z](?:_\{{?\w{{1,8}}\}}?)?\s*{_RELATION_OP}\s*[-+]?[\w.\\{{}}^/]{{1,80}})$"
)
_ANSWER_PHRASE = re.compile(r"(?:final answer|the answer)\s*(?:is|:)", re.IGNORECASE)
_ASCII_RELATIONS = (("!=", "\\neq "), ("<=", "\\leq "), (">=", "\\geq "))
_UNICODE_RELATIONS = str.maketrans({"\u2260": "\\neq ", "\u2264": "\\leq ", "\u2265": "\\geq "})
_DECIMAL_COMMA = re.compile(r"^([+-]?\d+)(?:,|\{,\})(\d+)$")
_DECIMAL = re.compile(r"^[+-]?\d*\.(\d+)$")
_EQUALS = re.compile(r"(?<![<>!\\\\=])=(?!=)")  # a bare "=", not part of <=, >=, !=, ==
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two plain words: "$12 and he pays $"


def refine(text: str, extracted: ExtractedAnswer | None) -> ExtractedAnswer | None:
    """The base extraction, corrected for the forms above; the method says which rule applied."""
    if extracted is None:
        return None
    if extracted.method == "answer_is" and _ANSWER_PHRASE.search(extracted.text):
        again = last_answer_phrase(text)
        return again if again is not None else extracted
    if extracted.method in UNANCHORED:
        block = trailing_math_block(text)
        if block is not None:
            return ExtractedAnswer(block, "trailing_math")
        relation = trailing_relation(text)
        if relation is not None:
            return ExtractedAnswer(relation, "trailing_relation")
    return extracted


def trailing_math_block(text: str) -> str | None:
    """The answer in the display math the completion ends with: a `$$…$$` or `\\[…\\]` block, or a `\\(…\\)` or
    `$…$` block on its own line or spanning lines. An equation gives its right-hand side (`A + B = M` → `M`, as
    the base extractor reads `\\(47 + 79 = 126\\)`). Inline math inside a sentence does not count: a truncated
    completion often ends mid-derivation with one."""
    tail = text[-MAX_SCAN_CHARS:].rstrip().rstrip(_TRAILING).rstrip()
    for opening, closing in _BLOCKS:
        if not tail.endswith(closing) or len(tail) < len(opening) + len(closing):
            continue
        end = len(tail) - len(closing)
        start = tail.rfind(opening, 0, end)
        if start < 0:
            return None
        content = tail[start + len(opening) : end].strip().rstrip(_TRAILING).strip()
        on_own_line = start == 0 or tail[:start].rstrip(" \t").endswith("\n") or "\n" in tail[start:end]
        if not (opening in ("$$", "\\[") or on_own_line) or (opening == "$" and _PROSE.search(content)):
            return None  # inline math in a sentence, or two dollar signs around prose (money)
        content = _EQUALS.split(content)[-1].strip()
        if content and len(content) < MAX_ANSWER_CHARS and any(c.isdigit() or c == "\\" for c in content):
            return content
        return None
    return None


def trailing_relation(text: str) -> str | None:
    """A relation such as `x != 5` or `x \\geq 2` that ends the completion (its last line), if any."""
    line = text[-MAX_SCAN_CHARS:].rstrip().rstrip(_TRAILING).rstrip().rsplit("\n", 1)[-1][-200:]
    match = _TRAILING_RELATION.search(line)
    return match.group(1).strip() if match else None


def last_answer_phrase(text: str) -> ExtractedAnswer | None:
    """The base extraction run from the last "final answer is" / "the answer:" on."""
    tail = text[-MAX_SCAN_CHARS:]
    starts = [match.start() for match in _ANSWER_PHRASE.finditer(tail)]
    if not starts:
        return None
    again = extract_final_answer(tail[starts[-1] :])
    return again if again is not None and again.method == "answer_is" else None


def ascii_relations(text: str) -> str:
    """`x != 5` → `x \\neq 5` (and `<=`, `>=`, `≠`, `≤`, `≥`), so both spellings compare equal."""
    for ascii_op, latex in _ASCII_RELATIONS:
        text = text.replace(ascii_op, latex)
    return text.translate(_UNICODE_RELATIONS)


def decimal_comma(text: str) -> str | None:
    """`1000,99` → `1000.99`; None when the text is not one number with a decimal comma (`1,000` is not)."""
    match = _DECIMAL_COMMA.match(text.strip())
    if match is None or len(match.group(2)) == 3:
        return None
    return f"{match.group(1)}.{match.group(2)}"


def approximation(exact: Fraction, text: str) -> tuple[bool, str] | None:
    """Whether the decimal `text` is `exact` correctly rounded (with the reason); None when `text` is not a
    plain decimal."""
    match = _DECIMAL.match(text.strip())
    if match is None:
        return None
    decimals = len(match.group(1))
    significant = len(text.strip().lstrip("+-").replace(".", "").lstrip("0"))
    shown = f"{text.strip()!r} for {exact}"
    if decimals < MIN_DECIMALS or significant < MIN_SIGNIFICANT:
        return False, (
            f"{shown}: an approximation needs at least {MIN_DECIMALS} decimals and {MIN_SIGNIFICANT} "
            f"significant digits (has {decimals} and {significant})"
        )
    if abs(Fraction(text.strip()) - exact) * 2 * 10**decimals <= 1:
        return True, f"{shown}: correctly rounded to {decimals} decimals"
    return False, f"{shown}: not the value rounded to {decimals} decimals"
