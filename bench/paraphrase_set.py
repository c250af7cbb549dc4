"""Paraphrases of benchmark questions by the teacher model, in several rewrite styles, for the decontamination bench.

Each style is a versioned prompt (`STYLES`); a change of wording gets a new version, so cached rewrites of the
old wording are never mixed in. Every rewrite is a model call through the Gradus engine and its persistent
completion cache (the bench passes a cache directory), so a killed run resumes where it stopped and a rerun
makes no call. A rewrite is untrusted text: it is cut at a size limit and dropped, with its reason, when it is
empty, cut off, identical to the original or a solution rather than a problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import SampleCall
from engines.cache import cache_key

_ONLY = " Reply with the rewritten problem only: no solution, no answer, no comments."
# style -> (prompt version, instruction); the question follows the instruction after a blank line
STYLES: dict[str, tuple[str, str]] = {
    "reword": (
        "reword_v1",
        "Rewrite the following math problem in your own words: change the wording and the sentence structure, "
        "but keep every number, every name and the question asked." + _ONLY,
    ),
    "reorder": (
        "reorder_v1",
        "Rewrite the following math problem so that its information comes in a different order (for example, "
        "state what is asked first and give the facts after it). Keep every number and the question asked." + _ONLY,
    ),
    "names_numbers": (
        "names_numbers_v1",
        "Rewrite the following math problem with different names for the people and things in it and different "
        "numbers, so that it is solved with the same steps but has a different answer." + _ONLY,
    ),
    "setting": (
        "setting_v1",
        "Rewrite the following math problem in a different setting (for example, a story about apples in a shop "
        "becomes one about books in a library; an abstract problem gets a short real-world story), keeping the "
        "mathematics and the numbers the same." + _ONLY,
    ),
}
MAX_CHARS = 2000  # a rewrite longer than this is not a rewrite of a benchmark question
_LEAD_IN = re.compile(r"^\s*(?:\*\*)?(?:rewritten|reworded|new|paraphrased)?\s*(?:math\s+)?problem\s*:?\s*(?:\*\*)?\s*",
                      re.IGNORECASE)  # fmt: skip
_SOLVING = re.compile(r"(?:\\boxed|the answer is|step 1\b|solution\s*:)", re.IGNORECASE)
# A problem asks something: a question mark or an imperative/interrogative word. A rewrite without one has
# stated (often solved) the facts instead of asking about them ("Tommy raises $1,230.").
_ASKS = re.compile(
    r"\?|\b(?:find|compute|calculate|determine|evaluate|simplify|solve|express|what|how|which|who|when|where|show|"
    r"prove|give|list|enter|write)\b",
    re.IGNORECASE,
)
MIN_LENGTH_RATIO = 0.5  # a rewrite keeps the facts: under half the original's length, it has dropped some


@dataclass(frozen=True, slots=True)
class Paraphrase:
    """One accepted rewrite of benchmark item `item_id` (position `item` in the benchmark) in `style`."""

    bench: str
    item: int
    item_id: str
    style: str
    prompt_version: str
    text: str


@dataclass(frozen=True, slots=True)
class DroppedRewrite:
    """A rewrite that was not kept, and why."""

    bench: str
    item_id: str
    style: str
    reason: str


def rewrite_request(style: str, question: str, seed: int = 0) -> ChatRequest:
    """The chat request that asks for `question` rewritten in `style` (one sample, seeded)."""
    _, instruction = STYLES[style]
    sampling = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=384, seed=seed)
    return ChatRequest((Message("user", f"{instruction}\n\n{question}"),), sampling)


def clean_rewrite(text: str, original: str) -> tuple[str | None, str]:
    """(the rewrite, "") or (None, why it is dropped): strips a lead-in like "Rewritten problem:" and fences."""
    text = text.strip()[: MAX_CHARS + 1]
    if len(text) > MAX_CHARS:
        return None, f"longer than {MAX_CHARS} characters"
    text = text.strip("`").strip()
    text = _LEAD_IN.sub("", text, count=1).strip()
    first, _, rest = text.partition("\n")
    if first.rstrip().endswith(":") and rest.strip():  # "Let's rewrite the problem ...:" before the rewrite
        text = rest.strip()
    if not text:
        return None, "empty"
    if len(text) < MIN_LENGTH_RATIO * len(original.strip()):
        return None, f"under {MIN_LENGTH_RATIO:.0%} of the original's length: {text[:60]!r}"
    if not _ASKS.search(text):
        return None, f"asks nothing: {text[:60]!r}"
    if " ".join(text.split()) == " ".join(original.split()):
        return None, "identical to the original"
    if _SOLVING.search(text) and not _SOLVING.search(original):
        return None, "a solution, not a problem"
    return text, ""


def is_cached(engine: Engine, request: ChatRequest) -> bool:
    """Whether the engine's cache already holds the request's (first) sample."""
    if engine.cache is None:
        return False
    call = SampleCall(request.messages, request.sampling, request.first_sample)
    key = cache_key(engine.backend.name, engine.model_id, engine.model_revision, call)
    return key in engine.cache.get_many([key])


def paraphrase_items(
    engine: Engine,
    bench: str,
    questions: Sequence[str],
    item_ids: Sequence[str],
    items_by_style: dict[str, list[int]],
    *,
    cached_only: bool = False,
) -> tuple[list[Paraphrase], list[DroppedRewrite]]:
    """Rewrite the items of each style (positions into `questions`) with the engine; one batch for all styles.
    With `cached_only`, an item whose rewrite is not in the cache yet is left out (a dropped rewrite)."""
    jobs = [(style, item) for style, items in items_by_style.items() for item in items]
    dropped = []
    if cached_only:
        missing = [job for job in jobs if not is_cached(engine, rewrite_request(job[0], questions[job[1]]))]
        dropped = [
            DroppedRewrite(bench, item_ids[item], style, "not generated yet (cached only)") for style, item in missing
        ]
        jobs = [job for job in jobs if job not in missing]
    requests = [rewrite_request(style, questions[item]) for style, item in jobs]
    outputs = engine.generate(requests, desc=f"paraphrasing {bench}")
    kept = []
    for (style, item), [completion] in zip(jobs, outputs, strict=True):
        if not completion.ok:
            dropped.append(DroppedRewrite(bench, item_ids[item], style, f"model call failed: {completion.error}"))
            continue
        if completion.finish_reason == "length":
            dropped.append(DroppedRewrite(bench, item_ids[item], style, "cut off at max_tokens"))
            continue
        text, why = clean_rewrite(completion.text, questions[item])
        if text is None:
            dropped.append(DroppedRewrite(bench, item_ids[item], style, why))
        else:
            kept.append(Paraphrase(bench, item, item_ids[item], style, STYLES[style][0], text))
    return kept, dropped
