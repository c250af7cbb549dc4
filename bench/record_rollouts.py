"""Record the K=16 reference that `bench/rollout_savings.py` replays, through the real pipeline stages.

    python bench/record_rollouts.py [--config bench/rollout_savings.yaml] [--out bench/recordings/...]

Builds the config's problem pool, draws K rollouts per problem from the student with the embedded engine
(every sample goes through the persistent completion cache, so an interrupted recording resumes and a rerun
costs nothing), and exports one row per rollout — problem text and metadata, sample index, verdict, tokens,
seconds — to a Parquet file small enough to commit. Only procedural problems go in it (they are ours to ship).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from engines.config import build_engine  # noqa: E402
from scoring.config import load_config, resolve_data_root  # noqa: E402
from scoring.stages.problems import build_problems  # noqa: E402
from scoring.stages.rollouts import build_rollouts  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "recordings" / "rollout_savings_k16.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(HERE / "rollout_savings.yaml"))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    config = load_config(args.config)
    root = resolve_data_root(config)
    started = time.perf_counter()
    build_problems(config, root)
    with build_engine(config.student.engine, root.models_dir, root.cache_path) as engine:
        summary = build_rollouts(config, root, engine)
    elapsed = time.perf_counter() - started
    problems = root.read_table("problems")
    rollouts = summary.table
    by_id = {row["problem_id"]: row for row in problems.to_pylist()}
    rows = [
        {
            "problem_id": r["problem_id"],
            "family": by_id[r["problem_id"]]["family"],
            "difficulty_knob": by_id[r["problem_id"]]["difficulty_knob"],
            "question": by_id[r["problem_id"]]["question"],
            "answer": by_id[r["problem_id"]]["answer"],
            "sample_index": r["sample_index"],
            "verdict": r["verdict"],
            "correct": r["verdict"] == "correct",
            "completion_tokens": r["completion_tokens"],
            "latency_s": r["latency_s"],
        }
        for r in rollouts.to_pylist()
    ]
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {
            "student": f"{config.student.id} ({config.student.engine.model})",
            "student_revision": engine.model_revision,
            "sampling": config.rollouts.model_dump_json(),
            "config": Path(args.config).name,
            "recorded_seconds": f"{elapsed:.0f}",
        }
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    print(f"recorded {len(rows)} rollouts over {problems.num_rows} problems in {elapsed:.0f} s -> {out}")
    print(f"engine: {summary.figures}")


if __name__ == "__main__":
    main()
