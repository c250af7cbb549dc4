"""Exact arithmetic on untrusted text: a bounded recursive-descent evaluator over `Fraction`.

Model text is never `eval`ed or sympified. The evaluator accepts only decimal numbers, `+ - * / ^`, unary signs and
parentheses (after `normalize_operators` has mapped `×`, `\\times`, `\\cdot`, `÷`, `\\frac{a}{b}`, `**`, `$` …), with
limits on the text length, the token count, the digits of a number, exponents and the size of every intermediate
value, so a hostile expression (`9^9^9^9`, a 10,000-digit number) fails fast instead of eating the CPU.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_EXPRESSION_CHARS = 200
MAX_TOKENS = 80
MAX_NUMBER_DIGITS = 30
MAX_EXPONENT = 64
MAX_VALUE_BITS = 512  # numerator and denominator of every intermediate value

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([-+*/^()]))", re.ASCII)
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]{1,60})\}\s*\{([^{}]{1,60})\}")
_ALIASES = (
    ("\\(", " "),  # inline and display math delimiters: "\\(47 + 79 = 126\\)"
    ("\\)", " "),
    ("\\[", " "),
    ("\\]", " "),
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\$", ""),
    ("\\,", ""),
    ("\\!", ""),
    ("**", "^"),
    ("×", "*"),
    ("·", "*"),
    ("∗", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("–", "-"),
    ("$", ""),
)
# A thousands separator: a comma between a digit and exactly three digits ("1,250" but not "1,2" or "3, 4").
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


class ArithmeticTextError(ValueError):
    """The text is not an arithmetic expression in the accepted form, or breaks a size limit."""


def normalize_operators(text: str) -> str:
    """Map the spellings of operators in model text (`×`, `\\times`, `\\cdot`, `÷`, `\\frac{a}{b}`, `**`, `1,250`,
    `$`) to the evaluator's `+ - * / ^` and plain numbers. Pure text substitution, linear in the length."""
    for _ in range(3):  # nested fractions, innermost first
        text = _FRAC.sub(r"((\1)/(\2))", text)
    for alias, plain in _ALIASES:
        text = text.replace(alias, plain)
    text = text.replace("{", "(").replace("}", ")")
    return _THOUSANDS.sub("", text)


def has_binary_operator(text: str) -> bool:
    """Whether the (normalized) expression applies an operator to two operands, not only a sign to a number."""
    stripped = text.strip()
    return any(op in stripped for op in "*/^") or re.search(r"[\d)]\s*[-+]", stripped) is not None


def _checked(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_VALUE_BITS or value.denominator.bit_length() > MAX_VALUE_BITS:
        raise ArithmeticTextError(f"an intermediate value exceeds {MAX_VALUE_BITS} bits")
    return value


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*; unary := ('+'|'-') unary | power;
    power := atom ('^' unary)?; atom := NUMBER | '(' expr ')'."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def parse(self) -> Fraction:
        value = self._expr()
        if self.pos != len(self.tokens):
            raise ArithmeticTextError(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ArithmeticTextError("expression ends early")
        self.pos += 1
        return token

    def _expr(self) -> Fraction:
        value = self._term()
        while self._peek() in ("+", "-"):
            operator = self._take()
            right = self._term()
            value = _checked(value + right if operator == "+" else value - right)
        return value

    def _term(self) -> Fraction:
        value = self._unary()
        while self._peek() in ("*", "/"):
            operator = self._take()
            right = self._unary()
            if operator == "/" and right == 0:
                raise ArithmeticTextError("division by zero")
            value = _checked(value * right if operator == "*" else value / right)
        return value

    def _unary(self) -> Fraction:
        if self._peek() in ("+", "-"):
            sign = self._take()
            value = self._unary()
            return -value if sign == "-" else value
        return self._power()

    def _power(self) -> Fraction:
        base = self._atom()
        if self._peek() != "^":
            return base
        self._take()
        exponent = self._unary()
        if exponent.denominator != 1 or abs(exponent.numerator) > MAX_EXPONENT:
            raise ArithmeticTextError(f"exponent {exponent} is not an integer in [-{MAX_EXPONENT}, {MAX_EXPONENT}]")
        if base == 0 and exponent < 0:
            raise ArithmeticTextError("division by zero")
        if abs(base.numerator).bit_length() * abs(exponent.numerator) > MAX_VALUE_BITS:
            raise ArithmeticTextError(f"a power exceeds {MAX_VALUE_BITS} bits")
        return _checked(base ** int(exponent))

    def _atom(self) -> Fraction:
        token = self._take()
        if token == "(":
            self.depth += 1
            value = self._expr()
            if self._take() != ")":
                raise ArithmeticTextError("unbalanced parentheses")
            self.depth -= 1
            return value
        if token[0].isdigit() or token[0] == ".":
            if sum(c.isdigit() for c in token) > MAX_NUMBER_DIGITS:
                raise ArithmeticTextError(f"a number longer than {MAX_NUMBER_DIGITS} digits")
            return Fraction(token)
        raise ArithmeticTextError(f"unexpected {token!r}")


def tokenize(text: str) -> list[str]:
    """The tokens of a normalized expression; raises `ArithmeticTextError` on any other character."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ArithmeticTextError(f"longer than {MAX_EXPRESSION_CHARS} chars")
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ArithmeticTextError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
        if len(tokens) > MAX_TOKENS:
            raise ArithmeticTextError(f"more than {MAX_TOKENS} tokens")
    if not tokens:
        raise ArithmeticTextError("empty expression")
    return tokens


def evaluate(text: str) -> Fraction:
    """The exact value of a normalized arithmetic expression (`normalize_operators` first for model text);
    raises `ArithmeticTextError` naming what is wrong."""
    return _Parser(tokenize(text)).parse()
