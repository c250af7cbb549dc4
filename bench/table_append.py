"""What one more batch of rollouts costs as the `rollouts` table grows (issue 24): Gradus's Delta tables against
the storage they replaced, side by side in one run.

    python bench/table_append.py [--sizes 16000 160000 1600000] [--add 10000] [--work DIR]

For each stored size, a `rollouts` partition of that many rows is built (rows shaped like real ones: 16-hex
problem ids, 8 samples each, ~800-character completions), then `--add` new rows are added by key, twice:
  * `single file` — the previous storage, reproduced here as the baseline: read the partition's one Parquet
    file, collect every stored key into a Python set, filter, concatenate, sort and rewrite the file;
  * `delta` — `DataRoot.upsert_table` today: a DuckDB anti-join that reads only the key columns of the
    partition's files, then one appended file and one Delta commit.
A second add of the same rows (a rerun: every key stored already, nothing written) is timed too. Each
add runs in a fresh process (the table is built beforehand in another, and kept in `--work` for reruns), so
peak RSS (ru_maxrss) is the add's own, imports included; "add MiB" is the growth of the peak during the adds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARTITION = {"student": "bench"}
BUILD_BATCH = 200_000


def rollout_rows(start: int, count: int) -> pa.Table:
    """`count` rollout rows numbered from `start` (8 samples per problem), in the declared schema."""
    from scoring.schemas import ROLLOUTS

    numbers = range(start, start + count)
    columns = {
        "problem_id": [hashlib.sha1(str(i // 8).encode()).hexdigest()[:16] for i in numbers],
        "student_id": ["bench"] * count,
        "student_revision": ["r1"] * count,
        "sampling_hash": ["5a3f0c2e"] * count,
        "sample_index": pa.array([i % 8 for i in numbers], pa.int32()),
        "completion": [f"Step {i}: we add the numbers and carry the ten. " * 16 for i in numbers],
        "extracted_answer": [str(i % 97) for i in numbers],
        "verdict": ["correct" if i % 3 else "wrong" for i in numbers],
        "verifier_version": ["v3"] * count,
        "prompt_tokens": pa.array([64] * count, pa.int32()),
        "completion_tokens": pa.array([200] * count, pa.int32()),
        "finish_reason": ["stop"] * count,
        "latency_s": [0.5] * count,
    }
    return pa.table({name: columns.get(name, pa.nulls(count, ROLLOUTS.field(name).type)) for name in ROLLOUTS.names})


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single_file_upsert(path: Path, new: pa.Table, key: tuple[str, ...]) -> int:
    """The previous `DataRoot.upsert_table`: the whole partition read, keys in a Python set, file rewritten."""
    import pyarrow.parquet as pq

    from scoring.storage import write_parquet_atomic

    existing = pq.read_table(path) if path.exists() else new.schema.empty_table()
    stored = set(zip(*(existing.column(k).to_pylist() for k in key), strict=True))
    fresh = [tuple(row) not in stored for row in zip(*(new.column(k).to_pylist() for k in key), strict=True)]
    new = new.filter(pa.array(fresh, type=pa.bool_()))
    merged = pa.concat_tables([existing, new]).sort_by([(k, "ascending") for k in key])
    write_parquet_atomic(merged, path)
    return new.num_rows


def build(storage: str, size: int, work: Path) -> float:
    """Store a partition of `size` rows (once; reused by later runs of the bench); returns seconds spent."""
    from scoring.schemas import ROLLOUT_KEY
    from scoring.storage import DataRoot

    started = time.perf_counter()
    if storage == "delta":
        root = DataRoot(work / f"delta-{size}")
        if not root.has_rows("rollouts", PARTITION):
            for start in range(0, size, BUILD_BATCH):
                batch = rollout_rows(start, min(BUILD_BATCH, size - start))
                root.upsert_table("rollouts", batch, ROLLOUT_KEY, PARTITION)
    elif not (work / f"single-{size}.parquet").exists():
        import pyarrow.parquet as pq

        batches = [rollout_rows(s, min(BUILD_BATCH, size - s)) for s in range(0, size, BUILD_BATCH)]
        table = pa.concat_tables(batches).sort_by([(k, "ascending") for k in ROLLOUT_KEY])
        pq.write_table(table, work / f"single-{size}.parquet", compression="zstd")
    return time.perf_counter() - started


def add_rows(storage: str, size: int, add: int, work: Path) -> dict[str, float | int | str]:
    """In a fresh process: time adding `add` new rows to the stored partition, then the same rows again."""
    from scoring.schemas import ROLLOUT_KEY
    from scoring.storage import DataRoot

    root = DataRoot(work / f"delta-{size}")
    legacy_file = work / f"single-{size}.parquet"
    # numbered past every stored row, and past earlier runs' additions: every key is new
    new = rollout_rows(10**9 + time.time_ns() // 1000 % 10**12, add)
    before_add = _peak_mib()

    def upsert() -> int:
        if storage == "delta":
            return root.upsert_table("rollouts", new, ROLLOUT_KEY, PARTITION).num_rows
        return single_file_upsert(legacy_file, new, ROLLOUT_KEY)

    started = time.perf_counter()
    added = upsert()
    add_seconds = time.perf_counter() - started
    started = time.perf_counter()
    readded = upsert()
    rerun_seconds = time.perf_counter() - started
    assert added == add and readded == 0, (added, readded)
    return {
        "storage": storage,
        "size": size,
        "add_s": round(add_seconds, 3),
        "rerun_s": round(rerun_seconds, 3),
        "peak_mib": round(_peak_mib()),
        "add_mib": round(_peak_mib() - before_add),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[16_000, 160_000, 1_600_000])
    parser.add_argument("--add", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None, help="where the tables are built (kept for reruns)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "gradus-table-append"
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        step, storage, size = args.child
        if step == "build":
            print(json.dumps({"build_s": round(build(storage, int(size), work), 1)}))
        else:
            print(json.dumps(add_rows(storage, int(size), args.add, work)))
        return
    results: dict[tuple[str, int], dict] = {}
    for size in args.sizes:
        for storage in ("single", "delta"):
            for step in ("build", "add"):
                cmd = [sys.executable, __file__, "--add", str(args.add), "--work", str(work)]
                out = subprocess.run(cmd + ["--child", step, storage, str(size)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{step} {storage} {size}: {out.stderr[-2000:]}")
                results.setdefault((storage, size), {}).update(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {storage} {size:,}: {results[(storage, size)]}", file=sys.stderr, flush=True)
    print(f"\nAdding {args.add:,} rollout rows to a stored partition (then the same rows again, a rerun)\n")
    header = "| stored rows | single file: add s | rerun s | peak MiB | delta: add s | rerun s | peak MiB | add MiB |"
    print(header + " delta vs single file (add) | delta add vs smallest |")
    print("|" + "---|" * 10)
    smallest = results[("delta", args.sizes[0])]["add_s"]
    for size in args.sizes:
        single, delta = results[("single", size)], results[("delta", size)]
        print(
            f"| {size:,} | {single['add_s']:.3f} | {single['rerun_s']:.3f} | {single['peak_mib']:,} "
            f"| {delta['add_s']:.3f} | {delta['rerun_s']:.3f} | {delta['peak_mib']:,} | {delta['add_mib']:,} "
            f"| {delta['add_s'] / single['add_s']:.2f}x | {delta['add_s'] / smallest:.2f}x |"
        )


if __name__ == "__main__":
    main()
