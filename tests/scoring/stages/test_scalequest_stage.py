"""`build_scalequest` end to end on the real 0.5B model (generator, teacher and student at once): tables written,
every candidate logged at every filter it reached, reruns free and identical, the predictor used when it exists."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from engines import Engine
from engines.errors import ConfigError
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement
from scoring.grading.predictor import PREDICTOR_METHOD, PassRatePredictor
from scoring.grading.verify import Verifier
from scoring.stages.difficulty import predictor_path
from scoring.stages.scalequest import CHECKS, Candidate, build_scalequest, difficulty_sampling
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL
from tests.scoring.stages.conftest import MakeRoles, project_config

STAGES = ("generate", "language", "solvable", "majority_vote", "difficulty")


def _project(root: Path, **scalequest: object) -> ProjectConfig:
    # Token caps are small so the test stays short on two CPU cores; `answer_only_v1` makes rollouts cheap.
    settings = {
        "enabled": True,
        "questions": 6,
        "max_question_tokens": 64,
        "solvability_max_tokens": 96,
        "responses": 3,
        "max_response_tokens": 160,
        "drop_easy_share": 1.0,
    }
    return project_config(
        root,
        student="qwen05",
        n_ctx=1024,
        rollouts={"k": 2, "max_tokens": 48, "prompt": "answer_only_v1"},
        synthesis={"scalequest": settings | scalequest},
    )


def _tables(root: DataRoot) -> tuple[pa.Table, pa.Table]:
    part = synth_partition("scalequest")
    return root.read_table("synthesis_log", part), root.read_table("synthesized_problems", part)


@pytest.mark.timeout(3600)  # ~2,500 generated tokens: ~1 min on idle cores; shared cores slow it up to 30-fold
def test_scalequest_end_to_end_on_the_small_model(small_engine: Engine, roles: MakeRoles, tmp_path: Path) -> None:
    project, root = _project(tmp_path), DataRoot(tmp_path)
    before = small_engine.stats.model_calls
    summary = build_scalequest(project, root, roles(project, DataRoot(tmp_path)), progress=False)
    log, problems = _tables(root)
    assert summary.table.equals(problems) and summary.path is not None and summary.path.is_dir()

    rows = log.to_pylist()
    print(summary.markdown["funnel"], summary.markdown["reject_reasons"], sep="\n")
    # Every requested candidate is logged, and walks the filters in order until one rejects it.
    by_item: dict[str, list[dict]] = {}
    for row in rows:
        by_item.setdefault(row["item_id"], []).append(row)
    assert sorted(by_item) == [f"q{i:05d}" for i in range(6)]
    for item, steps in by_item.items():
        assert [s["stage"] for s in steps] == list(STAGES[: len(steps)]), item
        assert all(s["kept"] for s in steps[:-1]) and all(s["reason"] or s["stage"] == "generate" for s in steps[1:])
    generated = [r for r in rows if r["stage"] == "generate"]
    assert all(r["model"] == small_engine.model_id and r["completion_tokens"] > 0 for r in generated)
    counts = summary.counts
    assert counts["requested"] == 6 and counts["generated"] == 6
    assert counts["requested"] >= counts["parsed"] >= counts["solvable"] >= counts["answered"] >= counts["kept"]
    assert counts["kept"] == problems.num_rows

    # Accepted problems carry the method, the checks and the evidence; their last log row is a kept difficulty.
    finals = {item: steps[-1] for item, steps in by_item.items()}
    for problem in problems.to_pylist():
        meta = json.loads(problem["metadata"])
        assert (problem["source"], problem["family"], problem["method"], problem["round"]) == ("scalequest",) * 3 + (0,)
        assert json.loads(problem["checks_passed"]) == list(CHECKS) and problem["generator_model"] == SMALL_MODEL
        assert meta["solvability_verdict"] == "yes" and meta["votes"] >= 2 and meta["difficulty_source"] == "rollouts"
        assert meta["pass_rate"] < 0.9, "drop_easy_share 1.0 drops every too-easy question"
        final = finals[meta["item_id"]]
        assert final["stage"] == "difficulty" and final["kept"]
    for figure in ("model_calls", "tokens_per_kept_problem"):
        assert figure in summary.figures
    assert set(summary.markdown) == {"funnel", "reject_reasons", "preview"}
    assert summary.figures["model_calls"] == small_engine.stats.model_calls - before

    # A rerun is served from the cache and rewrites the same tables.
    calls = small_engine.stats.model_calls
    again = build_scalequest(project, root, roles(project, DataRoot(tmp_path)), progress=False)
    assert small_engine.stats.model_calls == calls and again.figures["model_calls"] == 0
    assert _tables(root)[0].equals(log) and _tables(root)[1].equals(problems) and again.counts == counts

    # With a saved pass-rate predictor for the student, difficulty comes from it: no student rollouts at all.
    answered = [r for r in rows if r["stage"] == "difficulty"]
    _save_predictor(root, project.student.id)
    predicted = build_scalequest(project, root, roles(project, DataRoot(tmp_path)), progress=False)
    assert small_engine.stats.model_calls == calls
    difficulty = [r for r in _tables(root)[0].to_pylist() if r["stage"] == "difficulty"]
    assert len(difficulty) == len(answered) and predicted.counts["answered"] == counts["answered"]
    for row in difficulty:
        detail = json.loads(row["detail"])
        assert detail["difficulty_source"] == PREDICTOR_METHOD and detail["student_rollouts"] == 0
        assert 0 < detail["pass_rate"] < 1 and row["completion_tokens"] == 0


def _save_predictor(root: DataRoot, student_id: str) -> None:
    """A real predictor fit on 12 graded arithmetic questions (short ones easy, long ones hard)."""
    problems = [
        {
            "problem_id": f"p{i}",
            "question": f"What is {i} + {i}?" if i % 2 else f"Compute {i}! / {i + 3}^{i}.",
            "family": "arithmetic",
            "source": "procedural",
            "difficulty_knob": i % 5,
        }
        for i in range(12)
    ]
    counts = [(3, 4) if i % 2 else (1, 4) for i in range(12)]
    PassRatePredictor(folds=3).fit(problems, counts).save(predictor_path(root, student_id))


def test_responses_below_min_votes_is_a_config_error(small_engine: Engine, roles: MakeRoles, tmp_path: Path) -> None:
    project = _project(tmp_path, responses=1)
    with pytest.raises(ConfigError, match="responses"):
        build_scalequest(project, DataRoot(tmp_path), roles(project, DataRoot(tmp_path)), progress=False)
    assert not DataRoot(tmp_path).has_rows("synthesis_log", synth_partition("scalequest"))


def _answered(question: str, answer: str, index: int) -> Candidate:
    """A candidate as the majority-vote step leaves it (3 of 3 responses agree on `answer`)."""
    agreement = Agreement(True, answer, 3, 3, "3/3 solutions agree", (0, 1, 2))
    return Candidate(f"q{index:05d}", index, question, False, "yes", agreement, f"... so \\boxed{{{answer}}}", 0)


CANDIDATES = [
    ("A pen costs 3 dollars. How much do 4 pens cost in dollars?", "12"),
    ("Tom has 15 apples and gives away 6. How many apples does he have left?", "9"),
]


def test_difficulty_sampling_grades_on_student_rollouts(small_engine: Engine, roles: MakeRoles, tmp_path: Path) -> None:
    project, root = _project(tmp_path, drop_easy_share=0.0), DataRoot(tmp_path)
    candidates = [_answered(q, a, i) for i, (q, a) in enumerate(CANDIDATES)]
    record = SynthesisRecord("scalequest")
    with Verifier(project.verify) as verifier:
        problems = difficulty_sampling(
            project, root, candidates, roles(project, DataRoot(tmp_path)), verifier, record, progress=False
        )
    assert [row["stage"] for row in record.log] == ["difficulty", "difficulty"]
    assert len(problems) == 2, "with drop_easy_share 0 nothing is dropped"
    for row, problem in zip(record.log, problems, strict=True):
        detail, meta = json.loads(row["detail"]), json.loads(problem.metadata)
        assert detail["difficulty_source"] == "rollouts" and detail["student_rollouts"] == 2  # rollouts.k
        assert detail["pass_rate"] == detail["student_correct"] / 2 == meta["pass_rate"]
        assert detail["band"] == project.grading.bands.label(detail["pass_rate"]) and row["completion_tokens"] > 0
        assert row["reason"].startswith(detail["band"].replace("_", " ")) and row["kept"]
        assert (meta["votes"], meta["responses"], meta["chosen_response_idx"]) == (3, 3, 0)
        assert problem.parent_id is None and problem.answer in ("12", "9")


def test_difficulty_sampling_on_the_predictor_drops_the_easy_share(
    small_engine: Engine, roles: MakeRoles, tmp_path: Path
) -> None:
    _save_predictor(DataRoot(tmp_path), "qwen05")
    candidates = [_answered(q, a, i) for i, (q, a) in enumerate(CANDIDATES)]
    calls = small_engine.stats.model_calls
    kept = {}
    for share in (0.0, 1.0):
        # Bands under which every predicted pass rate (clipped to ≥ 0.01) is too easy.
        bands = {"grading": {"bands": {"too_hard": 0.0, "too_easy": 0.005}}}
        project = ProjectConfig.model_validate(_project(tmp_path, drop_easy_share=share).model_dump() | bands)
        record = SynthesisRecord("scalequest")
        with Verifier(project.verify) as verifier:
            kept[share] = difficulty_sampling(
                project, DataRoot(tmp_path), candidates, roles(project, DataRoot(tmp_path)), verifier, record
            )
        assert all(
            "too easy" in row["reason"] and json.loads(row["detail"])["band"] == "too_easy" for row in record.log
        )
        assert all(row["prompt_version"] == PREDICTOR_METHOD for row in record.log)
    assert len(kept[0.0]) == 2 and kept[1.0] == []
    assert small_engine.stats.model_calls == calls, "a predicted pass rate costs no model call"
