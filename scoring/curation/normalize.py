"""The comparable form of a question: what dedup's exact hashes, shingles and n-grams and decontamination's
n-grams are computed from, so that layout-only variants of one text compare equal.

Not `synthesis.problem.normalize_text` (NFKC and whitespace only: the form a problem's id is computed from).
"""

from __future__ import annotations

import re
import unicodedata

_PUNCT = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "−": "-", "~": " "})
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_MATH_DELIMITER = re.compile(r"\\[()\[\]]|\$")
_LATEX_NOISE = re.compile(
    r"\\[,;:! ]"  # thin, medium, negative and control spaces
    r"|\\(?:left|right)\."  # invisible delimiters
    r"|\\(?:q?quad|left|right|[bB]igg?[lrm]?|displaystyle|textstyle|scriptstyle)(?![a-zA-Z])"
)
_FRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")
_TRAILING_ZEROS = re.compile(r"(\d)\.(\d*?)0+(?!\d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SINGLE_BRACED = re.compile(r"([\^_])\{([^{}\s])\}")
# Symbols are padded by a translate table (no Python call per match); "." only outside a number, so 2.5 stays.
_PAD = str.maketrans(
    {c: f" {c} " for c in map(chr, range(33, 127)) if not (c.isalnum() or c in "_.\\")} | {"\\": " \\"}
)
_LONE_DOT = re.compile(r"\.(?!\d)|(?<!\d)\.")
_OTHER_SYMBOL = re.compile(r"([^\w\s\x00-\x7f])")  # non-ASCII symbols: × ÷ ° ≤ …
_SPACE = re.compile(r"\s+")


def comparable_text(text: str, *, mask_numbers: bool = False) -> str:
    """The comparable form of a question: what exact hashes, shingles and n-grams are computed from.

    NFKC; curly quotes, dashes and the minus sign made ASCII; `$`, `\\$`, `\\(` `\\)` `\\[` `\\]` dropped;
    LaTeX spacing (`\\,` `\\;` `\\:` `\\!` `\\ ` `\\quad` `~`), sizing (`\\left` `\\right` `\\big…`) and
    `\\displaystyle` dropped; `\\dfrac`/`\\tfrac` → `\\frac`; `\\text{…}` unwrapped; lowercase; `1,000` →
    `1000`, `2.50` → `2.5`, `3.0` → `3`; `x^{2}` → `x^2`; every symbol set apart by single spaces, so
    `2+3`, `2 + 3` and `( a )` vs `(a)` agree while words stay words. With `mask_numbers`, every number
    becomes `0`, so texts that differ only in their numbers normalize to the same string.
    """
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    if "\\" in text or "$" in text:  # most of the cost is LaTeX handling; plain prose skips it
        text = _MATH_DELIMITER.sub(" ", _TEXT_WRAPPER.sub(r" \1 ", text.replace("\\$", "$")))
        text = _FRAC.sub(r"\\frac", _LATEX_NOISE.sub("", text))
    text = text.lower()
    if "," in text or "{" in text:
        text = _THOUSANDS.sub("", text)
    if "." in text:
        text = _TRAILING_ZEROS.sub(lambda m: m[1] + ("." + m[2] if m[2] else ""), text)
    if mask_numbers:
        text = _NUMBER.sub("0", text)
    if "{" in text:
        text = _SINGLE_BRACED.sub(r"\1\2", text)
    # a space on both sides of a symbol, and before a backslash (a command name runs to the next non-letter)
    text = _LONE_DOT.sub(" . ", text.translate(_PAD)) if "." in text else text.translate(_PAD)
    if not text.isascii():
        text = _OTHER_SYMBOL.sub(r" \1 ", text)
    return _SPACE.sub(" ", text).strip()
