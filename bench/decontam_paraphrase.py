"""Decontamination recall on benchmark items PARAPHRASED by the embedded model, per detector.

    python bench/decontam_paraphrase.py [--items 20] [--clean-real 300] [--embed]
        [--model qwen2.5-coder-0.5b-instruct-q4_k_m] [--shared ../shared]

Takes the first `--items` questions of GSM8K test and of MATH-500, asks the embedded model (through the Gradus
engine and its persistent cache under `.gradus-bench/`) to rewrite each one in different words keeping every
number, plants the rewrites among clean procedural problems, runs `scoring.decontam.decontaminate` with the
default detectors against both benchmarks, and prints the share of paraphrases found (attributed to the item
they came from) per detector, plus the false positives on the clean problems.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engines import ChatRequest, Message, SamplingParams  # noqa: E402
from engines.config import EngineConfig, build_engine  # noqa: E402
from scoring.decontam import BenchmarkSpec, DecontamConfig, decontaminate, load_benchmark, top1_cosine  # noqa: E402
from scoring.dedup import embedding_matrix  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROMPT = (
    "Rewrite the following math problem in different words. Keep every number, quantity and the question "
    "asked exactly the same. Reply with the rewritten problem only.\n\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20, help="paraphrased items per benchmark")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--embed", action="store_true", help="also use all-MiniLM-L6-v2 embeddings")
    parser.add_argument("--clean-real", type=int, default=300, help="clean GSM8K-train and MATH-train problems each")
    args = parser.parse_args()
    shared = Path(args.shared)
    specs = [
        BenchmarkSpec(name="gsm8k_test", path=str(shared / "data/gsm8k/test.jsonl"), preset="gsm8k"),
        BenchmarkSpec(name="math500", path=str(shared / "data/math/math500_test.jsonl"), preset="math"),
    ]
    benchmarks = [load_benchmark(spec) for spec in specs]
    root = REPO / ".gradus-bench"
    engine = build_engine(
        EngineConfig(backend="embedded", model=args.model, n_ctx=2048), root / "models", root / "cache" / "p.sqlite"
    )
    planted: list[dict[str, str]] = []
    sampling = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=320, seed=0)
    for bench in benchmarks:
        requests = [ChatRequest((Message("user", PROMPT + q),), sampling) for q in bench.questions[: args.items]]
        outputs = engine.generate(requests, desc=f"paraphrasing {bench.name}")
        for item_id, question, [completion] in zip(bench.item_ids, bench.questions, outputs, strict=False):
            text = completion.text.strip()
            if completion.ok and text and text != question:
                planted.append(
                    {
                        "problem_id": f"para:{bench.name}:{item_id}",
                        "question": text,
                        "bench": bench.name,
                        "item": item_id,
                    }
                )
    engine.close()
    clean = []
    for name in FAMILIES.names():
        for problem in FAMILIES.get(name)().sample(11, [1, 2, 3, 4, 5], 10):
            clean.append({"problem_id": problem.problem_id, "question": problem.question})
    # Same-distribution clean problems (train splits of the same benchmarks): the hard case for false positives.
    real_clean = [
        {"problem_id": f"gsm8k_train:{i}", "question": json.loads(line)["question"]}
        for i, line in enumerate((shared / "data/gsm8k/train.jsonl").read_text().splitlines()[: args.clean_real])
    ]
    math_train = json.loads((shared / "data/math/deepscaler_train/math.json").read_text())
    real_clean += [{"problem_id": f"math_train:{i}", "question": r["problem"]} for i, r in enumerate(math_train)][
        : args.clean_real
    ]
    clean += real_clean
    embed = None
    if args.embed:
        from engines.embeddings import load_embedder

        embed = load_embedder(cache_path=root / "cache" / "embeddings.sqlite")
    result = decontaminate([*planted, *clean], benchmarks, DecontamConfig(), embed=embed)
    found: dict[str, set[str]] = {}
    for row in result.contamination.to_pylist():
        found.setdefault(row["problem_id"], set()).add(f"{row['benchmark']}#{row['benchmark_item_id']}#{row['method']}")
    methods = sorted({m for hits in found.values() for m in (h.rsplit("#", 1)[1] for h in hits)})
    print(f"model {args.model}; {len(planted)} paraphrases planted among {len(clean)} clean procedural problems")
    print("| benchmark | paraphrases | any detector | " + " | ".join(methods) + " |")
    print("|---|---:|---:|" + "---:|" * len(methods))
    for bench in benchmarks:
        rows = [p for p in planted if p["bench"] == bench.name]
        hits = [found.get(p["problem_id"], set()) for p in rows]
        own = [
            {h.rsplit("#", 1)[1] for h in hit if h.startswith(f"{p['bench']}#{p['item']}#")}
            for p, hit in zip(rows, hits, strict=True)
        ]
        cells = [f"{sum(m in o for o in own) / len(rows):.0%}" for m in methods] if rows else []
        share = sum(bool(o) for o in own) / len(rows) if rows else 0.0
        print(f"| {bench.name} | {len(rows)} | {share:.0%} | " + " | ".join(cells) + " |")
    real_ids = {p["problem_id"] for p in real_clean}
    procedural = [p for p in clean if p["problem_id"] not in real_ids]
    for label, rows in (("procedural", procedural), ("GSM8K/MATH train", real_clean)):
        false_pos = sum(p["problem_id"] in found for p in rows)
        print(f"false positives on clean {label} problems: {false_pos}/{len(rows)}")
    if embed is not None:
        _embedding_sweep(planted, real_clean, benchmarks, embed)
    for p in planted[:3]:
        print(f"\nexample ({p['bench']} {p['item']}): {json.dumps(p['question'][:300])}")


def _embedding_sweep(planted: list[dict[str, str]], clean: list[dict[str, str]], benchmarks, embed) -> None:
    """Recall on paraphrases (own item is the top-1 match at ≥ t) vs false positives on clean train problems."""
    own: list[float] = []
    for bench in benchmarks:
        rows = [p for p in planted if p["bench"] == bench.name]
        if not rows:
            continue
        best, score = top1_cosine(
            embedding_matrix([p["question"] for p in rows], embed), embedding_matrix(bench.questions, embed)
        )
        own += [float(s) if bench.item_ids[b] == p["item"] else 0.0 for p, b, s in zip(rows, best, score, strict=True)]
    clean_rows = embedding_matrix([p["question"] for p in clean], embed)
    clean_max = np.max(
        [top1_cosine(clean_rows, embedding_matrix(bench.questions, embed))[1] for bench in benchmarks], axis=0
    )
    print("\nembedding threshold sweep (all-MiniLM-L6-v2):")
    print("| threshold | paraphrase recall | clean train flagged |")
    print("|---:|---:|---:|")
    for threshold in (0.70, 0.75, 0.80, 0.85, 0.90, 0.95):
        recall = np.mean(np.asarray(own) >= threshold)
        false_pos = np.mean(clean_max >= threshold)
        print(f"| {threshold:.2f} | {recall:.0%} | {false_pos:.1%} |")


if __name__ == "__main__":
    main()
