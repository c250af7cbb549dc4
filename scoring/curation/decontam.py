"""Leak detection: which pool problems match an item of a benchmark (any file + the importer's field mapping).

Three detectors, each reported under its own `method`, on the question text only:
- `ngram<n>` (open-r1 style): word n-grams of `comparable_text(..., mask_numbers=True)` — words are runs of
  letters and digits, every number is `0`, so an item whose numbers were changed keeps its n-grams. A problem
  is flagged when it shares at least one n-gram with an item and that item holds at least the rule's
  `min_overlap` of the problem's distinct n-grams (the score); the best item has the most shared n-grams,
  then comes first in the file. Defaults: 13-grams with no minimum, 8-grams with 30% (see `DecontamConfig`).
- `exact`: a problem with fewer words than the smallest n has no n-grams, so it is flagged when its masked
  normalized text equals an item's (score 1). A bare expression (`Compute 58 - 23.`: fewer than two words of
  letters) is different: its numbers are all it says, so only an exact match with the numbers kept counts, and
  the similarity detectors skip it (masked, `Compute 58 - 23.` is MATH's `Compute $0.8 - 0.07$.`).
- `tfidf` / `embedding`: cosine of character 3–5-gram TF-IDF vectors of the normalized text, numbers kept
  (hashed and chunked: `scoring.curation.tfidf_top1`), or of an injected embedding of the raw text, against the
  top-1 item, flagged at or above the configured threshold. These catch rewordings that break every n-gram.
- `judge` (off by default; `scoring.curation.judge`): the problems no detector above flagged, against each
  benchmark's `k` nearest items by embedding cosine (at least `min_cosine`), go to an LLM (the teacher engine)
  with a versioned prompt; its "yes" is a finding (score: the cosine) carrying the judge model and prompt
  version. Every answer, failed ones with their reason, is returned in `DecontamResult.judgements`.

Benchmarks are read with `synthesis.importers` (any file format and field mapping it reads; presets `gsm8k`,
`math`, `math_solution`). Only the question column is needed, so the answer rule is switched off: an item
whose answer cannot be extracted still counts. A malformed row is skipped and returned as a `Reject` naming
`file:line` and the reason (`DecontamResult.rejects`); a missing file or column is a `ConfigError`.
The item id is the mapping's `id_field` when it has one, else `file:line`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines import Engine
from engines.errors import ConfigError, did_you_mean
from scoring.curation.judge import JUDGE_METHOD, JudgeConfig, Judgement, judge_pairs, nearest_items
from scoring.curation.normalize import comparable_text
from scoring.curation.similarity import Embed, embedding_matrix, top1_cosine
from scoring.curation.tfidf_top1 import tfidf_top1
from scoring.schemas import CONTAMINATION, CONTAMINATION_JUDGEMENTS
from synthesis.importers import import_dataset, mapping_for
from synthesis.problem import Reject

MATCHED_TEXT_CHARS = 500


# name -> (path under the shared folder, importer preset)
BENCHMARK_PRESETS: dict[str, tuple[str, str]] = {
    "gsm8k_test": ("data/gsm8k/test.jsonl", "gsm8k"),
    "math500": ("data/math/math500_test.jsonl", "math"),
    "math_test": ("data/math/math_test5000.jsonl", "math_solution"),
}

_LETTER_WORD = re.compile(r"[a-z]{2,}")
_WORD = re.compile(r"\w+")


class BenchmarkSpec(BaseModel):
    """A benchmark file: its name in the table, its path (relative to the caller's base dir) and field mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    path: str = Field(min_length=1, description="file or save_to_disk folder; relative paths resolve from base_dir")
    preset: str | None = Field(None, description="importer preset: gsm8k, math, math_solution")
    mapping: dict[str, str] = Field(default_factory=dict, description="field-mapping overrides (question, id_field)")

    @classmethod
    def from_preset(cls, name: str, shared_dir: str | Path = "../shared") -> BenchmarkSpec:
        """A preset benchmark file under the shared folder (default `../shared`, relative to the project root)."""
        if name not in BENCHMARK_PRESETS:
            raise ConfigError(f"unknown benchmark preset {name!r};" + did_you_mean(name, BENCHMARK_PRESETS))
        relative, preset = BENCHMARK_PRESETS[name]
        return cls(name=name, path=str(Path(shared_dir) / relative), preset=preset)


class NgramRule(BaseModel):
    """Flag a problem that shares at least one word n-gram with an item holding ≥ `min_overlap` of its n-grams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(ge=1, le=64)
    min_overlap: float = Field(0.0, ge=0.0, le=1.0, description="0: one shared n-gram is enough (open-r1)")


class DecontamConfig(BaseModel):
    """Detectors and thresholds. `embedding_threshold` applies only when an embed function is given.

    The defaults come from the planted measurement in `tests/scoring/curation/test_decontam.py`: with numbers masked,
    one shared 13-gram flags almost no clean problem, but one shared 8-gram flagged 30% of a procedural pool
    (templated phrases like "is the remainder when 0 is divided by" and runs of numbers); requiring the item
    to hold 30% of the problem's 8-grams brings that to ~0.1% without losing any verbatim or re-numbered item.
    TF-IDF: no clean procedural problem (4,283, every family) reached 0.75 against GSM8K test, MATH-500 and
    MATH test, while 98% of lightly reworded items were at ≥ 0.8, so 0.8 leaves a margin on both sides.
    Embedding (all-MiniLM-L6-v2): a paraphrase's cosine to its own item spreads widely (median ~0.78), while
    clean same-distribution problems (GSM8K train, MATH train vs GSM8K test and MATH-500) reached 0.85 in none of
    the 600 the threshold was chosen on. 0.85 is the default; on held-out items (`bench/decontam_paraphrase.py`,
    `bench/results/decontamination.md`) it flags 0.33% of 600 other train questions and finds 2 of 10 of the
    0.5B model's rewrites (6 of 10 at 0.80, with 1.8% flagged).
    N-grams whose tokens are mostly numbers or single letters, and n-grams found in more than `ngram_max_items`
    items (a benchmark's boilerplate, such as Asymptote headers), are not evidence.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ngrams: tuple[NgramRule, ...] = Field(
        (NgramRule(n=13), NgramRule(n=8, min_overlap=0.3)), description="word n-gram rules, each its own method"
    )
    ngram_max_items: int = Field(
        10, ge=1, description="an n-gram found in more benchmark items than this is boilerplate, not evidence"
    )
    tfidf: bool = Field(True, description="also compare char 3-5-gram TF-IDF vectors (top-1 item)")
    tfidf_threshold: float = Field(0.8, gt=0.0, le=1.0, description="cosine at or above which tfidf flags")
    embedding_model: str | None = Field(
        None, description="sentence-transformers model (name or directory) for the embedding detector; None: off"
    )
    embedding_threshold: float = Field(0.85, gt=0.0, le=1.0, description="cosine at or above which embedding flags")
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="LLM judge on the nearest items (scoring.curation.judge); off"
    )
    embed_batch_size: int = Field(256, ge=1)
    block_cells: int = Field(1 << 22, ge=1024, description="similarity cells per block (bounds memory)")

    @field_validator("ngrams")
    @classmethod
    def _distinct(cls, rules: tuple[NgramRule, ...]) -> tuple[NgramRule, ...]:
        sizes = [rule.n for rule in rules]
        if not rules or len(set(sizes)) != len(sizes):
            raise ValueError(f"ngrams needs at least one rule and distinct sizes, got n = {sizes}")
        return tuple(sorted(rules, key=lambda rule: -rule.n))


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Loaded benchmark questions with their item ids, and the rows that could not be read."""

    name: str
    item_ids: list[str]
    questions: list[str]
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DecontamResult:
    """Flagged problem ids (input order), one `CONTAMINATION` row per finding, flagged problems per benchmark,
    and one `CONTAMINATION_JUDGEMENTS` row per pair the judge was asked about (empty when it is off)."""

    flagged_ids: list[str]
    contamination: pa.Table
    counts: dict[str, int]
    rejects: list[Reject]
    judgements: pa.Table = field(default_factory=CONTAMINATION_JUDGEMENTS.empty_table)


def load_benchmark(spec: BenchmarkSpec, base_dir: str | Path = ".") -> Benchmark:
    """Read a benchmark's questions through the importer; unreadable rows come back as rejects."""
    path = Path(spec.path)
    if not path.is_absolute():
        path = Path(base_dir) / path
    overrides = dict(spec.mapping)
    question_column = mapping_for(spec.preset, overrides).question
    # Only the question matters here: read it as the "answer" too, so no row is lost to a missing answer.
    overrides.update(answer=question_column, answer_rule="column", solution="")
    mapping = mapping_for(spec.preset, overrides)
    result = import_dataset(path, source=spec.name, mapping=mapping)
    item_ids = []
    for problem in result.problems:
        original = json.loads(problem.metadata).get("original_id") if mapping.id_field else None
        item_ids.append(str(original) if original is not None else problem.source_ref)
    return Benchmark(spec.name, item_ids, [p.question for p in result.problems], list(result.rejects))


# --- n-gram overlap ----------------------------------------------------------------------------------------------


# MATH draws its figures in Asymptote: `draw((0,0)--(7,0)); label("$A$", ...)` is boilerplate shared by unrelated
# problems, and its command names are words, so it made word n-grams match across them (observed: a MATH-train
# problem about a row of squares flagged against a MATH-500 cylinder). The prose around a figure carries the match.
_DRAWING = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.DOTALL | re.IGNORECASE)


def without_drawings(text: str) -> str:
    """`text` with its Asymptote figures (`[asy] … [/asy]`, an unclosed one to the end) replaced by a space."""
    return _DRAWING.sub(" ", text) if "[asy]" in text.lower() else text


def words(text: str) -> list[str]:
    """The words n-grams are made of: runs of letters/digits of the number-masked normalized text, figures
    dropped."""
    return _WORD.findall(comparable_text(without_drawings(text), mask_numbers=True))


def is_bare_expression(text: str) -> bool:
    """Fewer than two words of letters (`Compute 58 - 23.`, `What is 7 * 8?` has three): the numbers are the
    whole problem, so a copy with other numbers is another problem, not a leak."""
    return len(_LETTER_WORD.findall(comparable_text(text))) < 2


def _masked(text: str) -> tuple[str, list[str]]:
    """The number-masked comparable text (figures kept: the exact fallback compares whole texts) and its words
    without figures (what n-grams are made of)."""
    masked = comparable_text(text, mask_numbers=True)
    drawn = without_drawings(text)
    return masked, _WORD.findall(masked if drawn is text else comparable_text(drawn, mask_numbers=True))


def _ngram_keys(tokens: list[str], n: int) -> set[int]:
    """Hashes of the informative n-grams: at least half their tokens are words of two or more letters.

    Runs of masked numbers (`0 0 0 0 …`) and symbol soup (`x 0 y 0 z`) are shared by unrelated problems, so
    they are not evidence of a leak. Python's hash of a tuple of strings is exact within one process, which is
    all an in-memory index needs.
    """
    wordy = [len(token) > 1 and token.isalpha() for token in tokens]
    need = max(2, n // 4)
    keys = set()
    running = sum(wordy[:n])
    for i in range(len(tokens) - n + 1):
        if i:
            running += wordy[i + n - 1] - wordy[i - 1]
        if running >= need:
            keys.add(hash(tuple(tokens[i : i + n])))
    return keys


class NgramIndex:
    """Benchmark n-grams (hash → item positions) per rule, plus masked full texts for the short-text fallback."""

    def __init__(
        self,
        questions: Sequence[str],
        rules: Sequence[NgramRule] = DecontamConfig().ngrams,
        max_items: int = DecontamConfig().ngram_max_items,
    ) -> None:
        self.rules = tuple(sorted(rules, key=lambda rule: -rule.n))
        self.max_items = max_items
        self.shortest = min(rule.n for rule in self.rules)
        self.tables: dict[int, dict[int, int | tuple[int, ...]]] = {rule.n: {} for rule in self.rules}
        self.texts: dict[str, int] = {}
        self.plain_texts: dict[str, int] = {}  # numbers kept: what a bare expression must equal
        for item, question in enumerate(questions):
            masked, tokens = _masked(question)
            self.texts.setdefault(masked, item)
            self.plain_texts.setdefault(comparable_text(question), item)
            for n, table in self.tables.items():
                for key in _ngram_keys(tokens, n):
                    held = table.get(key)
                    if held is None:
                        table[key] = item
                    elif held != item and (isinstance(held, int) or item not in held):
                        # most n-grams belong to one item; a shared one keeps every item it occurs in
                        table[key] = (held, item) if isinstance(held, int) else (*held, item)

    def match(self, question: str) -> list[tuple[str, int, float]]:
        """(method, item position, score) for each rule that flags the question, or the exact fallback.

        The score is the share of the question's distinct n-grams found in its best item (most shared, then
        the earliest item).
        """
        masked, tokens = _masked(question)
        if len(tokens) < self.shortest:
            if is_bare_expression(question):
                item = self.plain_texts.get(comparable_text(question))
            else:
                item = self.texts.get(masked)
            return [] if item is None else [("exact", item, 1.0)]
        found = []
        for rule in self.rules:
            keys = _ngram_keys(tokens, rule.n)
            hits: Counter[int] = Counter()
            for key in keys:
                held = self.tables[rule.n].get(key)
                if held is None:
                    continue
                if isinstance(held, int):
                    hits[held] += 1
                elif len(held) <= self.max_items:  # an n-gram in many items is the benchmark's boilerplate
                    hits.update(held)
            if hits:
                item, shared = min(hits.items(), key=lambda kv: (-kv[1], kv[0]))
                if shared / len(keys) >= rule.min_overlap:
                    found.append((f"ngram{rule.n}", item, shared / len(keys)))
        return found


# --- vector similarity ---------------------------------------------------------------------------------------------


# --- the detector ---------------------------------------------------------------------------------------------------


def decontaminate(
    problems: Sequence[dict[str, Any]],
    benchmarks: Sequence[BenchmarkSpec | Benchmark],
    config: DecontamConfig,
    embed: Embed | None = None,
    base_dir: str | Path = ".",
    judge_engine: Engine | None = None,
) -> DecontamResult:
    """Check every problem's question against every benchmark with each configured detector.

    A problem is flagged when any detector flags it against any benchmark; every finding is a row. With
    `config.judge.enabled`, the problems no other detector flagged then go to the judge (`judge_engine`, with
    the `embed` vectors), whose "yes" is a finding too.
    """
    if config.judge.enabled and (judge_engine is None or embed is None):
        raise ConfigError("the judge detector needs an engine and an embedding model (detectors.embedding_model)")
    for index, problem in enumerate(problems):
        if "problem_id" not in problem or "question" not in problem:
            raise ValueError(f"problem #{index} needs problem_id and question; has keys {sorted(problem)}")
    ids = [str(p["problem_id"]) for p in problems]
    questions = [str(p["question"]) for p in problems]
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    rejects: list[Reject] = []
    flagged: set[int] = set()
    # the pool is embedded once, not once per benchmark
    pool_vectors = embedding_matrix(questions, embed, batch_size=config.embed_batch_size) if embed is not None else None
    loaded = [spec if isinstance(spec, Benchmark) else load_benchmark(spec, base_dir) for spec in benchmarks]
    # Numbers are kept for TF-IDF: masked, every short "Compute 0 + 0." would match MATH's "Compute 0 - 0." at
    # cosine 0.98. Re-numbered copies are the n-gram detectors' job, which mask them. The pool's text is
    # vectorized once for every benchmark.
    tfidf = (
        tfidf_top1(
            [comparable_text(q) for q in questions],
            [[comparable_text(q) for q in bench.questions] for bench in loaded],
            block_cells=config.block_cells,
        )
        if config.tfidf and questions
        else [None] * len(loaded)
    )
    bench_vectors = []
    for bench, bench_tfidf in zip(loaded, tfidf, strict=True):
        rejects.extend(bench.rejects)
        vectors = (
            embedding_matrix(bench.questions, embed, batch_size=config.embed_batch_size)
            if embed is not None and bench.questions
            else None
        )
        bench_vectors.append(vectors)
        findings = _findings(questions, bench, config, pool_vectors, vectors, bench_tfidf)
        hit = {index for index, _, _, _ in findings}
        counts[bench.name] = len(hit)
        flagged |= hit
        rows.extend(_finding_row(ids[index], bench, item, score, method) for index, method, item, score in findings)
    judged: list[dict[str, Any]] = []
    if config.judge.enabled and judge_engine is not None and pool_vectors is not None:
        # Only what the cheaper detectors left: the judge can add a flag, never take one away, and the CPU it
        # costs is spent where it can change the outcome.
        unflagged = [i for i in range(len(ids)) if i not in flagged and not is_bare_expression(questions[i])]
        for bench, vectors in zip(loaded, bench_vectors, strict=True):
            if vectors is None or not unflagged:
                continue
            judgements = judge_benchmark(judge_engine, config.judge, questions, unflagged, pool_vectors, bench, vectors)
            found, asked = _judge_rows(ids, bench, judgements, judge_engine, config.judge.prompt)
            rows.extend(found)
            judged.extend(asked)
            hit = {j.problem for j in judgements if j.verdict == "yes"}
            counts[bench.name] += len(hit)  # these problems had no other finding against any benchmark
            flagged |= hit
    table = pa.Table.from_pylist(rows, schema=CONTAMINATION)
    judgement_table = pa.Table.from_pylist(judged, schema=CONTAMINATION_JUDGEMENTS)
    return DecontamResult([ids[i] for i in sorted(flagged)], table, counts, rejects, judgement_table)


def judge_benchmark(
    engine: Engine,
    config: JudgeConfig,
    questions: Sequence[str],
    positions: Sequence[int],
    pool_vectors: np.ndarray,
    bench: Benchmark,
    bench_vectors: np.ndarray,
) -> list[Judgement]:
    """The judge's answers for the problems at `positions` against their nearest items of one benchmark
    (problem and item positions refer to `questions` and `bench.questions`)."""
    chosen = np.asarray(positions, dtype=np.int64)
    pairs = nearest_items(pool_vectors[chosen], bench_vectors, config.k, config.min_cosine)
    pairs = [(int(chosen[row]), item, cosine) for row, item, cosine in pairs]
    return judge_pairs(engine, config, questions, bench.questions, pairs)


def _finding_row(problem_id: str, bench: Benchmark, item: int, score: float, method: str) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "benchmark": bench.name,
        "benchmark_item_id": bench.item_ids[item],
        "score": float(score),
        "method": method,
        "matched_text": bench.questions[item][:MATCHED_TEXT_CHARS],
    }


def _judge_rows(
    ids: list[str], bench: Benchmark, judgements: list[Judgement], engine: Engine, prompt: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(`contamination` rows for the judge's yes answers, `contamination_judgements` rows for all of them)."""
    model = f"{engine.model_id}@{engine.model_revision}"
    judge_columns = {"judge_verdict": "yes", "judge_model": model, "judge_prompt": prompt}
    found = [
        _finding_row(ids[j.problem], bench, j.item, j.cosine, JUDGE_METHOD) | judge_columns
        for j in judgements
        if j.verdict == "yes"
    ]
    return found, [_judgement_row(ids[j.problem], bench, j, model, prompt) for j in judgements]


def _judgement_row(problem_id: str, bench: Benchmark, j: Judgement, model: str, prompt: str) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "benchmark": bench.name,
        "benchmark_item_id": bench.item_ids[j.item],
        "cosine": j.cosine,
        "verdict": j.verdict,
        "reason": j.reason,
        "judge_model": model,
        "judge_prompt": prompt,
    }


def _findings(
    questions: list[str],
    bench: Benchmark,
    config: DecontamConfig,
    pool_vectors: np.ndarray | None,
    bench_vectors: np.ndarray | None,
    tfidf: tuple[np.ndarray, np.ndarray] | None,
) -> list[tuple[int, str, int, float]]:
    """(problem position, method, item position, score) for one benchmark; `tfidf` is its TF-IDF top-1."""
    found: list[tuple[int, str, int, float]] = []
    if not bench.questions or not questions:
        return found
    index = NgramIndex(bench.questions, config.ngrams, config.ngram_max_items)
    for position, question in enumerate(questions):
        found.extend((position, method, item, score) for method, item, score in index.match(question))
    top1: list[tuple[str, float, np.ndarray, np.ndarray]] = []
    if tfidf is not None:
        top1.append(("tfidf", config.tfidf_threshold, *tfidf))
    if bench_vectors is not None and pool_vectors is not None:
        # raw text: embedding models were trained on text as people write it, not on our normal form
        top1.append(
            (
                "embedding",
                config.embedding_threshold,
                *top1_cosine(pool_vectors, bench_vectors, block_cells=config.block_cells),
            )
        )
    bare = {i for i, q in enumerate(questions) if is_bare_expression(q)}
    for method, threshold, best, score in top1:
        for position in np.flatnonzero(score >= threshold).tolist():
            if position in bare:  # its only content is numbers, which a cosine over text does not weigh
                continue
            found.append((position, method, int(best[position]), float(score[position])))
    return found
