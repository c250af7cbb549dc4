"""Record real student completions on MATH-500, MATH and GSM8K problems, the raw material of the verifier's
regression table (issue 25, item 1).

    python bench/record_verifier_cases.py --cache-dir /tmp/verifier-cases \\
        [--models-dir /tmp/gradus-models] [--problems 160] [--problems-1-5b 64] [--max-tokens 384]

Problems are read from `../shared/data` (never copied into the repository) with the importers' own mappings,
so the gold answer is the one the pipeline would store; each is cited by file and row (0-based line of a JSONL
file, 0-based index of a JSON array). Which rows: every source's rows ordered by the sha256 of their citation,
taken round-robin over the sources, so any prefix of the list covers all four sources and the choice needs no
seed. The embedded 0.5B student answers the first `--problems` of them, the embedded 1.5B student the first
`--problems-1-5b`, one sample each, with the grading prompt (`solve_boxed_v1`) and its sampling (temperature 0.8,
top_p 0.95), `--max-tokens` per completion.

Every sample goes through the engine's persistent completion cache (`<cache-dir>/completions.sqlite`), and the
output is rewritten atomically after each batch, so an interrupted recording resumes where it stopped and a
rerun costs no model call. Output: one JSON line per completion (`bench/recordings/verifier_completions.jsonl`)
with the gold answer, the completion, the citation and the student's name and revision; the problem text is not
stored (the citation finds it). `bench/label_verifier_cases.py` turns it into the regression table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import ChatRequest, Message, SamplingParams  # noqa: E402
from engines.config import EngineConfig, build_engine  # noqa: E402
from scoring.grading.rollouts import PROMPTS  # noqa: E402
from synthesis.import_mapping import PRESETS, FieldMapping, map_row  # noqa: E402
from synthesis.problem import Problem  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "recordings" / "verifier_completions.jsonl"
PROMPT_VERSION = "solve_boxed_v1"
STUDENTS = {"0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m", "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m"}
BATCH = 14  # requests per engine call: two full decode batches of the embedded engine's 7 parallel samples


@dataclass(frozen=True, slots=True)
class Source:
    """A benchmark file under `../shared/data` and the importer mapping that reads its gold answers."""

    key: str
    path: str  # relative to ../shared/data
    mapping: FieldMapping


SOURCES = (
    Source("math500", "math/math500_test.jsonl", PRESETS["math"]),
    Source("gsm8k_test", "gsm8k/test.jsonl", PRESETS["gsm8k"]),
    Source("math_test5000", "math/math_test5000.jsonl", PRESETS["math_solution"]),
    Source("gsm8k_train", "gsm8k/train.jsonl", PRESETS["gsm8k"]),
    Source(
        "deepscaler_math_train",
        "math/deepscaler_train/math.json",
        FieldMapping(question="problem", answer="answer", answer_rule="column"),
    ),
)


@dataclass(frozen=True, slots=True)
class CitedProblem:
    source: Source
    row: int
    problem: Problem

    @property
    def citation(self) -> str:
        return f"../shared/data/{self.source.path}#row={self.row}"


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix == ".json":
        yield from enumerate(json.loads(path.read_text()))
        return
    for index, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            yield index, json.loads(line)


def _order(source: Source, row: int) -> str:
    return hashlib.sha256(f"{source.path}#row={row}".encode()).hexdigest()


SAMPLED = ("math500", "gsm8k_test", "math_test5000", "deepscaler_math_train")  # the sources the students answer here
# `gradus run` imports name a row `<file name>:<n>`, n from 1 (`synthesis.importers`)
RUN_SOURCES = {"gsm8k": "gsm8k_train", "math_train": "deepscaler_math_train"}


def select_problems(data_dir: Path, count: int) -> list[CitedProblem]:
    """The first `count` problems of the round-robin over the sources, each source in citation-hash order."""
    per_source = []
    for source in (s for s in SOURCES if s.key in SAMPLED):
        cited = []
        for row, record in _rows(data_dir / source.path):
            mapped = map_row(record, f"{source.path}:{row}", source.key, source.mapping)
            if isinstance(mapped, Problem):  # a row without a gold answer is not a verifier case
                cited.append(CitedProblem(source, row, mapped))
        per_source.append(sorted(cited, key=lambda c: _order(c.source, c.row)))
    mixed = [c for group in zip_longest(*per_source) for c in group if c is not None]
    return mixed[:count]


def _request(problem: Problem, max_tokens: int) -> ChatRequest:
    system, suffix = PROMPTS[PROMPT_VERSION]
    sampling = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens, n=1, seed=0)
    return ChatRequest((Message("system", system), Message("user", problem.question + suffix)), sampling)


def _write_atomic(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    tmp.replace(path)


def record(args: argparse.Namespace) -> None:
    counts = {"0.5b": args.problems, "1.5b": args.problems_1_5b}
    problems = select_problems(args.data_dir, max(counts.values()))
    rows: list[dict] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for student, count in counts.items():
        if count == 0:
            continue
        config = EngineConfig(model=STUDENTS[student], n_ctx=1024 + args.max_tokens, n_threads=2)
        with build_engine(config, args.models_dir, args.cache_dir / "completions.sqlite") as engine:
            chosen = problems[:count]
            for start in range(0, len(chosen), BATCH):
                batch = chosen[start : start + BATCH]
                outputs = engine.generate([_request(c.problem, args.max_tokens) for c in batch], progress=False)
                for cited, (completion,) in zip(batch, outputs, strict=True):
                    rows.append(
                        {
                            "id": f"{cited.source.key}:{cited.row}:{student}:0",
                            "source": cited.source.key,
                            "citation": cited.citation,
                            "original_id": json.loads(cited.problem.metadata).get("original_id"),
                            "gold": cited.problem.answer,
                            "completion": completion.text,
                            "finish_reason": completion.finish_reason,
                            "completion_tokens": completion.completion_tokens,
                            "student": STUDENTS[student],
                            "student_revision": engine.model_revision,
                            "prompt": PROMPT_VERSION,
                            "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": args.max_tokens, "seed": 0},
                        }
                    )
                _write_atomic(args.out, rows)
                print(
                    f"{student}: {min(start + BATCH, len(chosen))}/{len(chosen)} "
                    f"({engine.stats.model_calls} model calls, {engine.stats.cache_hits} cached; "
                    f"{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} CPU s)",
                    flush=True,
                )
    print(f"recorded {len(rows)} completions -> {args.out}")


def harvest(data_roots: list[Path], out: Path) -> None:
    """The student completions already recorded by `gradus run` in data roots (their `rollouts` table), for
    problems imported from `../shared/data`; each distinct (problem, completion) once, first root first."""
    import duckdb

    sources = {source.key: source for source in SOURCES}
    seen: set[tuple[str, str]] = set()
    rows: list[dict] = []
    for root in data_roots:
        tables = root / "tables"
        query = f"""
            select p.source, p.source_ref, p.answer, r.student_id, r.student_revision, r.sampling_hash,
                   r.sample_index, r.completion, r.finish_reason, r.completion_tokens
            from read_parquet('{tables}/rollouts/**/*.parquet', union_by_name=true) r
            join read_parquet('{tables}/problems/**/*.parquet', union_by_name=true) p using (problem_id)
            where p.source in ({", ".join(f"'{name}'" for name in RUN_SOURCES)})
            order by p.source, p.source_ref, r.student_id, r.sampling_hash, r.sample_index"""
        for source, ref, gold, student, revision, sampling, index, text, finish, tokens in (
            duckdb.connect().execute(query).fetchall()
        ):
            row = int(ref.rsplit(":", 1)[1]) - 1
            cited = sources[RUN_SOURCES[source]]
            if (f"{cited.key}:{row}", text) in seen:
                continue
            seen.add((f"{cited.key}:{row}", text))
            rows.append(
                {
                    "id": f"{cited.key}:{row}:{student}:{sampling[:8]}:{index}",
                    "source": cited.key,
                    "citation": f"../shared/data/{cited.path}#row={row}",
                    "original_id": None,
                    "gold": gold,
                    "completion": text,
                    "finish_reason": finish,
                    "completion_tokens": tokens,
                    "student": student,
                    "student_revision": revision,
                    "prompt": f"recorded by gradus run in {root} (sampling_hash {sampling})",
                    "sampling": None,
                }
            )
    _write_atomic(out, rows)
    print(f"harvested {len(rows)} distinct completions from {len(data_roots)} data roots -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, help="holds the completion cache (resumable); needed to sample")
    parser.add_argument("--models-dir", type=Path, default=Path.home() / ".cache" / "gradus" / "models")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--problems", type=int, default=160, help="problems the 0.5B student answers")
    parser.add_argument("--problems-1-5b", type=int, default=64, help="problems the 1.5B student answers")
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--from-data-roots",
        type=Path,
        nargs="+",
        help="instead of sampling: take the completions `gradus run` recorded in these data roots",
    )
    args = parser.parse_args()
    if args.from_data_roots:
        harvest(args.from_data_roots, args.out)
    else:
        record(args)


if __name__ == "__main__":
    main()
