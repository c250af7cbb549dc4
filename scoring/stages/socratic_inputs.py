"""What a Socratic-Zero round reads (methods §10): its input problems and their student rollouts.

Round 1 takes a seeded sample of the pool's non-synthesized problems (D_0); round r > 1 takes round r-1's accepted
problems plus a replayed share of the earlier history. Inputs without stored rollouts are rolled out now and
stored, so the round itself (`scoring.stages.socratic`) and the next one read only stored tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from engines import Engine
from scoring.config import ProjectConfig
from scoring.grading.rollouts import RolloutConfig, run_rollouts
from scoring.grading.verify import Verifier
from scoring.stages.problems import load_pool, load_problems
from scoring.stages.rollouts import store_rollouts, student_rollouts
from scoring.stages.synthesis_log import synth_partition
from scoring.storage import DataRoot
from synthesis.problem import Problem
from synthesis.socratic import select_replay, select_seeds

METHOD = "socratic"


@dataclass(frozen=True, slots=True)
class RoundInput:
    """One input problem of a round, where it came from, and whether it is a replay of an earlier round's."""

    problem: Problem
    origin: str  # "seed" or "round <r>"
    replay: bool


def round_inputs(config: ProjectConfig, root: DataRoot, round_no: int) -> tuple[list[RoundInput], str]:
    """The round's input problems, or ([], why there are none). Round 1: a seeded sample of the pool's non-synthesized
    problems (no generator model, no parent), so the seeds stay put when synthesized problems join the pool. Round
    r > 1: round r-1's accepted problems plus `replay_share` of the history (the seeds and rounds 1..r-2's
    accepted problems)."""
    socratic = config.synthesis.socratic
    if round_no == 1:
        seedable = [p for p in load_pool(root) if p.generator_model is None and p.parent_id is None]
        if not seedable:
            return [], "no seed problems: the pool has no imported or procedural problems (run `problems` first)"
        chosen = set(select_seeds([p.problem_id for p in seedable], socratic.seeds, seed=socratic.seed))
        return [RoundInput(p, "seed", False) for p in sorted(seedable, key=_pid) if p.problem_id in chosen], ""
    previous = synth_partition(METHOD, round_no - 1)
    # a round that ran has logged its inputs, even when it accepted nothing
    if not root.has_rows("synthesis_log", previous):
        return [], f"round {round_no - 1} has not been run; run it before round {round_no}"
    fresh = accepted_problems(root, round_no - 1)
    if not fresh:
        return [], f"round {round_no - 1} accepted no problems, so round {round_no} has nothing to refine"
    history = {p.problem_id: RoundInput(p, "seed", True) for p in round_seeds(root)}
    for earlier in range(1, round_no - 1):
        history |= {p.problem_id: RoundInput(p, f"round {earlier}", True) for p in accepted_problems(root, earlier)}
    current = [RoundInput(p, f"round {round_no - 1}", False) for p in sorted(fresh, key=_pid)]
    new_ids = {i.problem.problem_id for i in current}
    eligible = [pid for pid in history if pid not in new_ids]
    replayed = select_replay(eligible, socratic.replay_share, seed=socratic.seed, round_no=round_no)
    return current + [history[pid] for pid in replayed], ""


def accepted_problems(root: DataRoot, round_no: int) -> list[Problem]:
    """The problems Socratic round `round_no` accepted (its `synthesized_problems` partition)."""
    table = root.read_table("synthesized_problems", synth_partition(METHOD, round_no))
    return [Problem(**{k: v for k, v in row.items() if k not in ("method", "round")}) for row in table.to_pylist()]


def round_seeds(root: DataRoot) -> list[Problem]:
    """Round 1's seeds, as logged (stage `input` of round 1), looked up in the `problems` table."""
    log = root.read_table("synthesis_log", synth_partition(METHOD, 1))
    ids = set(log.filter(pc.equal(log.column("stage"), "input")).column("item_id").to_pylist())
    return sorted((p for p in load_problems(root) if p.problem_id in ids), key=_pid)


def grading_config(config: ProjectConfig) -> RolloutConfig:
    """The project's rollout config with `k` = socratic.k; `k` is not in the sampling hash, so these rollouts are
    the student's ordinary evidence (same hash, same cache keys as the `rollouts` stage)."""
    return config.rollouts.model_copy(update={"k": config.synthesis.socratic.k})


def input_rollouts(
    config: ProjectConfig,
    root: DataRoot,
    student: Engine,
    problems: Sequence[Problem],
    verifier: Verifier,
    progress: bool,
) -> pa.Table:
    """The inputs' stored student rollouts (this revision and sampling config, samples below k, engine errors
    left out); problems with none are rolled out now with k = socratic.k and stored."""
    grading = grading_config(config)
    stored = stored_rollouts(config, root, student.model_revision, grading)
    have = set(stored.column("problem_id").to_pylist())
    missing = [p for p in problems if p.problem_id not in have]
    if missing:
        result = run_rollouts(
            missing, student, student_id=config.student.id, config=grading, verifier=verifier, progress=progress
        )
        store_rollouts(config, root, result.rollouts, result.audit)
        stored = stored_rollouts(config, root, student.model_revision, grading)
    wanted = pa.array([p.problem_id for p in problems], pa.string())
    return stored.filter(pc.is_in(stored.column("problem_id"), value_set=wanted))


def stored_rollouts(config: ProjectConfig, root: DataRoot, revision: str, grading: RolloutConfig) -> pa.Table:
    """The student's stored rollouts of this revision and sampling config with a sample index below `grading.k`
    (engine errors left out), in (problem, sample) order."""
    rollouts = student_rollouts(config, root, revision)  # the same sampling hash: `k` is not part of it
    mask = pc.and_(
        pc.less(rollouts.column("sample_index"), grading.k),
        pc.not_equal(rollouts.column("finish_reason"), "error"),
    )
    return rollouts.filter(mask).sort_by([("problem_id", "ascending"), ("sample_index", "ascending")])


def _pid(problem: Problem) -> str:
    return problem.problem_id
