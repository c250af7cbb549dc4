"""Rollouts and their verification over Ray: the pool split into batches, each batch run by a stateful actor.

`run_rollouts_on_ray` is `scoring.grading.rollouts.run_rollouts` spread over a Ray cluster (issue 11, item 3). Ray Data
`map_batches` hands batches of problems to a fixed pool of actors; each actor starts the student's engine once
(from its `EngineConfig`, so every worker loads the same model and reports the same revision) and a verifier,
then calls `run_rollouts` on each batch it gets. Samples are seeded per (problem, sample index), not per worker,
so the result does not depend on how the pool was split: the tables are the ones the single-process path writes.

The cache with many writers (see `engines.cache_shards`): workers read the main cache first and write their own
shard; the driver merges this job's shards into the main cache when the job ends (and, before it starts, any
shard a killed job left behind), so a rerun is served entirely from the main cache and makes zero model calls.

Ray is an optional dependency (`pip install -e '.[ray]'`); it is imported only when the Ray path is selected.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from engines.cache_shards import MergeReport
from engines.errors import ConfigError
from scoring.grading.ray_config import RayConfig

if TYPE_CHECKING:
    from engines import Engine
    from engines.config import EngineConfig
    from scoring.grading.rollouts import RolloutConfig, RolloutResult
    from scoring.grading.verify import Verifier, VerifyConfig
    from scoring.storage import DataRoot
    from synthesis.problem import Problem


@dataclass(frozen=True, slots=True)
class RayStudent:
    """What a Ray rollout job needs to know about the student: its id and engine, the rollout and verifier settings,
    and where the actors run (the project config's `student`, `rollouts`, `verify` and `distributed.ray`)."""

    student_id: str
    engine: EngineConfig
    rollouts: RolloutConfig
    verify: VerifyConfig
    ray: RayConfig


@dataclass(frozen=True, slots=True)
class RayRollouts:
    """One Ray rollout job: its tables, the cache-shard merge after it, batches run, actors that ran them, wall
    seconds (actor start included) and the slowest actor's start (model load + verifier) in seconds."""

    result: RolloutResult
    merge: MergeReport
    batches: int
    workers: int
    seconds: float
    worker_init_seconds: float


class _RolloutWorker:
    """A Ray actor: one engine (backend + sharded cache) and one verifier, started once, used for every batch."""

    def __init__(self, settings: dict[str, Any]) -> None:
        started = time.perf_counter()
        from engines import Engine, EngineConfig
        from engines.cache_shards import ShardedCache, shard_path
        from engines.config import build_backend
        from scoring.grading.rollouts import RolloutConfig
        from scoring.grading.verify import Verifier, VerifyConfig

        engine_config = EngineConfig.model_validate(settings["engine"])
        worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        main_cache = Path(settings["main_cache"])
        self.cache = ShardedCache(main_cache, shard_path(main_cache, settings["run_id"], worker_id))
        self.engine = Engine(build_backend(engine_config, Path(settings["models_dir"])), self.cache)
        verify = VerifyConfig.model_validate(settings["verify"])
        self.verifier = Verifier(verify.model_copy(update={"workers": settings["verify_workers"]}))
        self.rollouts = RolloutConfig.model_validate(settings["rollouts"])
        self.student_id = settings["student_id"]
        self.init_seconds = time.perf_counter() - started  # model load + verifier start, reported per batch

    def __call__(self, batch: pa.Table) -> pa.Table:
        from scoring.grading.rollouts import run_rollouts
        from synthesis.problem import Problem

        problems = [Problem(**json.loads(text)) for text in batch.column("problem").to_pylist()]
        ranges = list(zip(batch.column("first").to_pylist(), batch.column("count").to_pylist(), strict=True))
        before = self.engine.stats.as_dict()
        result = run_rollouts(
            problems,
            self.engine,
            student_id=self.student_id,
            config=self.rollouts,
            verifier=self.verifier,
            progress=False,
            sample_ranges=ranges,
        )
        after = self.engine.stats.as_dict()
        delta = {k: after[k] - before[k] for k in after if k != "cache_hit_rate"}
        return pa.table(
            {
                "rollouts": pa.array([_to_ipc(result.rollouts)], pa.binary()),
                "audit": pa.array([_to_ipc(result.audit)], pa.binary()),
                "stats": [json.dumps(delta)],
                "revision": [self.engine.model_revision],
                "worker": [self.cache.shard_path.stem],
                "init_seconds": [self.init_seconds],
            }
        )

    def __del__(self) -> None:  # best effort: Ray may end the actor without calling it
        for closer in (getattr(self, "verifier", None), getattr(self, "engine", None)):
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # noqa: BLE001 - shutting down; nothing left to report to
                pass


def _to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def start_local_ray(num_cpus: int, object_store_mb: int = 200) -> float:
    """Start a small quiet local Ray for benches (no dashboard, no driver logs); returns the seconds it took."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=object_store_mb * 1024 * 1024,
    )
    return time.perf_counter() - started


def _ensure_ray(config: RayConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it, so the caller shuts it down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a data pipeline phones nowhere unless asked
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("distributed.rollouts: ray needs Ray installed: pip install -e '.[ray]'") from exc
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if config.address is None:
        options["num_cpus"] = max(os.cpu_count() or 1, int(config.num_workers * config.cpus_per_worker))
        if config.object_store_mb is not None:
            options["object_store_memory"] = config.object_store_mb * 1024 * 1024
    ray.init(address=config.address, **options)
    return True


def run_rollouts_on_ray(
    problems: Sequence[Problem],
    *,
    student: RayStudent,
    root: DataRoot,
    engine: Engine | None = None,
    verifier: Verifier | None = None,
    sample_ranges: Sequence[tuple[int, int]] | None = None,
    progress: bool = True,
) -> RayRollouts:
    """`run_rollouts` for `student` over Ray actors (`student.ray`), same rows, same order.

    With `engine` (the driver's engine for the same student), problems whose samples are all in the main cache
    are served here — a rerun starts no Ray at all — and the workers' stats are added to `engine.stats`; the
    workers must report its model revision. `verifier` checks those cached samples (one is started if None).
    The workers' cache shards are merged into `root.cache_path` after the job."""
    from scoring.grading.rollouts import RolloutResult
    from scoring.schemas import ROLLOUTS, VERDICT_AUDIT, to_table

    ranges = list(sample_ranges) if sample_ranges is not None else [(0, student.rollouts.k)] * len(problems)
    if len(ranges) != len(problems):
        raise ValueError(f"{len(ranges)} sample ranges for {len(problems)} problems")
    started = time.perf_counter()
    cached = _fully_cached(problems, ranges, student.rollouts, engine) if engine is not None else set()
    parts: list[RolloutResult] = [RolloutResult(to_table([], ROLLOUTS), to_table([], VERDICT_AUDIT))]
    if cached and engine is not None:
        parts.append(_run_cached(problems, ranges, sorted(cached), student, engine, verifier))
    remote = [i for i in range(len(problems)) if i not in cached]
    report, outputs = MergeReport(0, 0, 0), []
    if remote:
        report, outputs = _run_remote(problems, ranges, remote, student, root, progress)
        _account(outputs, engine)
        parts += [RolloutResult(_from_ipc(out["rollouts"]), _from_ipc(out["audit"])) for out in outputs]
    order = {p.problem_id: i for i, p in enumerate(problems)}
    rollouts = _in_pool_order(pa.concat_tables([part.rollouts for part in parts]), order)
    audit = _in_pool_order(pa.concat_tables([part.audit for part in parts]), order)
    workers = {out["worker"]: out["init_seconds"] for out in outputs}
    return RayRollouts(
        RolloutResult(rollouts, audit),
        report,
        batches=len(outputs),
        workers=len(workers),
        seconds=time.perf_counter() - started,
        worker_init_seconds=max(workers.values(), default=0.0),
    )


def _run_cached(
    problems: Sequence[Problem],
    ranges: Sequence[tuple[int, int]],
    positions: list[int],
    student: RayStudent,
    engine: Engine,
    verifier: Verifier | None,
) -> RolloutResult:
    """The problems at `positions`, every sample in the driver's cache, served here without Ray."""
    from scoring.grading.rollouts import run_rollouts
    from scoring.grading.verify import Verifier

    with nullcontext(verifier) if verifier is not None else Verifier(student.verify) as checker:
        return run_rollouts(
            [problems[i] for i in positions],
            engine,
            student_id=student.student_id,
            config=student.rollouts,
            verifier=checker,
            progress=False,
            sample_ranges=[ranges[i] for i in positions],
        )


def _run_remote(
    problems: Sequence[Problem],
    ranges: Sequence[tuple[int, int]],
    positions: list[int],
    student: RayStudent,
    root: DataRoot,
    progress: bool,
) -> tuple[MergeReport, list[dict[str, Any]]]:
    """The problems at `positions` on the Ray actors; their cache shards merged into the main cache afterwards."""
    from engines.cache_shards import merge_shards, shards_dir

    main_cache = root.cache_path
    # Shards a killed job left behind hold samples already paid for. They are merged but kept: another job
    # on this data root may still be writing its own, and a merge is idempotent.
    merge_shards(main_cache, remove=False)
    settings = _worker_settings(student, root)
    rows = [
        {"problem": json.dumps(_as_dict(problems[i])), "first": ranges[i][0], "count": ranges[i][1]} for i in positions
    ]
    try:
        outputs = _run_on_actors(rows, settings, student.ray, progress=progress)
    finally:
        report = merge_shards(main_cache, shards_dir(main_cache).glob(f"{settings['run_id']}-*.sqlite"))
    return report, outputs


def _fully_cached(
    problems: Sequence[Problem], ranges: Sequence[tuple[int, int]], rollouts: RolloutConfig, engine: Engine
) -> set[int]:
    """Positions of the problems whose every requested sample is in the driver engine's cache."""
    from engines.base import SampleCall
    from engines.cache import cache_key
    from scoring.grading.rollouts import solve_request

    if engine.cache is None:
        return set()
    keys: dict[int, list[str]] = {}
    for i, (problem, (first, count)) in enumerate(zip(problems, ranges, strict=True)):
        request = solve_request(problem, rollouts, first_sample=first, count=max(count, 1))
        calls = [SampleCall(request.messages, request.sampling, first + j) for j in range(count)]
        keys[i] = [cache_key(engine.backend.name, engine.model_id, engine.model_revision, c) for c in calls]
    found = engine.cache.get_many([k for ks in keys.values() for k in ks])
    return {i for i, ks in keys.items() if all(k in found for k in ks)}


def _as_dict(problem: Problem) -> dict[str, object]:
    return {f.name: getattr(problem, f.name) for f in fields(problem)}


def _worker_settings(student: RayStudent, root: DataRoot) -> dict[str, Any]:
    """What each actor needs to start its engine and verifier (plain data: it travels to other nodes)."""
    ray_config = student.ray
    engine_config = student.engine
    if engine_config.backend == "embedded" and engine_config.n_threads is None:
        # One llama.cpp thread per reserved CPU: N actors with all cores each would fight over them.
        engine_config = engine_config.model_copy(update={"n_threads": max(1, int(ray_config.cpus_per_worker))})
    return {
        "engine": engine_config.model_dump(),
        "models_dir": str(root.models_dir),
        "main_cache": str(root.cache_path),
        "run_id": time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8],
        "verify": student.verify.model_dump(),
        "verify_workers": max(1, int(ray_config.cpus_per_worker)),
        "rollouts": student.rollouts.model_dump(),
        "student_id": student.student_id,
    }


def _run_on_actors(
    rows: list[dict[str, Any]], settings: dict[str, Any], ray_config: RayConfig, *, progress: bool
) -> list[dict[str, Any]]:
    """Ray Data over `rows` with a fixed pool of `_RolloutWorker` actors; one output row per batch."""
    import ray

    started_here = _ensure_ray(ray_config)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = context.print_on_execution_start = progress
    try:
        return (
            ray.data.from_items(rows)
            .map_batches(
                _RolloutWorker,
                fn_constructor_args=(settings,),
                # Never fewer batches than workers, so a small pool still reaches every actor.
                batch_size=max(1, min(ray_config.batch_size, math.ceil(len(rows) / ray_config.num_workers))),
                batch_format="pyarrow",
                # One batch in flight per actor: otherwise the first actor up takes every batch of a small pool.
                compute=ray.data.ActorPoolStrategy(size=ray_config.num_workers, max_tasks_in_flight_per_actor=1),
                num_cpus=ray_config.cpus_per_worker,
                num_gpus=ray_config.gpus_per_worker or None,
            )
            .take_all()
        )
    finally:
        if started_here:
            ray.shutdown()


def _account(outputs: list[dict[str, Any]], engine: Engine | None) -> None:
    """Add the workers' engine stats to the driver's engine, after checking they ran the same model revision."""
    if engine is None:
        return
    revisions = {out["revision"] for out in outputs}
    if revisions - {engine.model_revision}:
        raise ConfigError(
            f"Ray workers report model revision(s) {sorted(revisions)}; the driver's engine {engine.model_revision}"
        )
    for out in outputs:
        for key, value in json.loads(out["stats"]).items():
            setattr(engine.stats, key, getattr(engine.stats, key) + value)


def _in_pool_order(table: pa.Table, order: dict[str, int]) -> pa.Table:
    """Rows in the single-process order: by problem position in the pool, then sample index; a stable sort keeps
    the verifier's rule order within a sample."""
    position = pa.array([order[pid] for pid in table.column("problem_id").to_pylist()], pa.int64())
    keyed = table.append_column("_position", position)
    indices = pc.sort_indices(keyed, [("_position", "ascending"), ("sample_index", "ascending")])
    return keyed.take(indices).drop_columns(["_position"])
