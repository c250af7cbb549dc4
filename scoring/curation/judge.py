"""The LLM-judge leak detector (NeMo-Skills style): an engine decides whether a pool problem is a benchmark item.

For each pool problem that no cheaper detector flagged, its `k` nearest benchmark items by embedding cosine
(the embedding detector's vectors) whose cosine reaches `min_cosine` go to the teacher engine with a short,
versioned prompt: "are these the same problem, possibly reworded?". A "yes" flags the problem (method
`judge`); every judgement — yes, no or failed — is kept with the judge model and prompt version. The verdict
is untrusted text: read from at most `MAX_VERDICT_CHARS` characters, and anything but a clear yes or no is a
failed judgement with its reason, never an exception. Calls go through the engine, so they are cached like
every model call: a rerun makes none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.errors import did_you_mean

MAX_VERDICT_CHARS = 200
JUDGE_METHOD = "judge"

# name -> template with {problem} and {item}; a new wording is a new name, so cached verdicts never mix
JUDGE_PROMPTS: dict[str, str] = {
    "same_problem_v1": (
        "Are these two math problems the same problem, possibly reworded, reordered, with other names or "
        "numbers, or told in another setting? Answer with one word: yes or no.\n\n"
        "Problem A:\n{problem}\n\nProblem B:\n{item}"
    ),
}
PROBLEM_CHARS = 1500  # each problem is cut to this many characters in the prompt (bounds prompt evaluation)

Verdict = Literal["yes", "no", "failed"]
_WORD = re.compile(r"[a-z]+")


class JudgeConfig(BaseModel):
    """`decontamination.detectors.judge`: off by default (every judged pair is a model call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="ask the teacher engine about the nearest benchmark items")
    k: int = Field(1, ge=1, le=20, description="nearest benchmark items (by embedding) judged per pool problem")
    min_cosine: float = Field(
        0.75, gt=0.0, le=1.0, description="only items at or above this embedding cosine are judged (bounds CPU)"
    )
    prompt: str = Field("same_problem_v1", description=f"judge prompt version: {', '.join(JUDGE_PROMPTS)}")
    max_tokens: int = Field(4, ge=1, le=64, description="tokens the judge may write (one word is asked for)")

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, name: str) -> str:
        if name not in JUDGE_PROMPTS:
            raise ValueError(f"unknown judge prompt {name!r};" + did_you_mean(name, JUDGE_PROMPTS))
        return name


@dataclass(frozen=True, slots=True)
class Judgement:
    """The judge's answer about pool problem `problem` (position) and benchmark item `item` (position)."""

    problem: int
    item: int
    cosine: float
    verdict: Verdict
    reason: str


def parse_verdict(text: str | None) -> tuple[Verdict, str]:
    """(verdict, reason) from the judge's raw text: its first word must be yes or no (case, punctuation and
    markdown around it are ignored); anything else is "failed" with the text that could not be read."""
    if text is None:
        return "failed", "no text"
    head = text[: MAX_VERDICT_CHARS + 1]
    if len(head) > MAX_VERDICT_CHARS:
        return "failed", f"verdict longer than {MAX_VERDICT_CHARS} characters"
    words = _WORD.findall(head.lower())
    if not words:
        return "failed", f"no word in the verdict: {head.strip()[:80]!r}"
    if words[0] in ("yes", "no"):
        return words[0], ""  # type: ignore[return-value]
    return "failed", f"not a yes/no verdict: {head.strip()[:80]!r}"


def judge_request(config: JudgeConfig, problem: str, item: str) -> ChatRequest:
    """The chat request asking whether `problem` is benchmark `item` (greedy, one sample)."""
    text = JUDGE_PROMPTS[config.prompt].format(problem=problem[:PROBLEM_CHARS], item=item[:PROBLEM_CHARS])
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens, seed=0)
    return ChatRequest((Message("user", text),), sampling)


def nearest_items(
    pool_vectors: np.ndarray, item_vectors: np.ndarray, k: int, min_cosine: float, *, block_rows: int = 1024
) -> list[tuple[int, int, float]]:
    """(problem position, item position, cosine) of each problem's `k` most similar unit item rows at or above
    `min_cosine`, most similar first (lower item position on ties); by blocks of `block_rows` problems."""
    pairs: list[tuple[int, int, float]] = []
    n_items = item_vectors.shape[0]
    if n_items == 0:
        return pairs
    take = min(k, n_items)
    for lo in range(0, pool_vectors.shape[0], block_rows):
        scores = pool_vectors[lo : lo + block_rows] @ item_vectors.T
        # stable sort on the negated score: highest cosine first, ties by item position
        order = np.argsort(-scores, axis=1, kind="stable")[:, :take]
        for row, items in enumerate(order):
            for item in items.tolist():
                cosine = float(min(scores[row, item], 1.0))
                if cosine >= min_cosine:
                    pairs.append((lo + row, item, cosine))
    return pairs


def judge_pairs(
    engine: Engine,
    config: JudgeConfig,
    questions: Sequence[str],
    items: Sequence[str],
    pairs: Sequence[tuple[int, int, float]],
) -> list[Judgement]:
    """Ask the engine about each (problem, item, cosine) pair; a failed call or unreadable text is a failed
    judgement with its reason."""
    requests = [judge_request(config, questions[p], items[i]) for p, i, _ in pairs]
    outputs = engine.generate(requests, desc="judging") if requests else []
    judgements = []
    for (problem, item, cosine), [completion] in zip(pairs, outputs, strict=True):
        if not completion.ok:
            verdict, reason = "failed", f"model call failed: {completion.error}"
        else:
            verdict, reason = parse_verdict(completion.text)
        judgements.append(Judgement(problem, item, cosine, verdict, reason))  # type: ignore[arg-type]
    return judgements
