"""`scoring/grading/agreement.py`: synthesized answers are accepted only when independent solutions agree."""

from __future__ import annotations

from scoring.grading.agreement import majority_agreement, reference_agreement
from scoring.grading.verify import Verifier


def test_reference_needs_min_votes_and_a_majority(verifier: Verifier) -> None:
    solutions = ["so \\boxed{12}", "I get \\boxed{12.0}", "\\boxed{13}"]
    accepted = reference_agreement("12", solutions, verifier, min_votes=2)
    assert (accepted.accepted, accepted.votes, accepted.k, accepted.agreeing) == (True, 2, 3, (0, 1))
    assert not reference_agreement("12", solutions, verifier, min_votes=3).accepted
    split = reference_agreement("12", ["\\boxed{12}", "\\boxed{5}"], verifier, min_votes=1)
    assert not split.accepted and "1/2" in split.reason  # 1 of 2 is not more than half


def test_equivalent_forms_agree(verifier: Verifier) -> None:
    result = reference_agreement("\\frac{1}{2}", ["\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{\\frac12}"], verifier)
    assert result.accepted and result.votes == 3


def test_no_solutions_is_a_reject_not_a_crash(verifier: Verifier) -> None:
    result = reference_agreement("3", [], verifier)
    assert not result.accepted and result.k == 0 and "no solutions" in result.reason


def test_majority_without_reference(verifier: Verifier) -> None:
    result = majority_agreement(["\\boxed{7}", "\\boxed{9}", "answer is 7", "\\boxed{7}"], verifier)
    assert result.accepted and result.answer == "7" and result.votes == 3 and result.k == 4
    tie = majority_agreement(["\\boxed{1}", "\\boxed{2}"], verifier, min_votes=1)
    assert not tie.accepted and "no majority" in tie.reason
    silent = majority_agreement(["I am not sure.", ""], verifier)
    assert not silent.accepted and silent.answer is None
