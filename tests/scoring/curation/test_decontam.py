"""Decontamination against the real benchmark files: planted recall per edit type, false positives, loading."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from engines.errors import ConfigError
from scoring.curation.decontam import (
    CONTAMINATION,
    MATCHED_TEXT_CHARS,
    Benchmark,
    BenchmarkSpec,
    DecontamConfig,
    NgramIndex,
    NgramRule,
    decontaminate,
    load_benchmark,
)
from synthesis.families import FAMILIES

PLANTED_PER_BENCHMARK = 100
CLEAN_PER_LEVEL = 30


# --- deterministic edits ---------------------------------------------------------------------------------------


def change_numbers(text: str, rng: random.Random) -> str:
    """Every integer replaced by a different one with as many digits."""

    def replace(match: re.Match[str]) -> str:
        digits = match.group(0)
        low = 10 ** (len(digits) - 1) if len(digits) > 1 else 0
        options = [str(v) for v in range(low, min(10 ** len(digits), low + 1000)) if str(v) != digits]
        return rng.choice(options) if options else digits

    return re.sub(r"\d+", replace, text)


def whitespace_latex(text: str, rng: random.Random) -> str:
    """The same text as another source might typeset it: spacing, math delimiters, \\dfrac, \\left(, 1,000."""
    text = text.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)")
    text = re.sub(r"\$([^$]+)\$", lambda m: rng.choice([f"\\({m[1]}\\)", f"$ {m[1]} $"]), text)
    text = re.sub(r"(?<=[=+])", lambda _: rng.choice(["", " ", "\\,"]), text)
    text = re.sub(r"\b(\d{1,3})(\d{3})\b", r"\1,\2", text)
    return re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n"]), text)


_SYNONYMS = {
    "find": "determine",
    "what": "which",
    "compute": "calculate",
    "many": "much",
    "total": "overall",
    "number": "amount",
    "each": "every",
    "has": "owns",
    "buys": "purchases",
    "the": "a",
}


def reword(text: str, rng: random.Random) -> str:
    """Light rewording: two neighbouring sentences swapped (or the two halves), two words replaced by a
    synonym and three neighbouring plain words transposed — prose only, the math is left as written."""
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    if len(sentences) >= 3:
        i = rng.randrange(len(sentences) - 2)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
    elif len(sentences) == 2:
        sentences.reverse()
    tokens = " ".join(sentences).split(" ")
    replaceable = [i for i, t in enumerate(tokens) if t.lower() in _SYNONYMS]
    for i in rng.sample(replaceable, min(2, len(replaceable))):
        tokens[i] = _SYNONYMS[tokens[i].lower()]
    plain = [i for i in range(len(tokens) - 1) if tokens[i].isalpha() and tokens[i + 1].isalpha()]
    for i in rng.sample(plain, min(3, len(plain))):
        tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
    return " ".join(tokens)


EDITS: dict[str, Callable[[str, random.Random], str]] = {
    "verbatim": lambda text, _: text,
    "numbers_changed": change_numbers,
    "whitespace_latex": whitespace_latex,
    "reworded": reword,
}


def _clean_pool() -> list[dict]:
    pool = {}
    for name in FAMILIES.names():
        family = FAMILIES.get(name)()
        for p in family.sample(2024, list(family.difficulties), CLEAN_PER_LEVEL):
            pool[p.problem_id] = {"problem_id": p.problem_id, "question": p.question, "source": "procedural"}
    return list(pool.values())


@pytest.fixture(scope="module")
def benchmarks(shared_dir: Path) -> list[Benchmark]:
    """GSM8K test and MATH-500 (planted from), and MATH test (5,000 items; MATH-500 is a subset of it)."""
    names = ("gsm8k_test", "math500", "math_test")
    return [load_benchmark(BenchmarkSpec.from_preset(name, shared_dir)) for name in names]


def test_planted_recall_and_false_positives(benchmarks: list[Benchmark]) -> None:
    clean = _clean_pool()
    planted: dict[str, tuple[str, str, str]] = {}  # problem_id -> (benchmark, item id, edit)
    pool = list(clean)
    planted_from = benchmarks[:2]
    for bench in planted_from:
        for item in random.Random(f"pick:{bench.name}").sample(range(len(bench.questions)), PLANTED_PER_BENCHMARK):
            for edit, apply in EDITS.items():
                rng = random.Random(f"{bench.name}:{item}:{edit}")
                pid = f"planted:{bench.name}:{item}:{edit}"
                pool.append({"problem_id": pid, "question": apply(bench.questions[item], rng), "source": "import"})
                planted[pid] = (bench.name, bench.item_ids[item], edit)
    random.Random(0).shuffle(pool)

    result = decontaminate(pool, benchmarks, DecontamConfig())

    assert result.contamination.schema == CONTAMINATION
    rows = result.contamination.to_pylist()
    flagged = set(result.flagged_ids)
    by_problem: dict[str, list[dict]] = {}
    for row in rows:
        by_problem.setdefault(row["problem_id"], []).append(row)
    methods = sorted({row["method"] for row in rows}, key=lambda m: (not m.startswith("ngram"), m))
    print(f"\nplanted recall ({PLANTED_PER_BENCHMARK} items per benchmark and edit; pool of {len(pool)}):")
    print(f"{'edit':18s} {'benchmark':11s} {'any':>6s} " + " ".join(f"{m:>8s}" for m in methods))
    recall: dict[str, list[bool]] = {}
    for edit in EDITS:
        for bench in planted_from:
            ids = [pid for pid, (b, _, e) in planted.items() if b == bench.name and e == edit]
            # a hit counts only when it names the benchmark item the problem was planted from
            hits = {
                m: [
                    any(r["method"] == m and r["benchmark_item_id"] == planted[p][1] for r in by_problem.get(p, []))
                    for p in ids
                ]
                for m in methods
            }
            found = [any(hits[m][i] for m in methods) for i in range(len(ids))]
            recall.setdefault(edit, []).extend(found)
            cells = " ".join(f"{np.mean(hits[m]):8.3f}" for m in methods)
            print(f"{edit:18s} {bench.name:11s} {np.mean(found):6.3f} {cells}")
    false_positives = [p["problem_id"] for p in clean if p["problem_id"] in flagged]
    fp_rate = len(false_positives) / len(clean)
    print(
        f"false positives on {len(clean)} clean procedural problems (vs all {len(benchmarks)} benchmarks): "
        f"{len(false_positives)} ({fp_rate:.2%})"
    )
    questions = {p["problem_id"]: p["question"] for p in clean}
    for pid in false_positives[:3]:
        found = [(r["method"], round(r["score"], 3), r["matched_text"][:70]) for r in by_problem[pid]]
        print(f"  {questions[pid][:70]!r} -> {found}")

    assert np.mean(recall["verbatim"]) == 1.0
    for edit in ("numbers_changed", "whitespace_latex", "reworded"):
        assert np.mean(recall[edit]) >= 0.95, edit
    assert fp_rate <= 0.01
    assert result.counts == {
        b.name: len({r["problem_id"] for r in rows if r["benchmark"] == b.name}) for b in benchmarks
    }
    assert flagged == {r["problem_id"] for r in rows}
    assert all(0.0 < r["score"] <= 1.0 and len(r["matched_text"]) <= MATCHED_TEXT_CHARS for r in rows)


def test_loading_presets_gives_ids_and_every_item(shared_dir: Path) -> None:
    math500 = load_benchmark(BenchmarkSpec.from_preset("math500", shared_dir))
    first = json.loads((shared_dir / "data" / "math" / "math500_test.jsonl").open(encoding="utf-8").readline())
    assert len(math500.questions) == 500 and not math500.rejects
    assert math500.item_ids[0] == first["unique_id"] and math500.questions[0] == first["problem"].strip()
    gsm8k = load_benchmark(BenchmarkSpec.from_preset("gsm8k_test", shared_dir))
    assert len(gsm8k.item_ids) == 1319 and gsm8k.item_ids[:2] == ["test.jsonl:1", "test.jsonl:2"]
    with pytest.raises(ConfigError, match="did you mean 'math500'"):
        BenchmarkSpec.from_preset("math50", shared_dir)


def test_malformed_rows_are_rejects_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bench.jsonl"
    lines = [
        json.dumps({"q": "How many legs do 7 spiders have in total if each spider has 8 legs?", "id": "a"}),
        "{not json",
        "",
        json.dumps({"q": "", "id": "c"}),
        json.dumps({"q": "What is the remainder when 2024 is divided by 7 after adding 13 to it?", "id": "d"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = BenchmarkSpec(name="mine", path="bench.jsonl", mapping={"question": "q", "id_field": "id"})
    bench = load_benchmark(spec, base_dir=tmp_path)
    assert bench.item_ids == ["a", "d"]
    assert sorted(r.input_ref for r in bench.rejects) == ["bench.jsonl:2", "bench.jsonl:4"]
    problems = [{"problem_id": "p", "question": lines[0][7:75]}]
    result = decontaminate(problems, [spec], DecontamConfig(), base_dir=tmp_path)
    assert len(result.rejects) == 2 and result.flagged_ids == ["p"]
    with pytest.raises(ConfigError, match="no column 'question'"):
        load_benchmark(BenchmarkSpec(name="x", path=str(path)))


def test_short_texts_fall_back_to_exact_masked_match() -> None:
    bench = Benchmark("b", ["i1", "i2"], ["Evaluate $\\log_2 64$.", "Simplify $\\sqrt{242}$."])
    problems = [
        {"problem_id": "variant", "question": "Evaluate \\( \\log_2 81 \\)."},
        {"problem_id": "other", "question": "Simplify $\\sqrt{243} + 1$."},
    ]
    result = decontaminate(problems, [bench], DecontamConfig(tfidf=False))
    assert result.contamination.to_pylist() == [
        {
            "problem_id": "variant",
            "benchmark": "b",
            "benchmark_item_id": "i1",
            "score": 1.0,
            "method": "exact",
            "matched_text": "Evaluate $\\log_2 64$.",
            # the judge's columns: set on its own rows only
            "judge_verdict": None,
            "judge_model": None,
            "judge_prompt": None,
        }
    ]


def test_a_bare_expression_matches_only_with_its_own_numbers() -> None:
    bench = Benchmark("b", ["i1", "i2"], ["Compute $0.8 - 0.07$.", "Compute $(-49)\\div 7$."])
    problems = [
        {"problem_id": "renumbered", "question": "Compute 58 - 23."},  # masked, this is item i1
        {"problem_id": "copy", "question": "Compute 0.8 - 0.07."},
        {"problem_id": "worded", "question": "Compute (-36) \\div 4."},  # two words of letters: masked match
    ]
    result = decontaminate(problems, [bench], DecontamConfig())
    found = {(r["problem_id"], r["benchmark_item_id"], r["method"]) for r in result.contamination.to_pylist()}
    assert ("copy", "i1", "exact") in found and ("worded", "i2", "exact") in found
    assert "renumbered" not in result.flagged_ids, "no detector, similarity ones included, flags it"


def test_min_overlap_stops_a_shared_template_phrase() -> None:
    item = "What is the remainder when $7^{4}$ is divided by $5$? Express your answer as an integer, please."
    problem = (
        "Compute 12^3 mod 5, that is, the remainder when 12^3 is divided by 5. Give the answer as a single integer "
        "from 0 to 4, and show each step of the reduction you used along the way."
    )
    index = NgramIndex([item], [NgramRule(n=8, min_overlap=0.0)])
    loose = index.match(problem)
    assert [(m, i) for m, i, _ in loose] == [("ngram8", 0)] and loose[0][2] < 0.3
    assert NgramIndex([item], [NgramRule(n=8, min_overlap=0.3)]).match(problem) == []
    assert NgramIndex([item], [NgramRule(n=8, min_overlap=0.3)]).match(item.replace("7^{4}", "9^{2}"))[0][2] == 1.0


def test_embedding_path_and_truncated_match_text() -> None:
    long_item = "A farmer plants rows of corn. " * 40
    bench = Benchmark("b", ["i0", "i1"], [long_item, "How tall is the tower?"])
    meaning = {long_item: 0, "How tall is the tower?": 1, "What is the height of the tower?": 1, "Name a color.": 2}

    def embed(texts: list[str]) -> np.ndarray:
        return np.eye(3)[[meaning[t] for t in texts]]

    problems = [
        {"problem_id": "para", "question": "What is the height of the tower?"},
        {"problem_id": "copy", "question": long_item},
        {"problem_id": "none", "question": "Name a color."},
    ]
    result = decontaminate(problems, [bench], DecontamConfig(tfidf=False), embed=embed)
    rows = result.contamination.to_pylist()
    assert result.flagged_ids == ["para", "copy"] and result.counts == {"b": 2}
    assert {(r["problem_id"], r["method"]) for r in rows} >= {("para", "embedding"), ("copy", "embedding")}
    assert {r["method"] for r in rows if r["problem_id"] == "copy"} == {"ngram13", "ngram8", "embedding"}
    assert all(len(r["matched_text"]) <= MATCHED_TEXT_CHARS for r in rows)
    with pytest.raises(ValueError, match="shape"):
        decontaminate(problems, [bench], DecontamConfig(tfidf=False), embed=lambda texts: np.ones((1, 2)))


def test_config_and_input_are_validated() -> None:
    with pytest.raises(ValueError, match="needs problem_id and question"):
        decontaminate([{"problem_id": "a"}], [Benchmark("b", ["i"], ["q"])], DecontamConfig())
    with pytest.raises(ValidationError, match="distinct sizes"):
        DecontamConfig(ngrams=[{"n": 8}, {"n": 8, "min_overlap": 0.5}])
    with pytest.raises(ValidationError):
        DecontamConfig(ngram_size=8)
    assert [r.n for r in DecontamConfig(ngrams=[{"n": 8}, {"n": 13}]).ngrams] == [13, 8]


ROW_OF_SQUARES = (
    "[asy]\nunitsize(0.35inch);\ndraw((0,0)--(7,0)--(7,1)--(0,1)--cycle);\ndraw((1,0)--(1,1));\n"
    'draw((2,0)--(2,1));\nlabel("$A$",(0,0),SW);\nlabel("$B$",(7,1),NE);\n[/asy]'
)


def test_a_shared_asymptote_figure_is_not_a_leak_but_a_copy_with_its_figure_is() -> None:
    item = f"The volume of the cylinder shown is $45\\pi$ cubic cm. What is its height?\n{ROW_OF_SQUARES}"
    unrelated = f"The integers in the row of squares form an arithmetic sequence. What is $N$?\n{ROW_OF_SQUARES}"
    index = NgramIndex([item], DecontamConfig().ngrams)
    assert index.match(unrelated) == []
    copied = index.match(item.replace("45", "54"))
    assert copied and {method for method, _, _ in copied} >= {"ngram13"} and all(score == 1.0 for *_, score in copied)
    # without the rule the figure alone matched: the drawing commands are words
    drawing_only = NgramIndex([ROW_OF_SQUARES + " " + ROW_OF_SQUARES], DecontamConfig().ngrams)
    assert drawing_only.match(ROW_OF_SQUARES + " " + ROW_OF_SQUARES) == [("exact", 0, 1.0)]
