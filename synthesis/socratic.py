"""Socratic-Zero (methods §10; Wang et al., arXiv 2509.24726): the teacher turns the student's failures into new
problems, kept when the student's pass rate on them lands near 0.5.

Pure functions only (the round itself is `scoring.stages.socratic.build_socratic_round`): the refiner prompt
(problem + the student's failed attempt), the parser of the teacher's reply into a new problem, reference solution
and final answer, the utility `U = exp(-(s-µ)²/(2σ²))` and the keep rule, the README's zones, and the seeded
choices (which failures are refined, which earlier items are replayed).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines import ChatRequest, Message, SamplingParams
from synthesis.answers import last_boxed
from synthesis.prompting import prompt_version, render
from synthesis.structured import ParseError, extract_json, heading_section

PROMPT = "socratic_refine"
Zone = Literal["mastered", "learning", "too_difficult"]


class SocraticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run Socratic-Zero rounds in the synthesis job")
    rounds: int = Field(2, ge=1, le=50, description="rounds (paper: 3; README: up to 5)")
    seeds: int = Field(100, ge=1, description="seed problems taken from the pool (paper: 100)")
    failures_per_round: int = Field(8, ge=1, description="failed attempts refined per round")
    k: int = Field(8, ge=1, le=64, description="student attempts per new problem (paper: 8)")
    keep: Literal["gaussian", "band"] = Field(
        "gaussian", description="gaussian (utility exp(-(s-mu)^2/2sigma^2)) | band"
    )
    mu: float = Field(0.5, ge=0.0, le=1.0)
    sigma: float = Field(0.2, gt=0.0)
    min_utility: float = Field(0.3, ge=0.0, le=1.0, description="gaussian: keep when utility ≥ this")
    band: tuple[float, float] = Field((0.1, 0.9), description="band: keep when lo < pass rate < hi")
    replay_share: float = Field(0.25, ge=0.0, le=1.0, description="share of earlier rounds' items replayed")
    refine_temperature: float = Field(0.7, ge=0.0, le=2.0, description="the teacher's sampling temperature")
    refine_max_tokens: int = Field(512, ge=16, description="tokens for the teacher's new problem + solution")
    attempt_chars: int = Field(1200, ge=100, description="the failed attempt is cut to this many characters")
    seed: int = 0

    @model_validator(mode="after")
    def _band_ordered(self) -> SocraticConfig:
        lo, hi = self.band
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"band must satisfy 0 ≤ lo < hi ≤ 1, got {self.band}")
        return self


def seeded_rng(*parts: object) -> random.Random:
    """A `random.Random` seeded from a hash of `parts` (never `seed + index`, where neighbours collide)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --- JSON with LaTeX in it (shared with synthesis.restructure) -----------------------------------------------

# A backslash JSON rejects — `\(`, `\sqrt`, `\cdot`, `\underline` — which models write when they put LaTeX in a
# JSON string. Escaped pairs (`\\`) are matched first so they are left alone.
_BAD_ESCAPE = re.compile(r'\\\\|\\(?:u(?![0-9a-fA-F]{4})|(?!["\\/bfnrtu]))')
# Valid JSON escapes that were LaTeX: `\frac` → form feed + "rac", `\boxed` → backspace + "oxed", `\times` → tab +
# "imes", `\right` → carriage return + "ight". Those control characters never belong in a math problem.
_LATEX_CONTROL = re.compile(r"[\x0c\x08]|[\t\r](?=[a-z])")
_CONTROL_NAMES = {"\x0c": "\\f", "\x08": "\\b", "\t": "\\t", "\r": "\\r"}


def extract_latex_json(text: str) -> dict:
    """`extract_json` for a JSON object whose strings may hold unescaped LaTeX: invalid escapes are doubled and
    retried, and LaTeX commands that JSON read as control characters are restored in the values."""
    try:
        obj = extract_json(text, expect=dict)
    except ParseError as first:
        repaired = _BAD_ESCAPE.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else "\\\\", text)
        if repaired == text:
            raise
        try:
            obj = extract_json(repaired, expect=dict)
        except ParseError:
            raise first from None
    assert isinstance(obj, dict)
    return {key: _restore_latex(value) for key, value in obj.items()}


def _restore_latex(value: object) -> object:
    if isinstance(value, str):
        return _LATEX_CONTROL.sub(lambda m: _CONTROL_NAMES[m.group(0)], value)
    if isinstance(value, list):
        return [_restore_latex(v) for v in value]
    return value


def first_field(obj: dict, keys: Sequence[str], *, max_chars: int = 4_000) -> str | None:
    """The first of `keys` present in `obj` as stripped text (numbers become text, a list of steps is joined by
    newlines); None when none is present or all are empty. `ParseError` for other types or over-long text."""
    for key in keys:
        value = obj.get(key)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            value = str(value)
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            value = "\n".join(str(v) for v in value)
        if not isinstance(value, str):
            raise ParseError(f"field {key!r} is {type(value).__name__}, not text")
        value = value.strip()
        if len(value) > max_chars:
            raise ParseError(f"field {key!r} longer than {max_chars} characters")
        if value:
            return value
    return None


MAX_ANSWER_CHARS = 100
_EQUALS = re.compile(r"(?<![<>!=])=(?!=)")  # an equals sign, not part of <=, >=, != or ==
_ANSWER_LEAD = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)


def clean_answer(answer: str | None, solution: str | None = None) -> str:
    """A final answer as the verifier wants it: the content of a `\\boxed{}`, without `$…$`, a leading
    "The answer is", the left side of an equation ("48 + 24 = 72" → 72) or a trailing period; taken from the
    solution's last `\\boxed{}` when missing.
    `ParseError` when there is none or it is longer than 100 characters."""
    if not answer and solution:
        answer = last_boxed(solution)
    if not answer:
        raise ParseError("no final answer in the reply")
    answer = last_boxed(answer) or answer
    answer = _ANSWER_LEAD.sub("", answer.strip())
    value = _EQUALS.split(answer)[-1].strip()
    if value:  # "48 + 24 = 72" and "x = 4" state their value last
        answer = value
    for _ in range(2):  # "$7$." and "$7.$" both become 7
        answer = answer.strip().rstrip(".").strip().strip("$")
    if not answer:
        raise ParseError("no final answer in the reply")
    if len(answer) > MAX_ANSWER_CHARS:
        raise ParseError(f"final answer longer than {MAX_ANSWER_CHARS} characters")
    return answer


# --- the refiner's prompt and reply ---------------------------------------------------------------------------


def shorten_attempt(text: str, max_chars: int) -> str:
    """The failed attempt cut to `max_chars`: its head and its tail (where the wrong final answer usually is)."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    half = (max_chars - 5) // 2
    return text[:half].rstrip() + "\n[…]\n" + text[-half:].lstrip()


def refine_prompt(question: str, attempt: str, *, attempt_chars: int = 1200) -> str:
    """The teacher's refiner input G(q, y_fail) (methods §10 step 4): the problem and the student's failed attempt,
    asking for a new problem that targets the mistake, its reference solution and its final answer as JSON."""
    return render(PROMPT, question=question.strip(), attempt=shorten_attempt(attempt, attempt_chars))


def refine_request(question: str, attempt: str, config: SocraticConfig) -> ChatRequest:
    """One teacher sample for one failure; seeded, so a rerun hits the completion cache."""
    sampling = SamplingParams(
        temperature=config.refine_temperature, max_tokens=config.refine_max_tokens, n=1, seed=config.seed
    )
    content = refine_prompt(question, attempt, attempt_chars=config.attempt_chars)
    return ChatRequest((Message("user", content),), sampling)


def refine_prompt_version() -> str:
    return prompt_version(PROMPT)


@dataclass(frozen=True, slots=True)
class Refinement:
    """What the teacher wrote from one failure: (q', y'_ref, answer)."""

    question: str
    solution: str | None
    answer: str


_QUESTION_KEYS = ("problem", "new_problem", "question")
_SOLUTION_KEYS = ("solution", "reference_solution", "steps")
_ANSWER_KEYS = ("answer", "final_answer")
MIN_QUESTION_CHARS = 10  # shorter is a bare expression or a fragment, not a problem to grade


def parse_refinement(text: str) -> Refinement:
    """The teacher's reply as a `Refinement`. JSON `{"problem", "solution", "answer"}` first; when the model
    wrote headings instead (PROBLEM: / SOLUTION: / ANSWER:), those. The answer falls back to the solution's last
    `\\boxed{}`. Raises `ParseError` (empty, truncated, prose, missing problem or answer)."""
    try:
        obj = extract_latex_json(text)
        fields = tuple(first_field(obj, keys) for keys in (_QUESTION_KEYS, _SOLUTION_KEYS, _ANSWER_KEYS))
    except ParseError as json_error:
        fields = _heading_fields(text)
        if fields[0] is None:
            raise json_error from None
    question, solution, answer = fields
    if not question:
        raise ParseError("no new problem in the reply")
    if len(question) < MIN_QUESTION_CHARS:
        raise ParseError(f"new problem shorter than {MIN_QUESTION_CHARS} characters")
    answer = clean_answer(answer, solution)
    return Refinement(question, solution, answer)


def _heading_fields(text: str) -> tuple[str | None, str | None, str | None]:
    question = heading_section(text, "NEW PROBLEM") or heading_section(text, "PROBLEM")
    solution = heading_section(text, "SOLUTION")
    answer = heading_section(text, "FINAL ANSWER") or heading_section(text, "ANSWER")
    return question, solution, answer


# --- scoring a new problem -------------------------------------------------------------------------------------


def utility(s: float, mu: float = 0.5, sigma: float = 0.2) -> float:
    """Socratic-Zero's generator utility U = exp(-(s-µ)²/(2σ²)) of a solver success rate s (methods §10 step 5)."""
    return math.exp(-((s - mu) ** 2) / (2.0 * sigma**2))


def zone(s: float) -> Zone:
    """The early README's zones: mastered (s = 1), learning (0 < s < 1), too difficult (s = 0)."""
    if s >= 1.0:
        return "mastered"
    if s <= 0.0:
        return "too_difficult"
    return "learning"


@dataclass(frozen=True, slots=True)
class KeepDecision:
    kept: bool
    reason: str
    utility: float
    zone: Zone


def keep_decision(s: float, config: SocraticConfig) -> KeepDecision:
    """Keep a new problem by the configured rule: `gaussian` (U ≥ min_utility) or `band` (lo < s < hi). Reasons
    are stable strings (no numbers but the config's), so rejects group by reason."""
    u, where = utility(s, config.mu, config.sigma), zone(s)
    if config.keep == "gaussian":
        kept = u >= config.min_utility
        return KeepDecision(kept, "" if kept else f"utility below {config.min_utility} ({where})", u, where)
    lo, hi = config.band
    kept = lo < s < hi
    return KeepDecision(kept, "" if kept else f"pass rate outside ({lo}, {hi}) ({where})", u, where)


# --- seeded choices -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One failed rollout of one input problem: what the refiner starts from."""

    problem_id: str
    sample_index: int
    completion: str
    verdict: str
    replay: bool = False

    @property
    def failure_id(self) -> str:
        return f"{self.problem_id}#{self.sample_index}"


def pick_failures(failures: Sequence[FailedAttempt], limit: int, *, seed: int, round_no: int) -> list[FailedAttempt]:
    """Up to `limit` failures, seeded: problems in a shuffled order, one failure per problem first, then a second
    per problem, and so on — so the round spreads over as many problems as it can."""
    rng = seeded_rng("socratic-failures", seed, round_no)
    by_problem: dict[str, list[FailedAttempt]] = {}
    for failure in sorted(failures, key=lambda f: (f.problem_id, f.sample_index)):
        by_problem.setdefault(failure.problem_id, []).append(failure)
    order = sorted(by_problem)
    rng.shuffle(order)
    for pid in order:
        rng.shuffle(by_problem[pid])
    picked: list[FailedAttempt] = []
    depth = 0
    while len(picked) < limit and any(len(by_problem[p]) > depth for p in order):
        picked += [by_problem[p][depth] for p in order if len(by_problem[p]) > depth][: limit - len(picked)]
        depth += 1
    return picked


def replay_count(history_size: int, share: float) -> int:
    """How many earlier items a round replays: `share` of them, rounded half up."""
    return min(history_size, math.floor(share * history_size + 0.5))


def select_replay(history: Sequence[str], share: float, *, seed: int, round_no: int) -> list[str]:
    """The replayed ids (methods §10 step 6: new problems plus a share of the historical curriculum), a seeded
    sample of `history` independent of its order; returned sorted."""
    pool = sorted(set(history))
    rng = seeded_rng("socratic-replay", seed, round_no)
    return sorted(rng.sample(pool, replay_count(len(pool), share)))


def select_seeds(problem_ids: Sequence[str], count: int, *, seed: int) -> list[str]:
    """Round 1's seed problems D_0: a seeded sample of `count` ids, independent of their order; sorted."""
    pool = sorted(set(problem_ids))
    return sorted(seeded_rng("socratic-seeds", seed).sample(pool, min(count, len(pool))))
