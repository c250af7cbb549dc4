"""SFT on supervision traces (`scoring.training.sft`): the export rows become TRL prompt-completion rows (the loss
falls on the trace only), malformed rows are named, and — slow tier — a few SFT steps on one trace make SmolLM2
write that trace for its prompt, which the untrained model does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.errors import ConfigError
from scoring.supervision.traces import TRACE_PROMPTS, trace_messages
from scoring.training.evaluation import generate_answers
from scoring.training.sft import SftConfig, prompt_completion, train_sft
from scoring.training.student import load_student
from synthesis.problem import Problem

QUESTION = "Compute 12 * 7."
TRACE = "12 * 7 = 84\nThe answer is \\boxed{84}"


def _row(trace: str = TRACE) -> dict[str, object]:
    return {"messages": [*trace_messages(QUESTION, "trace_steps_v1"), {"role": "assistant", "content": trace}]}


def test_export_rows_become_prompt_completion_rows() -> None:
    [row] = prompt_completion([_row()])
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and row["prompt"][1]["content"] == QUESTION
    assert row["completion"] == [{"role": "assistant", "content": TRACE}]


@pytest.mark.parametrize(
    "bad",
    [{"messages": []}, {"messages": [{"role": "user", "content": QUESTION}]}, {"other": 1}, _row(trace="")],
)
def test_a_row_without_a_final_assistant_trace_is_named(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"SFT row 1 needs `messages` ending with a non-empty assistant message"):
        prompt_completion([_row(), bad])
    with pytest.raises(ConfigError, match="at least one trace"):
        train_sft([], SftConfig(), Path("/nonexistent"), Path("/nonexistent"))


@pytest.mark.slow
def test_sft_teaches_the_student_the_trace(tmp_path: Path, smollm2_gguf: Path) -> None:
    problem = Problem.create(source="t", family="t", question=QUESTION, answer="84", source_ref="t:0")
    config = SftConfig(model=str(smollm2_gguf), epochs=6, batch_size=4, learning_rate=2e-3, seed=0)
    base, tokenizer, _ = load_student(config.model, tmp_path / "m")
    [before], _ = generate_answers(base, tokenizer, [problem], "trace_steps_v1", 24, 1, prompts=TRACE_PROMPTS)
    assert before.strip() != TRACE
    run = train_sft([_row()] * 4, config, tmp_path / "m", tmp_path / "o")
    assert (run.examples, run.steps) == (4, 6) and run.train_loss is not None and run.cpu_seconds > 0
    [after], _ = generate_answers(run.model, run.tokenizer, [problem], "trace_steps_v1", 24, 1, prompts=TRACE_PROMPTS)
    assert after.strip() == TRACE
