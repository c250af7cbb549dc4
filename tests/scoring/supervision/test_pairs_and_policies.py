"""Preference pairing and selection policies as pure functions on hand-built rows: the pair cap and its seed,
which verdicts may be rejected, equal-size selections, agreement ties, answer normalization, and config errors."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from scoring.schemas import ROLLOUTS, SUPERVISION_TRACES, to_table
from scoring.supervision.config import SupervisionConfig
from scoring.supervision.pairs import PairInputs, PairsConfig, pair_table, preference_pairs
from scoring.supervision.policies import SelectionConfig, agreed_answer, select_traces
from scoring.supervision.traces import answer_key

GRADE = {"student_revision": "r", "n": 6, "k": 3, "pass_rate": 0.5, "post_mean": 0.5}


def _rollouts(verdicts: dict[str, list[str]]) -> pa.Table:
    rows = [
        {"problem_id": pid, "student_id": "s", "student_revision": "r", "sampling_hash": "h", "sample_index": i,
         "completion": f"{pid} sample {i}: {v}", "verdict": v, "verdict_reason": v, "verifier_version": "v"}
        for pid, labels in verdicts.items()
        for i, v in enumerate(labels)
    ]  # fmt: skip
    return to_table(rows, ROLLOUTS)


def _pairs(table: pa.Table, **config: object) -> list[tuple[str, int, int]]:
    grades = {pid: GRADE for pid in set(table.column("problem_id").to_pylist()) if pid != "ungraded"}
    pairs = preference_pairs(table, grades, PairsConfig(**config), student_id="s").to_pylist()
    return [(p["problem_id"], p["chosen_index"], p["rejected_index"]) for p in pairs]


def test_pairs_are_capped_by_a_seeded_draw_that_is_stable_per_problem() -> None:
    many = _rollouts({"a": ["correct"] * 3 + ["wrong"] * 3})  # 9 candidate pairs
    first = _pairs(many, max_pairs_per_problem=4)
    assert len(first) == 4 == len(set(first)) and first == _pairs(many, max_pairs_per_problem=4)
    assert all(c < 3 <= r for _, c, r in first)
    draws = {tuple(_pairs(many, max_pairs_per_problem=4, seed=seed)) for seed in range(8)}
    assert len(draws) > 1, "the seed changes which pairs are drawn"


def test_timeouts_and_errors_are_never_paired_and_unparseable_only_when_asked() -> None:
    table = _rollouts({"a": ["correct", "timeout", "error", "unparseable", "wrong"], "ungraded": ["correct", "wrong"]})
    assert _pairs(table) == [("a", 0, 4)]
    assert _pairs(table, rejected_verdicts=("wrong", "unparseable")) == [("a", 0, 3), ("a", 0, 4)]


def _teacher_traces(specs: list[tuple[str, str, str, int, str]]) -> pa.Table:
    """(problem, role, model revision, sample, verdict) per trace."""
    rows = [
        {"problem_id": pid, "student_id": "s", "role": role, "model_id": f"model-{revision}",
         "model_revision": revision, "sample_index": i, "completion": f"{pid} {role}/{revision} trace {i}: {verdict}",
         "verdict": verdict, "verdict_reason": f"checked {verdict}"}
        for pid, role, revision, i, verdict in specs
    ]  # fmt: skip
    return to_table(rows, SUPERVISION_TRACES)


def _teacher_pairs(rollouts: pa.Table, traces: pa.Table, **config: object) -> list[dict[str, object]]:
    grades = {pid: GRADE for pid in set(rollouts.column("problem_id").to_pylist()) if pid != "ungraded"}
    inputs = PairInputs(rollouts, grades, traces)
    return pair_table("teacher_student_pairs", inputs, PairsConfig(**config), student_id="s").to_pylist()


def test_teacher_pairs_choose_a_correct_teacher_trace_over_a_failed_student_sample() -> None:
    rollouts = _rollouts({"a": ["correct", "wrong", "unparseable", "timeout"], "b": ["correct"], "ungraded": ["wrong"]})
    traces = _teacher_traces(
        [
            ("a", "teacher", "t1", 0, "correct"),
            ("a", "teacher", "t1", 1, "wrong"),  # a wrong trace is never chosen
            ("a", "teacher", "r", 2, "correct"),  # written by the student's own revision: no teacher
            ("a", "student", "x", 3, "correct"),  # the student role is never a teacher
            ("a", "generator", "g1", 0, "error"),
            ("b", "teacher", "t1", 0, "correct"),  # b: the student never fails, nothing to reject
            ("ungraded", "teacher", "t1", 0, "correct"),  # no difficulty row: skipped
        ]
    )
    pairs = _teacher_pairs(rollouts, traces)
    assert [(p["problem_id"], p["chosen_role"], p["chosen_revision"], p["chosen_index"], p["rejected_index"])
            for p in pairs] == [("a", "teacher", "t1", 0, 1)]  # fmt: skip
    [pair] = pairs
    assert pair["kind"] == "teacher_vs_student" and pair["method"] == "teacher_student_pairs_v1"
    assert (pair["chosen_verdict"], pair["rejected_verdict"]) == ("correct", "wrong")
    assert pair["chosen"] == "a teacher/t1 trace 0: correct" and pair["rejected"] == "a sample 1: wrong"
    assert pair["sampling_hash"] == "h" and pair["student_revision"] == "r"  # the rejected student's rollouts
    assert pair["reason"] == (
        "chosen: teacher trace 0 of model-t1 correct (checked correct); rejected: student sample 1 wrong (wrong)"
    )
    with_unparseable = _teacher_pairs(rollouts, traces, rejected_verdicts=("wrong", "unparseable"))
    assert [p["rejected_index"] for p in with_unparseable] == [1, 2]
    assert _teacher_pairs(rollouts, _teacher_traces([])) == []


def test_teacher_pairs_are_capped_per_problem_by_a_seeded_draw() -> None:
    rollouts = _rollouts({"a": ["wrong"] * 3})
    traces = _teacher_traces([("a", "teacher", "t1", i, "correct") for i in range(3)])  # 9 candidates
    first = [(p["chosen_index"], p["rejected_index"]) for p in _teacher_pairs(rollouts, traces)]
    assert len(first) == 4 == len(set(first))
    assert first == [(p["chosen_index"], p["rejected_index"]) for p in _teacher_pairs(rollouts, traces)]
    draws = {tuple((p["chosen_index"], p["rejected_index"]) for p in _teacher_pairs(rollouts, traces, seed=s))
             for s in range(8)}  # fmt: skip
    assert len(draws) > 1


def test_student_pairs_say_their_kind_and_unknown_rules_are_named() -> None:
    [pair] = preference_pairs(
        _rollouts({"a": ["correct", "wrong"]}), {"a": GRADE}, PairsConfig(), student_id="s"
    ).to_pylist()
    assert (pair["kind"], pair["chosen_role"], pair["chosen_revision"]) == ("student_vs_student", "student", "r")
    with pytest.raises(ValidationError, match="unknown pairing rule 'teacher_pairs'"):
        PairsConfig(rules=("teacher_pairs",))


def _traces(specs: list[tuple[str, int, str, str | None, float]]) -> pa.Table:
    """(problem, sample, verdict, answer key, pass rate) per trace."""
    rows = [
        {"problem_id": pid, "student_id": "s", "role": "teacher", "model_id": "m", "sample_index": i,
         "verdict": verdict, "verdict_reason": verdict, "answer_key": key, "step_error_rate": 0.0,
         "n_checked_steps": 1, "step_method": "arith_steps_v1", "n": 4, "k": round(rate * 4),
         "pass_rate": rate, "post_mean": rate}
        for pid, i, verdict, key, rate in specs
    ]  # fmt: skip
    return to_table(rows, SUPERVISION_TRACES)


def test_max_traces_cuts_every_policy_to_the_same_size_with_reasons() -> None:
    traces = _traces([(f"p{i}", 0, "correct", "1/1", i / 10) for i in range(6)])
    config = SelectionConfig(max_traces=3)
    for policy in ("hard_first", "correct_only", "low_step_error_first", "weak_to_strong"):
        rows = select_traces(traces, policy, config.model_copy(update={"min_agree": 2}), student_id="s").to_pylist()
        assert len(rows) == 6, "every trace gets one decision row"
        kept = sorted((r for r in rows if r["kept"]), key=lambda r: r["position"])
        if policy == "weak_to_strong":
            assert kept == [] and all("no answer reached" in r["reason"] for r in rows)  # one sample each
            continue
        assert [r["problem_id"] for r in kept] == ["p0", "p1", "p2"] and [r["position"] for r in kept] == [0, 1, 2]
        passes = "student passes 2/4 (pass rate 0.50 >= hard_below 0.5)"  # p5 is not hard for hard_first
        reasons = [r["reason"] for r in sorted(rows, key=lambda r: r["problem_id"]) if not r["kept"]]
        assert reasons == ["beyond max_traces = 3"] * 2 + [
            passes if policy == "hard_first" else "beyond max_traces = 3"
        ]


def test_agreement_needs_a_strict_plurality_of_at_least_min_agree() -> None:
    assert agreed_answer(["1/2", "1/2", "3/1"], 2) == "1/2"
    assert agreed_answer(["1/2", "1/2", "3/1", "3/1"], 2) is None  # a tie is no agreement
    assert agreed_answer(["1/2", None, None], 2) is None
    assert agreed_answer(["7/1"] * 2, 3) is None


@pytest.mark.parametrize(
    "a,b", [("0.5", "\\frac{1}{2}"), ("1/2", "0.50"), ("1,000", "1000"), ("$12$", "12"), ("X + 1", "x+1.")]
)
def test_answer_keys_identify_the_same_answer(a: str, b: str) -> None:
    assert answer_key(a) == answer_key(b)


def test_unknown_policy_or_checker_is_named_with_close_matches() -> None:
    with pytest.raises(ValidationError, match="unknown supervision policy 'hard_frist'; did you mean 'hard_first'"):
        SelectionConfig(policies=("hard_frist",))
    with pytest.raises(ValidationError, match="unknown step checker 'arith_step'"):
        SupervisionConfig(step_checker="arith_step")
    with pytest.raises(ValidationError, match="roles are listed twice"):
        SupervisionConfig(roles=("teacher", "teacher"))
