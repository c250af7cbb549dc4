"""A second step-wise error estimate: the teacher judges each step of a trace (`teacher_steps_v1`, methods §14.1).

The trace is split into steps exactly as `arith_steps_v1` splits it (`steps.split_steps`), the steps are numbered
in a versioned prompt (`judge_steps_v1`), and the judge answers one line per step, `<number>: ok` or
`<number>: error`. Its reply is untrusted text: only the first `MAX_REPLY_CHARS` characters and `MAX_REPLY_LINES`
lines are read, each line is matched by one anchored pattern (no evaluation of any kind), and the judgement counts
only when every step got exactly one verdict; anything else is a failed judgement with its reason (the trace then
has no step error rate, and the stage writes the reason to `rejects`). Requests go through the Engine, so each
judgement is cached like every model call.

Traces longer than `max_steps` steps are judged on their first `max_steps` (`truncated`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engines import ChatRequest, Message, SamplingParams
from scoring.supervision.steps import CLAIM_CHARS, StepCheck, split_steps

TEACHER_JUDGE = "teacher_steps"  # the `supervision.step_checker` value that asks the judge
JUDGE_METHOD = f"{TEACHER_JUDGE}_v1"  # the `step_method` of a judged trace; bump when a count could change
JUDGE_PROMPTS: dict[str, str] = {  # version -> system prompt
    "judge_steps_v1": (
        "You check math solutions step by step. For every numbered step, decide whether that step is correct "
        "(its arithmetic and its reasoning, given the steps before it). Reply with exactly one line per step, "
        "in order, in the form `<number>: ok` or `<number>: error`, and nothing else."
    ),
}
MAX_REPLY_CHARS = 4_000
MAX_REPLY_LINES = 400
MAX_STEP_CHARS = 400  # a step is shown to the judge cut to this many characters
_VERDICT_LINE = re.compile(
    r"^\s*(?:step\s*)?\[?(\d{1,4})\]?\s*[:.)\-]\s*\**\s*(ok|correct|error|incorrect|wrong)\b", re.IGNORECASE
)
_ERROR_WORDS = frozenset({"error", "incorrect", "wrong"})


class StepJudgeConfig(BaseModel):
    """How the teacher judges steps (used when `supervision.step_checker` is `teacher_steps`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["teacher", "generator", "student"] = Field("teacher", description="the engine role that judges")
    prompt: Literal["judge_steps_v1"] = Field("judge_steps_v1", description="the versioned judge prompt")
    max_steps: int = Field(40, ge=1, le=200, description="judge at most this many steps of a trace")
    max_tokens: int = Field(256, ge=16, description="reply budget (about 4 tokens per step)")
    seed: int = 0


def judged_steps(trace: str, config: StepJudgeConfig) -> tuple[list[str], bool]:
    """The steps the judge sees (the shared splitter's, at most `max_steps`) and whether any were cut off."""
    steps, truncated = split_steps(trace)
    return steps[: config.max_steps], truncated or len(steps) > config.max_steps


def judge_request(question: str, steps: list[str], config: StepJudgeConfig) -> ChatRequest:
    """The judge's request for one trace: the problem and its numbered steps, answered greedily."""
    numbered = "\n".join(f"[{i}] {step[:MAX_STEP_CHARS]}" for i, step in enumerate(steps, start=1))
    user = f"Problem:\n{question}\n\nSolution steps:\n{numbered}\n\nJudge steps 1 to {len(steps)}."
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens, n=1, seed=config.seed)
    return ChatRequest((Message("system", JUDGE_PROMPTS[config.prompt]), Message("user", user)), sampling)


def parse_judgement(reply: str, steps: list[str], *, truncated: bool = False) -> StepCheck:
    """The step check a judge's reply gives for `steps`; a reply that does not judge every step exactly once is a
    failed check (`failure` says why, and it has no step error rate)."""
    verdicts: dict[int, bool] = {}
    failure = None
    for line in reply[:MAX_REPLY_CHARS].splitlines()[:MAX_REPLY_LINES]:
        match = _VERDICT_LINE.match(line)
        if match is None:
            continue
        number, is_error = int(match.group(1)), match.group(2).lower() in _ERROR_WORDS
        if not 1 <= number <= len(steps):
            failure = f"verdict for step {number}, but the trace has {len(steps)} step(s)"
        elif verdicts.get(number, is_error) != is_error:
            failure = f"step {number} judged both ok and error"
        verdicts[number] = is_error
        if failure:
            break
    if failure is None and len(verdicts) != len(steps):
        missing = [i for i in range(1, len(steps) + 1) if i not in verdicts][:5]
        failure = f"judged {len(verdicts)} of {len(steps)} steps (missing e.g. {missing})"
    if failure is not None:
        return StepCheck(JUDGE_METHOD, len(steps), 0, 0, 0, 0, None, truncated, failure=failure)
    errors = [i for i in sorted(verdicts) if verdicts[i]]
    first = steps[errors[0] - 1][:CLAIM_CHARS] if errors else None
    return StepCheck(JUDGE_METHOD, len(steps), len(steps), len(errors), len(steps), len(errors), first, truncated)
