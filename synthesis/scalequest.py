"""ScaleQuest (methods §8; Ding et al., arXiv 2410.18693): seed-free question sampling and its filter chain.

The generator gets only the chat-template prefix that opens a user turn (a system line, then the user header;
`engines.ChatRequest.open_turn`) and each completion is one question. Candidates then pass: a language/format
filter (non-empty, ASCII only as in the paper's code, sane length, not code, not a solution), a solvability check
by the teacher (greedy, reply ends with Yes/No), best-of-n responses by majority vote (the paper ranks responses
with a reward model; we have none, so agreement decides) and difficulty sampling on *our* difficulty — the
student's pass rate — which drops a seeded share of the too-easy questions.

Deviation from the paper, for generators that were not question-fine-tuned (QFT): such a model often goes on to
answer its own question in the same turn. `parse_question` keeps the lines before the first line that starts an
answer ("To solve …", "Solution:", "Step 1", …) and says so; a completion cut at `max_question_tokens` without such
a line is rejected, since its question may be unfinished. With a QFT generator, set `system_prompt` to the
paper's "You are a helpful assistant." instead of the default math-teacher line. The paper's code keeps a
solvability reply that contains "yes" anywhere; `parse_verdict` reads the verdict where the prompt asks for it.

Pure functions only; the stage is `scoring.stages.scalequest.build_scalequest`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from engines import ChatRequest, Message, SamplingParams
from synthesis.prompting import prompt_version, render
from synthesis.structured import ParseError, extract_json, field_text

QUESTION_SYSTEM = "scalequest_question_system"
SOLVABILITY = "scalequest_solvability"


class ScaleQuestConfig(BaseModel):
    """The `synthesis.scalequest` section: question sampling (paper: T 1.0, top-p 0.99), the filters' caps,
    best-of-n responses and difficulty sampling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run ScaleQuest in the synthesis job")
    questions: int = Field(16, ge=1, le=1_000_000, description="questions to sample from the generator")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="question sampling temperature (paper: 1.0)")
    top_p: float = Field(0.99, gt=0.0, le=1.0, description="question sampling top-p (paper: 0.99)")
    max_question_tokens: int = Field(256, ge=16, description="question length cap in tokens")
    responses: int = Field(3, ge=1, le=16, description="solutions sampled per question for best-of-n (paper: 5)")
    response_temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_response_tokens: int = Field(384, ge=16)
    drop_easy_share: float = Field(
        0.5, ge=0.0, le=1.0, description="difficulty sampling: share of too-easy questions dropped (seeded)"
    )
    seed: int = 0
    system_prompt: str | None = Field(
        None,
        description="the system line of the question prefix (default: the scalequest_question_system template, "
        "which steers an untuned instruct model toward math; a QFT generator wants 'You are a helpful assistant.')",
    )
    solvability_max_tokens: int = Field(192, ge=16, description="the teacher's solvability reply cap in tokens")
    difficulty_rollouts: int | None = Field(
        None,
        ge=1,
        le=64,
        description="student rollouts per question when no pass-rate predictor exists "
        "(default: rollouts.k; samples 0..k-1 are the grading stage's own, so grading reuses them from the cache)",
    )
    min_question_chars: int = Field(20, ge=1, description="shorter questions are rejected")
    max_question_chars: int = Field(1500, ge=20, description="longer questions are rejected")


# --- question sampling --------------------------------------------------------------------------------------------


def question_system(config: ScaleQuestConfig) -> str:
    """The system line of the question-only prefix."""
    return config.system_prompt if config.system_prompt is not None else render(QUESTION_SYSTEM)


def question_prompt_version(config: ScaleQuestConfig) -> str:
    """The template's version, or `custom@<hash>` for a configured system line."""
    if config.system_prompt is None:
        return prompt_version(QUESTION_SYSTEM)
    return f"custom@{hashlib.sha256(config.system_prompt.encode()).hexdigest()[:12]}"


def question_request(config: ScaleQuestConfig) -> ChatRequest:
    """All `questions` samples as one open-user-turn request: sample i has index i (and its own derived seed),
    so asking for more questions later reuses the first ones from the cache."""
    sampling = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_question_tokens,
        n=config.questions,
        seed=config.seed,
    )
    return ChatRequest.open_turn(question_system(config), sampling)


@dataclass(frozen=True, slots=True)
class ParsedQuestion:
    text: str
    trimmed_answer: bool  # the completion went on to answer the question, and that part was cut off


_HEADING = re.compile(r"^\s*#+\s*")
_BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(.*?)(?:\*\*|__)\s*$")
_LABEL = re.compile(
    r"^\s*(?:question|problem|word problem|exercise)(?:\s*#?\s*\d+(?:\.\d+)*)?\s*(?:[:.)\-]\s*|$)", re.IGNORECASE
)
_NUMBERING = re.compile(r"^\s*(?:\d+\s*[.)]\s+|[\d.]+\s*$)")  # "4. Find …", or a line that is only a number
# A line that starts answering the question: it ends the question (or, as the first line, rejects the completion).
_ANSWER_START = re.compile(
    r"^[\s#*>]*(?:\d+[.)]\s*)?(?:to (?:solve|find|determine|calculate|compute|answer|figure out)\b|solution\b|"
    r"answer\s*[:：]|final answer\b|let'?s\b|let us\b|we (?:can|need|will|start|first)\b|first(?:ly)?,|step\s*1\b|"
    r"here'?s\b|sure\b|i (?:need|will|am|'m|think)\b|the (?:answer|solution)\b|"
    r"the (?:word )?(?:problem|question) (?:asks|is asking|requires|wants)\b)",
    re.IGNORECASE,
)


def _strip_preamble(lines: list[str]) -> list[str]:
    """Drop leading heading markers, bold wrappers and labels such as "# Question 3:" or "Problem:"."""
    lines = list(lines)
    while lines:
        line = _HEADING.sub("", lines[0])
        line = _BOLD_LINE.sub(r"\1", line)
        line = _NUMBERING.sub("", _LABEL.sub("", line))
        if line.strip():
            lines[0] = line
            return lines
        lines.pop(0)
    return lines


def _json_question(text: str) -> str:
    """The `question` (or `problem`) field of a completion that is a JSON object instead of plain text."""
    obj = extract_json(text, expect=dict)
    for key in ("question", "problem"):
        found = field_text(obj, key, required=False)  # type: ignore[arg-type]
        if found:
            return found
    raise ParseError("JSON without a question field")


def parse_question(text: str, *, truncated: bool = False) -> ParsedQuestion:
    """The question in a generator completion: labels stripped, a self-answer cut off (see the module note); a
    completion that is a JSON object gives its `question` field. Raises `ParseError` for an empty completion, one
    that is only a label, or one cut at the token cap before a self-answer started (`truncated`: the completion's
    finish reason was "length")."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    if text.lstrip().startswith(("{", "```")):
        text = _json_question(text)
    lines = _strip_preamble(text.strip().splitlines())
    if not lines:
        raise ParseError("only a heading or label, no question")
    if _ANSWER_START.match(lines[0]):
        raise ParseError("starts answering before asking a question")
    kept: list[str] = [lines[0]]
    trimmed = False
    for line in lines[1:]:
        if _ANSWER_START.match(line):
            trimmed = True
            break
        kept.append(_HEADING.sub("", line))  # a markdown heading marker is layout, not part of the question
    if truncated and not trimmed:
        raise ParseError("cut at max tokens before the question ended")
    question = "\n".join(kept).strip()
    if not question:
        raise ParseError("no question text before the answer")
    return ParsedQuestion(question, trimmed)


# --- the language / format filter ---------------------------------------------------------------------------------

_CODE = re.compile(
    r"```|^\s*(?:import\s+[\w.]+|from\s+[\w.]+\s+import\b|def\s+\w+\s*\(|class\s+\w+\s*(?:\(|:|\{|extends\b|implements\b)"
    r"|#include\b|function\s*\w*\s*\(|(?:public|private|protected)\s+\w+|(?:const|let|var)\s+\w+\s*=|//|/\*|#!|"
    r"package\s+[\w.]+;)",
    re.MULTILINE,
)
_SOLUTION = re.compile(
    r"\\boxed|\bthe (?:final |correct )?answer is\b|^\s*(?:final answer|answer|solution)\s*[:：]",
    re.IGNORECASE | re.MULTILINE,
)
_TASK = re.compile(
    r"\b(?:find|compute|calculate|determine|evaluate|solve|simplify|prove|show that|express|what|which|how "
    r"(?:many|much|long|far|old|fast))\b",
    re.IGNORECASE,
)


def language_filter(question: str, *, min_chars: int = 20, max_chars: int = 1500) -> str | None:
    """Why a parsed question fails the language/format filter, or None when it passes. The paper keeps non-empty
    questions whose characters are all ASCII (code point ≤ 127); we also bound the length and reject code,
    text that states a solution or answer, and text that asks nothing."""
    if not question.strip():
        return "empty question"
    for char in question:
        if ord(char) > 127:
            return f"non-ASCII character U+{ord(char):04X} (the paper keeps ASCII-only questions)"
    if len(question) < min_chars:
        return f"too short ({len(question)} < {min_chars} characters)"
    if len(question) > max_chars:
        return f"too long ({len(question)} > {max_chars} characters)"
    if _CODE.search(question):
        return "looks like code, not a math question"
    if _SOLUTION.search(question):
        return "states a solution or answer"
    if "?" not in question and not _TASK.search(question):
        return "asks nothing (no '?' and no task such as find, compute or solve)"
    return None


# --- solvability --------------------------------------------------------------------------------------------------


def solvability_request(question: str, config: ScaleQuestConfig) -> ChatRequest:
    """The teacher's greedy solvability check of one question (methods §8, filter b)."""
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=config.solvability_max_tokens, seed=config.seed)
    return ChatRequest((Message("user", render(SOLVABILITY, question=question)),), sampling)


_VERDICT_LINE = re.compile(r"verdict\s*[:：]?\s*[*_`\"']*\s*(yes|no)\b", re.IGNORECASE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_OPENING_VERDICT = re.compile(r"^[\s*_#>\"']*(yes|no)\b[*_\"']*\s*(?:[,.!:;]|$)", re.IGNORECASE | re.MULTILINE)
_VERDICT_KEYS = ("solvable", "verdict", "answer", "valid")


def _json_verdict(text: str) -> bool | None:
    try:
        obj = extract_json(text, expect=dict)
    except ParseError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in _VERDICT_KEYS:
        value = obj.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
            return value.strip().lower() == "yes"
    return None


def parse_verdict(text: str, *, truncated: bool = False) -> bool:
    """The solvability verdict: the last "Verdict: Yes/No" line; else a JSON object with a yes/no or boolean
    `solvable`/`verdict`/`answer`/`valid`; else a lone Yes or No in one of the last three non-empty lines; else a
    reply that opens with "Yes," or "No." (the verdict first, then the reasons). Raises `ParseError` when there is
    none, or when the verdict line says both. A reply cut at the token cap (`truncated`) is not read at its end —
    its last lines are reasoning, not a conclusion — so only an explicit, JSON or opening verdict counts."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    explicit = _VERDICT_LINE.findall(text)
    if explicit:
        return explicit[-1].lower() == "yes"
    from_json = _json_verdict(text)
    if from_json is not None:
        return from_json
    if not truncated:
        tail = [line for line in text.strip().splitlines() if line.strip()][-3:]
        for line in reversed(tail):
            words = {w.lower() for w in _YES_NO.findall(line)}
            if len(words) == 2:
                raise ParseError("the verdict line says both Yes and No")
            if words:
                return words.pop() == "yes"
    opening = _OPENING_VERDICT.match(text)
    if opening:
        return opening.group(1).lower() == "yes"
    raise ParseError("cut at max tokens before a verdict" if truncated else "no Yes/No verdict at the end")


# --- best-of-n and difficulty sampling ---------------------------------------------------------------------------


def pick_response(agreeing: Sequence[int], finished: Sequence[bool], tokens: Sequence[int]) -> int:
    """Best of the responses that reached the majority answer: one that finished (was not cut at the token cap),
    then the shortest, then the earliest. Raises `ValueError` when no response agrees."""
    if not agreeing:
        raise ValueError("no agreeing response to pick from")
    return min(agreeing, key=lambda i: (not finished[i], tokens[i], i))


def drops_easy(item_id: str, share: float, seed: int) -> bool:
    """Difficulty sampling's seeded draw for one too-easy question: dropped with probability `share`. The draw
    hashes (seed, item id), so it does not depend on which other questions are in the run."""
    digest = hashlib.sha256(f"scalequest-easy:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
