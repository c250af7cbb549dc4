"""Final-answer extraction (`synthesis.answers`): which commas are thousands separators, and what follows an
answer phrase.

A comma is dropped only where it groups the digits of one number (`1,000`, `12,345.5`), never where it
separates the items of a tuple, interval, set or list — the known bug was `(2,12) \\cup (12,102)` read as
`(2,12) \\cup (12102)`.
"""

from __future__ import annotations

import pytest

from synthesis.answers import extract_final_answer


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("So $x \\in \\boxed{(2,12) \\cup (12,102)}$.", "(2,12) \\cup (12,102)"),
        ("The interval is \\boxed{(12,102)}.", "(12,102)"),
        ("The point is \\boxed{[1,000]}.", "[1,000]"),  # a bracketed pair, not one thousand
        ("The solutions are \\boxed{1,2,3}.", "1,2,3"),
        ("The roots are \\boxed{-3, 100, 200}.", "-3, 100, 200"),
        ("\\boxed{\\{5,123\\}}", "\\{5,123\\}"),
    ],
)
def test_commas_between_items_are_kept(completion: str, answer: str) -> None:
    extracted = extract_final_answer(completion)
    assert extracted is not None and extracted.text == answer


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("She earns \\boxed{1,000} dollars.", "1000"),
        ("The total is \\boxed{\\$12,345.50}.", "\\$12345.50"),
        ("The population is \\boxed{1,234,567}.", "1234567"),
        ("The answer is 2,500.", "2500"),
        ("Adding them up we get 3,000 apples in 12,000 boxes", "12000"),
        ("\\boxed{x = 1,500}", "x = 1500"),
    ],
)
def test_thousands_separators_are_dropped(completion: str, answer: str) -> None:
    extracted = extract_final_answer(completion)
    assert extracted is not None and extracted.text == answer


def test_an_answer_phrase_cut_off_before_its_answer_is_not_an_answer() -> None:
    """A completion truncated right after "the final answer is:" (recorded table, tuning case
    deepscaler_math_train:3494:0.5b:0) used to yield the colon as its answer; now the phrase is skipped and the
    completion's last number is read, as for any completion without a box or an answer phrase."""
    truncated = "Finally, we evaluate M + N:\n\\[M + N = 5 + 120 = 125\\]\n\nThus, the final answer is:\n\n\n"
    extracted = extract_final_answer(truncated)
    assert extracted is not None and (extracted.text, extracted.method) == ("125", "last_number")
    for said in ("The final answer is: $42$.", "the answer is:  42", "Final Answer: 7 apples"):
        extracted = extract_final_answer(said)
        assert extracted is not None and extracted.method == "answer_is" and extracted.text[0].isdigit(), said
