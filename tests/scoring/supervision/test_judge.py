"""The teacher-judged step errors (`teacher_steps_v1`): the pinned judge prompt, its reply parser on well-formed,
noisy, incomplete, contradictory and oversized replies, and the stage with a scripted judge behind a real Engine
and completion cache (the `step_method` column says which method produced each number)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engines import EngineConfig
from scoring.config import ProjectConfig, StudentConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.stages.roles import EngineRoles
from scoring.stages.supervision import build_supervision
from scoring.storage import DataRoot
from scoring.supervision.config import SupervisionConfig
from scoring.supervision.judge import MAX_REPLY_CHARS, StepJudgeConfig, judge_request, parse_judgement
from scoring.supervision.traces import TraceSampling
from tests.scoring.supervision.fixtures import problems, seed_tables, teacher_script
from tests.scoring.supervision.scripted_backend import scripted_engine

STEPS = ["15 * 4 = 60", "60 - 5 = 54", "So the answer is 54."]


def test_the_judge_prompt_numbers_the_steps_and_is_pinned() -> None:
    request = judge_request("Compute 15 * 4 - 5.", STEPS, StepJudgeConfig())
    system, user = request.messages
    assert system.role == "system" and system.content.startswith("You check math solutions step by step.")
    assert "`<number>: ok` or `<number>: error`" in system.content
    assert user.content == (
        "Problem:\nCompute 15 * 4 - 5.\n\nSolution steps:\n[1] 15 * 4 = 60\n[2] 60 - 5 = 54\n"
        "[3] So the answer is 54.\n\nJudge steps 1 to 3."
    )
    assert request.sampling.temperature == 0.0 and request.sampling.n == 1


@pytest.mark.parametrize(
    "reply,errors",
    [
        ("1: ok\n2: error\n3: error", [2, 3]),
        ("Here is my check.\n\nStep 1: OK\nStep 2: **incorrect** (60 - 5 is 55)\n[3] - wrong\n", [2, 3]),
        ("3. correct\n1) correct\n2: correct", []),
        ("1: ok\n1: ok\n2: ok\n3: error", [3]),  # a repeated, consistent verdict is fine
    ],
)
def test_a_reply_judging_every_step_once_gives_the_error_steps(reply: str, errors: list[int]) -> None:
    check = parse_judgement(reply, STEPS)
    assert check.failure is None and check.method == "teacher_steps_v1"
    assert (check.n_steps, check.n_checked_steps, check.n_error_steps) == (3, 3, len(errors))
    assert check.step_error_rate == len(errors) / 3
    assert check.first_error == (STEPS[errors[0] - 1] if errors else None)


@pytest.mark.parametrize(
    "reply,reason",
    [
        ("", "judged 0 of 3 steps"),
        ("All steps look fine to me.", "judged 0 of 3 steps"),
        ("1: ok\n3: ok", "judged 2 of 3 steps (missing e.g. [2])"),
        ("1: ok\n2: ok\n2: error\n3: ok", "step 2 judged both ok and error"),
        ("1: ok\n2: ok\n3: ok\n4: error", "verdict for step 4, but the trace has 3 step(s)"),
        ("x" * MAX_REPLY_CHARS + "\n1: ok\n2: ok\n3: ok", "judged 0 of 3 steps"),  # past the size limit: unread
        ("1: ok 2: ok 3: ok", "judged 1 of 3 steps"),  # one verdict per line
    ],
)
def test_a_reply_that_does_not_judge_every_step_once_fails_with_its_reason(reply: str, reason: str) -> None:
    check = parse_judgement(reply, STEPS)
    assert check.failure is not None and check.failure.startswith(reason)
    assert check.step_error_rate is None and check.n_checked_steps == 0


def _judge_script(question: str, index: int) -> str | None:
    """Teacher traces for trace prompts; for judge prompts, `error` on every step that states a wrong number of
    the fixture (91, 86, 54, 65, 60 after 65) and an unusable reply for 9 * 9."""
    if not question.startswith("Problem:\n"):
        return teacher_script(question, index)
    if "Compute 9 * 9." in question:
        return "I cannot judge this solution."
    steps = re.findall(r"^\[(\d+)\] (.*)$", question, re.MULTILINE)
    bad = ("= 91", "= 86", "= 54", "= 65", "65 - 5")
    return "\n".join(f"{n}: {'error' if any(b in text for b in bad) else 'ok'}" for n, text in steps)


def _config(root: Path) -> ProjectConfig:
    never = "http://127.0.0.1:9"
    student = EngineConfig(backend="openai", base_url=never, model="student-m", model_revision="student-r1")
    teacher = EngineConfig(backend="openai", base_url=never, model="teacher-m", model_revision="t1")
    supervision = SupervisionConfig(enabled=True, traces=TraceSampling(samples=3), step_checker="teacher_steps")
    return ProjectConfig(
        data_root=str(root),
        student=StudentConfig(id="s", engine=student),
        teacher=teacher,
        rollouts=RolloutConfig(k=4),
        supervision=supervision,
    )


def test_the_stage_takes_step_errors_from_the_judge_and_rejects_unusable_judgements(tmp_path: Path) -> None:
    root, config = DataRoot(tmp_path), _config(tmp_path)
    seed_tables(root, config)
    engine, backend = scripted_engine(_judge_script, root.cache_path, model_id="teacher-m", revision="t1")
    roles = EngineRoles(config, root, overrides={"teacher": engine})
    summary = build_supervision(config, root, roles, progress=False)
    ids = {q: p.problem_id for q, p in problems().items()}
    traces = {(r["problem_id"], r["sample_index"]): r for r in root.read_table("supervision_traces").to_pylist()}
    assert {r["step_method"] for r in traces.values()} == {"teacher_steps_v1"}
    wrong_step = traces[(ids["Compute 84 + 6."], 0)]  # "84 + 6 = 91" / "\boxed{91}"
    assert (wrong_step["n_steps"], wrong_step["n_error_steps"], wrong_step["step_error_rate"]) == (2, 1, 0.5)
    assert wrong_step["first_step_error"] == "84 + 6 = 91"
    # the judge sees reasoning the arithmetic checker cannot: "The sum is \boxed{90}" is judged (ok), so checked
    plain = traces[(ids["Compute 84 + 6."], 2)]
    assert (plain["n_checked_steps"], plain["step_error_rate"]) == (1, 0.0)
    bad_start = traces[(ids["Compute 15 * 4 - 5."], 2)]  # 15 * 4 = 65, 65 - 5 = 60: both steps judged wrong
    assert (bad_start["n_error_steps"], bad_start["step_error_rate"]) == (2, 2 / 3)
    unjudged = [traces[(ids["Compute 9 * 9."], i)] for i in (0, 1)]
    assert all(r["step_error_rate"] is None and r["n_checked_steps"] == 0 for r in unjudged)
    rejects = root.read_table("rejects", {"origin": "supervision-s"}).to_pylist()
    judged = sorted((r for r in rejects if r["input_ref"].endswith("#step_judge")), key=lambda r: r["input_ref"])
    assert [r["input_ref"] for r in judged] == [f"{ids['Compute 9 * 9.']}#teacher#{i}#step_judge" for i in (0, 1)]
    assert {r["reason"] for r in judged} == {"step judge: judged 0 of 2 steps (missing e.g. [1, 2])"}
    assert {r["raw_text"] for r in judged} == {"I cannot judge this solution."}
    # low_step_error_first drops what the judge could not judge, with the reason
    selection = root.read_table("supervision_selection", {"student": "s", "selection": "low_step_error_first_v1"})
    dropped = {(r["problem_id"], r["sample_index"]): r["reason"] for r in selection.to_pylist() if not r["kept"]}
    assert dropped[(ids["Compute 9 * 9."], 0)] == "no step the checker could check (teacher_steps_v1)"
    calls = backend.calls
    assert calls == 12 + 11  # 12 trace samples (one failed), then one judgement per answered trace
    again = build_supervision(config, root, EngineRoles(config, root, overrides={"teacher": engine}), progress=False)
    engine.close()
    assert backend.calls == calls + 1, "judgements are cached; only the failed trace call is retried"
    assert again.counts == summary.counts
