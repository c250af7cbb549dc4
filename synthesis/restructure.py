"""Problem restructuring (methods §13): CLPO's simplify/diversify rewrites and GHPO's solution-prefix hints.

CLPO (Zhang et al., arXiv 2509.25004) sorts problems by the student's pass rate p: hard (p ≤ 0.3, zero included)
are *simplified* by a rewriter that is told the known answer so it can keep it invariant, but must not reveal it;
medium (0.3 < p ≤ 0.7) are *diversified* into a semantically equivalent paraphrase with the same answer. GHPO
(arXiv 2507.10628) rebuilds an always-failed prompt (p = 0) by appending a sentence saying the following is the
beginning of the answer, then the first 25%, 50% or 75% (characters) of a reference solution.

Pure functions only; the stage is `scoring.stages.restructure.build_restructure`. Each variant becomes a problem
with family `restructure_<kind>` (kind = simplified, diversified, hint_25, hint_50, hint_75), so the per-family
difficulty tables show each kind on its own, and metadata `kind` says the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines import ChatRequest, Message, SamplingParams
from synthesis.problem import normalize_text
from synthesis.prompting import prompt_version, render
from synthesis.socratic import extract_latex_json, first_field, seeded_rng
from synthesis.structured import ParseError, heading_section

SIMPLIFY, DIVERSIFY, HINT = "restructure_simplify", "restructure_diversify", "restructure_hint"


class RestructureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="restructure graded problems in the synthesis job")
    hard_below: float = Field(0.3, ge=0.0, le=1.0, description="CLPO: hard when pass rate ≤ this")
    medium_below: float = Field(0.7, ge=0.0, le=1.0, description="CLPO: medium when hard_below < pass rate ≤ this")
    simplify: bool = True
    hints: tuple[float, ...] = Field((0.25, 0.5, 0.75), description="GHPO solution-prefix shares for always-failed")
    diversify: bool = True
    max_problems: int = Field(8, ge=0, description="problems restructured per run")
    rewrite_temperature: float = Field(0.7, ge=0.0, le=2.0, description="the teacher's rewriting temperature")
    rewrite_max_tokens: int = Field(400, ge=16, description="CLPO: a rewrite is at most 400 tokens")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> RestructureConfig:
        if self.hard_below > self.medium_below:
            raise ValueError(f"hard_below ({self.hard_below}) must be ≤ medium_below ({self.medium_below})")
        if any(not 0.0 < share < 1.0 for share in self.hints):
            raise ValueError(f"hint shares must lie strictly between 0 and 1, got {self.hints}")
        return self


# --- which problems, which variants ---------------------------------------------------------------------------


def clpo_class(pass_rate: float, config: RestructureConfig) -> str:
    """CLPO's class of a pass rate: always_failed (p = 0, also hard), hard, medium, easy, or solved (p = 1)."""
    if pass_rate <= 0.0:
        return "always_failed"
    if pass_rate <= config.hard_below:
        return "hard"
    if pass_rate <= config.medium_below:
        return "medium"
    return "solved" if pass_rate >= 1.0 else "easy"


def hint_kind(share: float) -> str:
    """`hint_25` for a 25% prefix."""
    return f"hint_{round(share * 100)}"


def variant_kinds(pass_rate: float, config: RestructureConfig) -> list[str]:
    """The variants a problem gets: hard (zero included) → simplified; medium → diversified; always failed →
    also one GHPO hint per configured share. Easy and solved problems get none (CLPO rewrites only hard and
    medium ones)."""
    klass = clpo_class(pass_rate, config)
    kinds: list[str] = []
    if klass in ("always_failed", "hard") and config.simplify:
        kinds.append("simplified")
    if klass == "medium" and config.diversify:
        kinds.append("diversified")
    if klass == "always_failed":
        kinds += [hint_kind(share) for share in config.hints]
    return kinds


def select_parents(candidate_ids: Sequence[str], max_problems: int, *, seed: int) -> list[str]:
    """A seeded sample of at most `max_problems` ids, independent of their order; sorted."""
    pool = sorted(set(candidate_ids))
    return sorted(seeded_rng("restructure-parents", seed).sample(pool, min(max_problems, len(pool))))


# --- CLPO rewrites ----------------------------------------------------------------------------------------------


def simplify_prompt(question: str, answer: str) -> str:
    """CLPO's simplify instruction: clearer, shorter, implicit conditions explicit, same task and answer; the known
    answer is given to keep it invariant and must not be revealed; ≤ 400 tokens."""
    return render(SIMPLIFY, question=question.strip(), answer=answer.strip())


def diversify_prompt(question: str) -> str:
    """CLPO's diversify instruction: a semantically equivalent variant with the same answer."""
    return render(DIVERSIFY, question=question.strip())


def rewrite_request(prompt: str, config: RestructureConfig) -> ChatRequest:
    """One seeded teacher sample for one rewrite prompt (a rerun hits the completion cache)."""
    sampling = SamplingParams(
        temperature=config.rewrite_temperature, max_tokens=config.rewrite_max_tokens, n=1, seed=config.seed
    )
    return ChatRequest((Message("user", prompt),), sampling)


def rewrite_prompt_version(kind: str) -> str:
    return prompt_version(SIMPLIFY if kind == "simplified" else DIVERSIFY if kind == "diversified" else HINT)


_PROBLEM_KEYS = ("problem", "rewritten_problem", "question", "new_problem")
MIN_PROBLEM_CHARS = 10


def parse_rewrite(text: str) -> str:
    """The rewritten problem from a JSON `{"problem": …}` reply, else from a `PROBLEM:` heading. Raises
    `ParseError` (empty, truncated, prose, missing or too short)."""
    try:
        problem = first_field(extract_latex_json(text), _PROBLEM_KEYS)
    except ParseError as json_error:
        problem = heading_section(text, "REWRITTEN PROBLEM") or heading_section(text, "PROBLEM")
        if problem is None:
            raise json_error from None
    if not problem:
        raise ParseError("no rewritten problem in the reply")
    if len(problem) < MIN_PROBLEM_CHARS:
        raise ParseError(f"rewritten problem shorter than {MIN_PROBLEM_CHARS} characters")
    return problem


def _standalone(answer: str) -> re.Pattern[str]:
    # Not inside a longer number or word: "12" matches "is 12." but not "120", "3.12" or "x12".
    return re.compile(rf"(?<![\w.]){re.escape(answer.strip())}(?!\w|\.\d)")


def reveals_answer(variant: str, parent_question: str, answer: str) -> bool:
    """True when `variant` states the gold answer verbatim as a standalone token and the parent's question did
    not (CLPO: a rewrite must not reveal the answer)."""
    if not answer.strip():
        return False
    pattern = _standalone(answer)
    return bool(pattern.search(variant)) and not pattern.search(parent_question)


def same_problem(a: str, b: str) -> bool:
    """Equal after normalization and case-folding: a "rewrite" that changed nothing."""
    return normalize_text(a).casefold() == normalize_text(b).casefold()


# --- GHPO hints -------------------------------------------------------------------------------------------------

_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def clean_solution(solution: str) -> str:
    """A reference solution ready to be cut into hints: GSM8K calculator annotations removed, ends stripped."""
    return _CALCULATOR.sub("", solution).strip()


def hint_prefix(solution: str, share: float) -> str:
    """The first `share` of the solution's characters (GHPO: `round(len · share)`), cut before any `\\boxed{`
    so a hint guides without handing over the final answer; trailing whitespace stripped."""
    text = clean_solution(solution)
    end = round(len(text) * share)
    boxed = text.find("\\boxed")
    if 0 <= boxed < end:  # also when the cut falls inside "\boxed{…}"
        end = boxed
    return text[:end].rstrip()


def hinted_question(question: str, prefix: str) -> str:
    """GHPO's hinted prompt: the question, a sentence saying the following is the beginning of the answer, and
    the solution prefix."""
    return render(HINT, question=question.strip(), prefix=prefix)
