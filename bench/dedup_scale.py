"""Time and peak memory of MinHash dedup at scale, against two MinHash libraries, and the n-gram decontaminator.

    python bench/dedup_scale.py [--sizes 100000 1000000] [--baselines datasketch rensa] [--pool 10000]
                                [--shared ../shared] [--skip-decontam] [--skip-accuracy]
                                [--out bench/results/dedup_scale.md]

Dedup: synthetic problems (random sentences over a 6,000-word made-up vocabulary with 3–5 numbers, ~40 words
each, so unrelated problems share almost no shingles), of which 5% are planted near-duplicates of another
problem — one number changed and one word replaced, so they are not exact duplicates. `deduplicate` runs the
default stages (exact, then MinHash-LSH on character 5-grams, 128 permutations, threshold 0.8). Recall is the
share of planted pairs that end up in one cluster. Each size runs in its own process, so the peak resident
memory (ru_maxrss) is that size's alone — it includes the input problems themselves.

Gradus hashes the shingles in numpy and takes rensa's R-MinHash of those hashes as signatures
(`scoring/curation/minhash.py`); LSH, verification and clustering are its own.

Baselines: on the same problems (same seed, each in its own process too), two libraries do the same job from
the same question strings, through their token APIs: datasketch 2.0 (`MinHash.bulk`: sha1 of each shingle,
affine32 permutations; `MinHashLSH`) and rensa 0.5 (`RMinHash.from_token_sets`: its own token hash, in Rust;
`RMinHashLSH`). Both get Gradus's shingles (character 5-grams of `comparable_text`, as Python strings),
128 permutations, seed 1 and Gradus's LSH bands (`lsh_bands`: 16 bands of 8 rows; datasketch alone would pick
9 of 13 at threshold 0.8). Every LSH candidate pair is kept when the library's estimated Jaccard is ≥ 0.8, and a
union-find joins kept pairs into clusters; recall is then counted exactly as for Gradus. The time of each is from
question strings to clusters: normalizing, shingling, signatures, LSH, verification, clustering. Gradus's time
also covers its exact stage, choosing representatives and writing the duplicates table, which the baselines do
not do.

Each process first dedups 500 other problems untimed, so imports (scipy, pandas, the library) and first calls
are left out of every implementation's time. Time is reported as wall seconds and CPU seconds (this process, all
its threads). Other jobs on a shared machine stretch wall time but hardly CPU time, so "docs per CPU s" is the
figure to compare; each run's load average is shown beside it.

Signature accuracy: pairs of random texts of 4–60 words, a random share of words replaced, whose true
Jaccard (of character 5-gram sets) is known: the error of Gradus's estimated Jaccard, of the datasketch affine32
MinHash that Gradus used before, and of rensa over its own token hash.

Decontamination: a pool of problems from every procedural family checked against MATH test (5,000 items):
index build time and n-gram matching throughput, and the full `decontaminate` (n-grams + TF-IDF).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scoring.curation.decontam import BenchmarkSpec, DecontamConfig, NgramIndex, decontaminate, load_benchmark  # noqa: E402
from scoring.curation.dedup import DedupConfig, deduplicate  # noqa: E402
from scoring.curation.minhash import estimated_jaccard, lsh_bands, minhash_signatures, shingle_hash, shingles  # noqa: E402
from scoring.curation.normalize import comparable_text  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

PLANTED_SHARE = 0.05
WARM_UP = 500  # problems each process dedups untimed first, so imports are not charged to one implementation
BASELINES = ("datasketch", "rensa")
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ven", "dar", "el", "os", "tri", "bu", "ga", "zen"]


def _vocabulary(rng: np.random.Generator, size: int = 6000) -> np.ndarray:
    # 2-4 syllables of 16: 69,888 possible words, so drawing 6,000 distinct ones ends quickly
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5)))))
    return np.array(sorted(words))


def synthetic_problems(count: int, seed: int = 0) -> tuple[list[dict], list[tuple[str, str]]]:
    """`count` problems, 5% of them near-duplicates of an earlier one; returns the problems and planted pairs."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng)
    n_planted = int(count * PLANTED_SHARE)
    n_base = count - n_planted
    lengths = rng.integers(30, 50, size=n_base)
    word_ids = rng.integers(0, len(vocab), size=int(lengths.sum()))
    numbers = rng.integers(2, 1000, size=(n_base, 5))
    problems, texts, offset = [], [], 0
    for i in range(n_base):
        words = list(vocab[word_ids[offset : offset + lengths[i]]])
        offset += lengths[i]
        for k, position in enumerate((3, 11, 19, 27, 35)[: 3 + i % 3]):
            words.insert(min(position, len(words)), str(numbers[i, k]))
        text = " ".join(words).capitalize() + "?"
        texts.append(text)
        problems.append({"problem_id": f"b{i:07d}", "question": text, "answer": str(i % 97), "source": "synthetic"})
    pairs = []
    for j, base in enumerate(rng.integers(0, n_base, size=n_planted).tolist()):
        words = texts[base].split(" ")
        digits = [k for k, w in enumerate(words) if w.isdigit()]
        k = digits[j % len(digits)]
        words[k] = str(int(words[k]) + 1 + j % 7)  # a changed number
        w = (k + 5) % len(words)
        if not words[w].isdigit():
            words[w] = str(vocab[(j * 7919) % len(vocab)])  # and a replaced word
        pid = f"p{j:07d}"
        problems.append({"problem_id": pid, "question": " ".join(words), "answer": "1", "source": "synthetic"})
        pairs.append((f"b{base:07d}", pid))
    return problems, pairs


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def planted_recall(pairs: list[tuple[str, str]], cluster_of: Callable[[str], object]) -> float:
    """Share of planted pairs whose two problems land in one cluster: the same measure for every implementation."""
    return sum(cluster_of(a) == cluster_of(b) for a, b in pairs) / len(pairs)


def run_dedup(size: int) -> dict:
    """Gradus: `deduplicate` with the default config, from question strings to the duplicates table."""
    deduplicate(synthetic_problems(WARM_UP, seed=1)[0], DedupConfig())  # imports and first calls, untimed
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    problems, pairs = synthetic_problems(size)
    generated = time.perf_counter() - start
    rss_input = _peak_rss_mib()
    start, cpu = time.perf_counter(), time.process_time()
    result = deduplicate(problems, DedupConfig())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    dropped = result.duplicates
    kept_of = dict(zip(dropped["problem_id"].to_pylist(), dropped["kept_id"].to_pylist(), strict=True))
    return {
        "impl": "gradus",
        "size": size,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "generate_s": generated,
        "dedup_s": elapsed,
        "dedup_cpu_s": cpu,
        "items_per_s": size / elapsed,
        "input_rss_mib": rss_input,
        "peak_rss_mib": _peak_rss_mib(),
        "recall": planted_recall(pairs, lambda pid: kept_of.get(pid, pid)),
        "planted": len(pairs),
        "dropped": result.duplicates.num_rows,
        "exact": result.counts["exact"],
        "minhash": result.counts["minhash"],
    }


def _shingle_sets(problems: list[dict]) -> Iterator[list[str]]:
    """Gradus's MinHash input: the character 5-grams of each question's `comparable_text`, one problem at a time.

    Lazily: a list of them all would hold ~250 Python strings per problem and dominate the baselines' peak memory.
    """
    size = DedupConfig().shingle_size
    return (shingles(comparable_text(p["question"]), size=size) for p in problems)


def _union_find(n: int, edges: Iterable[tuple[int, int]]) -> list[int]:
    """The root of each of `n` items after joining every edge (path halving)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in edges:
        parent[root(i)] = root(j)
    return [root(i) for i in range(n)]


def datasketch_clusters(problems: list[dict], config: DedupConfig) -> list[int]:
    """datasketch: `MinHash.bulk` (sha1 per shingle, affine32) → `MinHashLSH` insert + query → verify → union-find."""
    from datasketch import MinHash, MinHashLSH

    sets = ([s.encode("utf-8") for s in shingle_set] for shingle_set in _shingle_sets(problems))
    sketches = MinHash.bulk(sets, num_perm=config.num_perm, seed=config.seed)
    bands = lsh_bands(config.threshold, config.num_perm, config.lsh_recall_weight)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, params=bands)
    with lsh.insertion_session() as session:
        for key, sketch in enumerate(sketches):
            session.insert(key, sketch, check_duplication=False)
    edges = (
        (i, j)
        for i, sketch in enumerate(sketches)
        for j in lsh.query(sketch)
        if j > i and sketch.jaccard(sketches[j]) >= config.threshold
    )
    return _union_find(len(sketches), edges)


def rensa_clusters(problems: list[dict], config: DedupConfig) -> list[int]:
    """rensa: `RMinHash.from_token_sets` → `RMinHashLSH` insert_many + query_all → verify → union-find."""
    from rensa import RMinHash, RMinHashLSH

    sketches = RMinHash.from_token_sets(_shingle_sets(problems), config.num_perm, config.seed)
    n_bands, _ = lsh_bands(config.threshold, config.num_perm, config.lsh_recall_weight)
    lsh = RMinHashLSH(config.threshold, config.num_perm, n_bands)  # rows per band = num_perm / n_bands
    lsh.insert_many(sketches)  # keys 0..n-1
    edges = (
        (i, j)
        for i, candidates in enumerate(lsh.query_all(sketches))
        for j in candidates
        if j > i and sketches[i].jaccard(sketches[j]) >= config.threshold
    )
    return _union_find(len(sketches), edges)


def run_baseline(size: int, impl: str) -> dict:
    """One library on the same problems as `run_dedup`: wall and CPU time from question strings to clusters."""
    cluster_fn = {"datasketch": datasketch_clusters, "rensa": rensa_clusters}[impl]
    cluster_fn(synthetic_problems(WARM_UP, seed=1)[0], DedupConfig())  # imports and first calls, untimed
    load_start = os.getloadavg()[0]
    problems, pairs = synthetic_problems(size)
    rss_input = _peak_rss_mib()
    start, cpu = time.perf_counter(), time.process_time()
    roots = cluster_fn(problems, DedupConfig())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    index = {p["problem_id"]: i for i, p in enumerate(problems)}
    return {
        "impl": impl,
        "size": size,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "dedup_s": elapsed,
        "dedup_cpu_s": cpu,
        "items_per_s": size / elapsed,
        "input_rss_mib": rss_input,
        "peak_rss_mib": _peak_rss_mib(),
        "recall": planted_recall(pairs, lambda pid: roots[index[pid]]),
        "planted": len(pairs),
        "dropped": size - len(set(roots)),  # all but one member of each cluster
    }


def _edited_pairs(words_per_text: int, count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`count` text pairs of `words_per_text` random words, a random share of them replaced in the second text;
    returns the texts (pair i = texts 2i, 2i+1) and the true Jaccard of each pair's character 5-gram sets."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 2000)
    texts, truth = [], []
    for _ in range(count):
        words = list(rng.choice(vocab, size=words_per_text, replace=False))
        replaced = rng.random(words_per_text) < rng.random()
        edited = [str(vocab[rng.integers(len(vocab))]) if r else w for w, r in zip(words, replaced, strict=True)]
        left, right = " ".join(words), " ".join(edited)
        a, b = set(shingles(left)), set(shingles(right))
        texts += [left, right]
        truth.append(len(a & b) / len(a | b))
    return texts, np.array(truth)


def _affine32_rows(texts: list[str], num_perm: int, seed: int) -> np.ndarray:
    """The previous Gradus signatures: datasketch's affine32 MinHash over the top 32 bits of `shingle_hash`."""
    from datasketch import MinHash

    rows = []
    for text in texts:
        sketch = MinHash(num_perm=num_perm, seed=seed, hashfunc=lambda s: shingle_hash(s) >> 32, scheme="affine32")
        sketch.update_batch(shingles(text))
        rows.append(sketch.hashvalues)
    return np.array(rows, dtype=np.uint32)


def _rensa_token_rows(texts: list[str], num_perm: int, seed: int) -> np.ndarray:
    """The rensa baseline's signatures: R-MinHash over rensa's hash of each shingle string."""
    from rensa import RMinHash

    matrix = RMinHash.digest_matrix_from_token_sets([shingles(t) for t in texts], num_perm, seed)
    return np.array(matrix.to_rows(), dtype=np.uint32)


def signature_accuracy(pairs_per_size: int = 400) -> list[str]:
    """Estimated vs true Jaccard, by text length: Gradus's rows, the affine32 MinHash they replaced, rensa's own."""
    config = DedupConfig()
    lines = [
        f"**Signature accuracy**: estimated vs true Jaccard of character 5-gram sets, {pairs_per_size} pairs of "
        f"random texts per length (a random share of words replaced), {config.num_perm} values, seed {config.seed}",
        "",
        "| words per text | shingles per text | signatures | bias | mean abs error | RMSE |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for words in (4, 8, 16, 60):
        texts, truth = _edited_pairs(words, pairs_per_size, seed=words)
        n_shingles = np.mean([len(set(shingles(t))) for t in texts])
        schemes = {
            "Gradus (rensa R-MinHash)": minhash_signatures(texts, num_perm=config.num_perm, seed=config.seed),
            "before (datasketch affine32)": _affine32_rows(texts, config.num_perm, config.seed),
            "rensa's own token hash": _rensa_token_rows(texts, config.num_perm, config.seed),
        }
        for name, rows in schemes.items():
            error = estimated_jaccard(rows, np.arange(0, len(texts), 2), np.arange(1, len(texts), 2)) - truth
            lines.append(
                f"| {words} | {n_shingles:.0f} | {name} | {error.mean():+.4f} | {np.abs(error).mean():.4f} "
                f"| {np.sqrt((error**2).mean()):.4f} |"
            )
    return lines


def _family_pool(count: int) -> list[dict]:
    names = FAMILIES.names()
    per_level = count // (len(names) * 5) + 1
    pool: dict[str, dict] = {}
    for name in names:
        family = FAMILIES.get(name)()
        for p in family.sample(99, list(family.difficulties), per_level):
            pool[p.problem_id] = {"problem_id": p.problem_id, "question": p.question, "source": "procedural"}
    return list(pool.values())[:count]


def run_decontam(pool_size: int, shared: Path) -> dict:
    bench = load_benchmark(BenchmarkSpec.from_preset("math_test", shared))
    pool = _family_pool(pool_size)
    config = DecontamConfig()
    start = time.perf_counter()
    index = NgramIndex(bench.questions, config.ngrams, config.ngram_max_items)
    built = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    flagged = sum(bool(index.match(p["question"])) for p in pool)
    matched, match_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    full = decontaminate(pool, [bench], config)
    total = time.perf_counter() - start
    return {
        "items": len(bench.questions),
        "pool": len(pool),
        "index_s": built,
        "match_s": matched,
        "match_cpu_s": match_cpu,
        "ngram_per_s": len(pool) / matched,
        "full_s": total,
        "full_per_s": len(pool) / total,
        "ngram_flagged": flagged,
        "full_flagged": len(full.flagged_ids),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load(r: dict) -> str:
    return f"{r['load_start']:.1f} → {r['load_end']:.1f}"


def _gradus_table(rows: list[dict]) -> list[str]:
    lines = [
        "| problems | generate s | dedup wall s | dedup CPU s | docs/s (wall) | docs per CPU s | input MiB | peak MiB "
        "| planted | recall | exact | minhash | load avg (start → end) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['generate_s']:.1f} | {r['dedup_s']:.1f} | {r['dedup_cpu_s']:.1f} "
            f"| {r['items_per_s']:,.0f} | {r['size'] / r['dedup_cpu_s']:,.0f} | {r['input_rss_mib']:,.0f} "
            f"| {r['peak_rss_mib']:,.0f} | {r['planted']:,} | {r['recall']:.4f} | {r['exact']:,} | {r['minhash']:,} "
            f"| {_load(r)} |"
        )
    return lines


def _comparison(results: list[dict]) -> list[str]:
    gradus = results[0]
    config = DedupConfig()
    bands, rows_per_band = lsh_bands(config.threshold, config.num_perm, config.lsh_recall_weight)
    lines = [
        f"**{gradus['size']:,} problems, {gradus['planted']:,} planted pairs** (same shingles, {config.num_perm} "
        f"perms, seed {config.seed}, LSH {bands} bands × {rows_per_band} rows, candidates kept at estimated "
        f"Jaccard ≥ {config.threshold})",
        "",
        "| impl | docs/s (wall) | wall s | CPU s | docs per CPU s | vs Gradus (CPU) | peak RSS MiB | recall "
        "| dropped | load avg (start → end) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['impl']} | {r['items_per_s']:,.0f} | {r['dedup_s']:.1f} | {r['dedup_cpu_s']:.1f} "
            f"| {r['size'] / r['dedup_cpu_s']:,.0f} | {gradus['dedup_cpu_s'] / r['dedup_cpu_s']:.2f}x "
            f"| {r['peak_rss_mib']:,.0f} | {r['recall']:.4f} | {r['dropped']:,} | {_load(r)} |"
        )
    return lines


def _decontam_lines(r: dict) -> list[str]:
    return [
        f"**Decontamination** of {r['pool']:,} procedural problems against MATH test ({r['items']:,} items)",
        "",
        "| step | seconds | problems/s | flagged |",
        "|---|---:|---:|---:|",
        f"| n-gram index build | {r['index_s']:.1f} | | |",
        f"| n-gram matching (CPU {r['match_cpu_s']:.1f} s) | {r['match_s']:.1f} | {r['ngram_per_s']:,.0f} "
        f"| {r['ngram_flagged']} |",
        f"| full (n-gram + TF-IDF) | {r['full_s']:.1f} | {r['full_per_s']:,.0f} | {r['full_flagged']} |",
        "",
        f"peak RSS {r['peak_rss_mib']:,.0f} MiB",
    ]


def _emit(report: list[str], lines: list[str]) -> None:
    """Print a finished section at once (a 1M run takes many minutes) and keep it for the written report."""
    print("\n".join(lines) + "\n", flush=True)
    report.extend([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="pool sizes for dedup")
    parser.add_argument(
        "--baselines", nargs="*", choices=BASELINES, default=list(BASELINES), help="libraries to compare (none: skip)"
    )
    parser.add_argument("--pool", type=int, default=10_000, help="pool size for the decontamination run")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder")
    parser.add_argument("--skip-decontam", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the signature accuracy table")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    parser.add_argument("--child-dedup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-baseline", choices=BASELINES, help=argparse.SUPPRESS)
    parser.add_argument("--child-decontam", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_dedup and args.child_baseline:
        print(json.dumps(run_baseline(args.child_dedup, args.child_baseline)))
        return
    if args.child_dedup:
        print(json.dumps(run_dedup(args.child_dedup)))
        return
    if args.child_decontam:
        print(json.dumps(run_decontam(args.child_decontam, args.shared)))
        return

    report = [
        "MinHash dedup (exact + MinHash-LSH, char 5-grams, 128 perms, threshold 0.8), one process per size and "
        f"implementation, run one after another; machine: {os.cpu_count()} CPUs, python {platform.python_version()}. "
        "Wall time stretches when other jobs share the cores; CPU seconds (all threads of the process) hardly do.",
        "",
    ]
    print(report[0] + "\n", flush=True)
    gradus = [_child(["--child-dedup", str(size)]) for size in args.sizes]
    _emit(report, _gradus_table(gradus))
    if not args.skip_accuracy:
        _emit(report, signature_accuracy())
    for r in gradus if args.baselines else []:
        baselines = [_child(["--child-dedup", str(r["size"]), "--child-baseline", b]) for b in args.baselines]
        _emit(report, _comparison([r, *baselines]))
    if not args.skip_decontam:
        _emit(report, _decontam_lines(_child(["--child-decontam", str(args.pool), "--shared", str(args.shared)])))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/dedup_scale.py " + " ".join(sys.argv[1:])
        text = "# MinHash dedup at scale\n\n```\n" + command + "\n```\n\n" + "\n".join(report)
        args.out.write_text(text.rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
