"""The supervision stage end to end on a real data root: a teacher served by a scripted test-double backend
through a real Engine and completion cache, the real Verifier, real Delta tables and DuckDB catalog, and the
exports read back with `datasets` and TRL's own format utilities. No model is loaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl.data_utils import is_conversational, maybe_apply_chat_template

from engines import Engine, EngineConfig
from scoring.catalog import memory_catalog
from scoring.config import ProjectConfig, StudentConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.grading.verify import CheckItem, Verifier
from scoring.stages.report import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.stages.supervision import build_supervision, supervision_dir
from scoring.storage import DataRoot
from scoring.supervision.config import SupervisionConfig
from scoring.supervision.traces import TraceSampling
from scoring.supervision_schemas import PREFERENCE_PAIR_KEY, SUPERVISION_TRACE_KEY
from tests.scoring.supervision.fixtures import TEACHER, problems, seed_tables, teacher_script
from tests.scoring.supervision.scripted_backend import ScriptedBackendTestDouble, scripted_engine


def _config(root: Path, **supervision: object) -> ProjectConfig:
    never = "http://127.0.0.1:9"  # an openai engine config that is never started: the roles are overridden
    student = EngineConfig(backend="openai", base_url=never, model="student-m", model_revision="student-r1")
    teacher = EngineConfig(backend="openai", base_url=never, model="teacher-m", model_revision="t1")
    settings = {"enabled": True, "traces": TraceSampling(samples=3)} | supervision
    return ProjectConfig(
        data_root=str(root),
        student=StudentConfig(id="s", engine=student),
        teacher=teacher,
        rollouts=RolloutConfig(k=4),
        supervision=SupervisionConfig(**settings),
    )


@dataclass
class Run:
    root: DataRoot
    config: ProjectConfig
    summary: StageSummary
    engine: Engine
    backend: ScriptedBackendTestDouble


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    path = tmp_path_factory.mktemp("supervision")
    root, config = DataRoot(path), _config(path)
    seed_tables(root, config)
    engine, backend = scripted_engine(teacher_script, root.cache_path, model_id="teacher-m", revision="t1")
    roles = EngineRoles(config, root, overrides={"teacher": engine})
    yield Run(root, config, build_supervision(config, root, roles, progress=False), engine, backend)
    engine.close()


def _ids() -> dict[str, str]:
    return {q: p.problem_id for q, p in problems().items()}


def _kept(root: DataRoot, policy: str) -> list[tuple[str, int, str]]:
    """(question, sample index, verdict) of the policy's kept traces, in export order."""
    table = root.read_table("supervision_selection", {"student": "s", "selection": policy}).to_pylist()
    question = {pid: q for q, pid in _ids().items()}
    kept = sorted((r for r in table if r["kept"]), key=lambda r: r["position"])
    return [(question[r["problem_id"]], r["sample_index"], r["verdict"]) for r in kept]


def test_traces_carry_verdict_difficulty_length_and_step_errors(run: Run) -> None:
    traces = {(r["problem_id"], r["sample_index"]): r for r in run.root.read_table("supervision_traces").to_pylist()}
    assert len(traces) == 11, "12 samples, one failed engine call"
    ids = _ids()
    wrong_step = traces[(ids["Compute 84 + 6."], 0)]
    assert wrong_step["verdict"] == "wrong" and wrong_step["extracted_answer"] == "91"
    assert (wrong_step["n_steps"], wrong_step["n_error_steps"], wrong_step["step_error_rate"]) == (2, 1, 0.5)
    assert wrong_step["first_step_error"] == "84 + 6 = 91" and wrong_step["step_method"] == "arith_steps_v1"
    assert (wrong_step["n"], wrong_step["k"], wrong_step["pass_rate"]) == (4, 1, 0.25)  # the student's difficulty
    assert wrong_step["student_revision"] == "student-r1" and wrong_step["role"] == "teacher"
    assert wrong_step["model_id"] == "teacher-m" and wrong_step["trace_chars"] == len(TEACHER["Compute 84 + 6."][1][0])
    unchecked = traces[(ids["Compute 84 + 6."], 2)]
    assert unchecked["verdict"] == "correct" and unchecked["n_checked_steps"] == 0 and unchecked["step_error_rate"] == 0
    bad_start = traces[(ids["Compute 15 * 4 - 5."], 2)]
    assert (bad_start["n_claims"], bad_start["n_wrong_claims"], bad_start["n_error_steps"]) == (2, 1, 1)
    rejects = run.root.read_table("rejects", {"origin": "supervision-s"}).to_pylist()
    assert [r["input_ref"] for r in rejects] == [f"{ids['Compute 9 * 9.']}#teacher#2"]
    assert "scripted failure" in rejects[0]["reason"]


def test_hard_first_keeps_the_problems_the_student_fails_with_wrong_traces(run: Run) -> None:
    # pass rates: 12*7 0/2, 84+6 1/4, 15*4-5 2/3, 9*9 2/2; hard_below 0.5; the first trace of a problem is kept
    assert _kept(run.root, "hard_first_v1") == [("Compute 12 * 7.", 0, "correct"), ("Compute 84 + 6.", 0, "wrong")]
    selection = run.root.read_table("supervision_selection", {"student": "s", "selection": "hard_first_v1"})
    dropped = [r for r in selection.to_pylist() if not r["kept"]]
    assert len(dropped) == 11 - 2 and all(r["reason"] for r in dropped)
    assert any(r["reason"].startswith("student passes 2/3") for r in dropped)


def test_correct_only_low_step_error_and_weak_to_strong_select_what_they_say(run: Run) -> None:
    assert _kept(run.root, "correct_only_v1") == [
        ("Compute 12 * 7.", 0, "correct"),
        ("Compute 84 + 6.", 1, "correct"),
        ("Compute 15 * 4 - 5.", 0, "correct"),
        ("Compute 9 * 9.", 0, "correct"),
    ]
    # every problem has a step-error-free checked trace; those come first, hardest first
    assert _kept(run.root, "low_step_error_first_v1") == _kept(run.root, "correct_only_v1")
    # 15*4-5: three different answers (55, 54, 60), no agreement; 84+6: 90 twice beats 91 once
    assert _kept(run.root, "weak_to_strong_v1") == [
        ("Compute 12 * 7.", 0, "correct"),
        ("Compute 84 + 6.", 1, "correct"),
        ("Compute 9 * 9.", 0, "correct"),
    ]


def test_preference_pairs_never_pair_a_sample_with_itself_and_reverify(run: Run) -> None:
    stored = run.root.read_table("preference_pairs", {"student": "s"}).to_pylist()
    pairs = [p for p in stored if p["method"] == "verified_pairs_v1"]
    assert {p["kind"] for p in pairs} == {"student_vs_student"}
    gold = {p.problem_id: p for p in problems().values()}
    assert {(gold[p["problem_id"]].question, p["chosen_index"], p["rejected_index"]) for p in pairs} == {
        ("Compute 84 + 6.", 0, 1),
        ("Compute 84 + 6.", 0, 2),
        ("Compute 15 * 4 - 5.", 0, 2),
        ("Compute 15 * 4 - 5.", 1, 2),
    }  # no pair where every sample agrees, and `unparseable` is not rejected by default
    assert all(p["chosen_index"] != p["rejected_index"] and p["chosen"] != p["rejected"] for p in pairs)
    with Verifier() as verifier:
        chosen = verifier.check([CheckItem(gold[p["problem_id"]].answer, p["chosen"]) for p in pairs])
        rejected = verifier.check([CheckItem(gold[p["problem_id"]].answer, p["rejected"]) for p in pairs])
    assert {v.label for v in chosen} == {"correct"} and {v.label for v in rejected} == {"wrong"}
    assert all(p["reason"].startswith(f"chosen: sample {p['chosen_index']} correct") for p in pairs)
    assert {(p["n"], p["k"]) for p in pairs} == {(4, 1), (3, 2)}


def test_teacher_pairs_choose_correct_teacher_traces_over_failed_student_samples(run: Run) -> None:
    stored = run.root.read_table("preference_pairs", {"student": "s"}).to_pylist()
    pairs = [p for p in stored if p["method"] == "teacher_student_pairs_v1"]
    gold = {p.problem_id: p for p in problems().values()}
    # correct teacher traces x failed student samples: 12*7 2x2, 84+6 2x2 (unparseable not rejected), 15*4-5 1x1,
    # 9*9 none (the student never fails it)
    assert sorted((gold[p["problem_id"]].question, p["chosen_index"], p["rejected_index"]) for p in pairs) == [
        ("Compute 12 * 7.", 0, 0), ("Compute 12 * 7.", 0, 1), ("Compute 12 * 7.", 2, 0), ("Compute 12 * 7.", 2, 1),
        ("Compute 15 * 4 - 5.", 0, 2),
        ("Compute 84 + 6.", 1, 1), ("Compute 84 + 6.", 1, 2), ("Compute 84 + 6.", 2, 1), ("Compute 84 + 6.", 2, 2),
    ]  # fmt: skip
    assert all(p["kind"] == "teacher_vs_student" and (p["chosen_role"], p["chosen_revision"]) == ("teacher", "t1")
               for p in pairs)  # fmt: skip
    assert all(p["chosen"] in TEACHER[gold[p["problem_id"]].question][1] for p in pairs)
    with Verifier() as verifier:
        chosen = verifier.check([CheckItem(gold[p["problem_id"]].answer, p["chosen"]) for p in pairs])
        rejected = verifier.check([CheckItem(gold[p["problem_id"]].answer, p["rejected"]) for p in pairs])
    assert {v.label for v in chosen} == {"correct"} and {v.label for v in rejected} == {"wrong"}
    assert all(p["reason"].startswith(f"chosen: teacher trace {p['chosen_index']} of teacher-m correct") for p in pairs)
    out = supervision_dir(run.config, run.root) / "teacher_student_pairs_v1"
    dpo = datasets.load_dataset("parquet", data_files=str(out / "trl" / "train-00000.parquet"), split="train")
    assert dpo.num_rows == 9 and set(dpo["kind"]) == {"teacher_vs_student"} and set(dpo["chosen_role"]) == {"teacher"}
    student_prompt = [m["content"] for m in dpo[0]["prompt"]]
    assert student_prompt[0].startswith("You are a careful math solver")  # the student's prompt, not the trace's


def test_pairs_switched_off_leave_an_empty_partition(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    config = _config(tmp_path, pairs={"enabled": False})
    seed_tables(root, config)
    engine, _ = scripted_engine(teacher_script, root.cache_path, model_id="teacher-m", revision="t1")
    summary = build_supervision(config, root, EngineRoles(config, root, overrides={"teacher": engine}), progress=False)
    engine.close()
    assert summary.counts["preference_pairs"] == 0 and root.read_table("preference_pairs").num_rows == 0
    assert not (supervision_dir(config, root) / "verified_pairs_v1").exists()


def _tokenizer() -> PreTrainedTokenizerFast:
    model = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="[UNK]")
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def test_sft_exports_load_in_trl_datasets_and_verl_layouts(run: Run) -> None:
    out = supervision_dir(run.config, run.root) / "hard_first_v1"
    trl = datasets.load_dataset("parquet", data_files=str(out / "trl" / "train-00000.parquet"), split="train")
    assert trl.num_rows == 2 and list(trl["position"]) == [0, 1]
    tokenizer = _tokenizer()
    for row, expected in zip(trl, TEACHER["Compute 12 * 7."][1][:1] + TEACHER["Compute 84 + 6."][1][:1], strict=True):
        assert is_conversational(row)
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][-1]["content"] == expected
        rendered = maybe_apply_chat_template(row, tokenizer)["text"]
        assert rendered.endswith(f"<|im_start|>assistant\n{expected}<|im_end|>\n")
    assert list(trl["verdict"]) == ["correct", "wrong"] and list(trl["answer"]) == ["84", "90"]
    from_disk = datasets.load_from_disk(str(out / "hf_dataset"))
    assert from_disk.to_list() == trl.to_list()
    # verl's SFTDataset reads `prompt`/`response` strings with pandas; MultiTurnSFTDataset reads `messages`
    verl = pd.read_parquet(out / "verl" / "train-00000.parquet")
    assert list(verl["prompt"]) == ["Compute 12 * 7.", "Compute 84 + 6."]
    assert list(verl["response"]) == [m[-1]["content"] for m in trl["messages"]]
    assert [info["position"] for info in verl["extra_info"]] == [0, 1]
    manifest = json.loads((out / "trl" / "export.json").read_text())
    assert manifest["rows"] == 2 and manifest["source"]["policy"] == "hard_first_v1"


def test_dpo_export_has_the_columns_trl_expects(run: Run) -> None:
    out = supervision_dir(run.config, run.root) / "verified_pairs_v1"
    dpo = datasets.load_dataset("parquet", data_files=str(out / "trl" / "train-00000.parquet"), split="train")
    assert dpo.num_rows == 4 and {"prompt", "chosen", "rejected"} <= set(dpo.column_names)
    tokenizer = _tokenizer()
    for row in dpo:
        assert is_conversational(row) and [m["role"] for m in row["prompt"]] == ["system", "user"]
        rendered = maybe_apply_chat_template(row, tokenizer)
        assert rendered["prompt"].endswith("<|im_start|>assistant\n")
        assert rendered["chosen"] == row["chosen"][0]["content"] + "<|im_end|>\n"
        assert rendered["rejected"] == row["rejected"][0]["content"] + "<|im_end|>\n"
    assert datasets.load_from_disk(str(out / "hf_dataset")).num_rows == 4
    assert not (out / "verl").exists()


def test_catalog_compares_the_policies(run: Run) -> None:
    con, views = memory_catalog(run.root)
    assert {"supervision_traces", "supervision_selection", "preference_pairs", "supervision_policies"} <= set(views)
    rows = con.execute("select policy, kept, correct_share, mean_pass_rate from supervision_policies").fetchall()
    by_policy = {r[0]: r[1:] for r in rows}
    assert by_policy["hard_first_v1"] == (2, 0.5, pytest.approx((0 + 0.25) / 2))
    assert by_policy["correct_only_v1"][:2] == (4, 1.0)
    assert run.summary.counts["kept_weak_to_strong_v1"] == 3 and run.summary.counts["preference_pairs"] == 13
    assert run.summary.counts["pairs_verified_pairs_v1"] == 4
    assert run.summary.counts["pairs_teacher_student_pairs_v1"] == 9


def test_rerun_makes_no_model_call_and_rewrites_identical_tables(run: Run) -> None:
    tables = ("supervision_traces", "supervision_selection", "preference_pairs")
    keys = {
        "supervision_traces": SUPERVISION_TRACE_KEY,
        "supervision_selection": ("policy", "problem_id", "role", "model_id", "sample_index"),
        "preference_pairs": PREFERENCE_PAIR_KEY,
    }  # file order inside a partition is not part of the contract: compare rows by key

    def rows(table: str) -> pa.Table:
        return run.root.read_table(table).sort_by([(k, "ascending") for k in keys[table]])

    before = {t: rows(t) for t in tables}
    export = supervision_dir(run.config, run.root) / "correct_only_v1" / "trl" / "train-00000.parquet"
    export_bytes = export.read_bytes()
    calls = run.backend.calls
    roles = EngineRoles(run.config, run.root, overrides={"teacher": run.engine})
    again = build_supervision(run.config, run.root, roles, progress=False)
    assert run.backend.calls == calls + 1, "only the failed call is retried (the cache keeps no failures)"
    assert again.counts == run.summary.counts
    for table in tables:
        assert rows(table).equals(before[table]), table
    assert export.read_bytes() == export_bytes


def test_without_grades_the_stage_says_what_to_run_first(tmp_path: Path) -> None:
    root, config = DataRoot(tmp_path), _config(tmp_path)
    engine, backend = scripted_engine(teacher_script, root.cache_path)
    summary = build_supervision(config, root, EngineRoles(config, root, overrides={"teacher": engine}), progress=False)
    engine.close()
    assert backend.calls == 0 and summary.table.num_rows == 0
    assert "materialize rollouts and difficulty first" in str(summary.figures["status"])
    assert root.has_table("supervision_traces") and not (supervision_dir(config, root)).exists()


def test_weak_to_strong_needs_enough_samples_to_agree() -> None:
    with pytest.raises(ValueError, match="weak_to_strong needs at least selection.min_agree = 2"):
        SupervisionConfig(traces=TraceSampling(samples=1))
    assert SupervisionConfig(traces=TraceSampling(samples=1), selection={"policies": ["hard_first"]})


def test_two_roles_on_one_engine_are_sampled_once(tmp_path: Path) -> None:
    config = _config(tmp_path, roles=("teacher", "generator"))  # the generator defaults to the teacher's engine
    root = DataRoot(tmp_path)
    seed_tables(root, config)
    engine, _ = scripted_engine(teacher_script, root.cache_path, model_id="teacher-m", revision="t1")
    summary = build_supervision(config, root, EngineRoles(config, root, overrides={"teacher": engine}), progress=False)
    engine.close()
    assert summary.counts["traces"] == 11 and "same engine as role 'teacher'" in str(
        summary.figures["skipped_role_generator"]
    )
    assert pa.compute.unique(root.read_table("supervision_traces").column("role")).to_pylist() == ["teacher"]


def test_two_engines_are_independent_teachers_for_weak_to_strong(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    generator = EngineConfig(backend="openai", base_url="http://127.0.0.1:9", model="weak-m", model_revision="w1")
    config = _config(tmp_path, roles=("teacher", "generator")).model_copy(update={"generator": generator})
    seed_tables(root, config)
    gold = {q: g for q, (g, _) in TEACHER.items()}
    teacher, _ = scripted_engine(teacher_script, root.cache_path, model_id="teacher-m", revision="t1")
    weak, _ = scripted_engine(lambda q, i: f"I think it is \\boxed{{{gold[q]}}}", root.cache_path, model_id="weak-m")
    roles = EngineRoles(config, root, overrides={"teacher": teacher, "generator": weak})
    summary = build_supervision(config, root, roles, progress=False)
    teacher.close()
    weak.close()
    assert summary.counts["traces"] == 11 + 12
    traces = root.read_table("supervision_traces").to_pylist()
    assert {(r["role"], r["model_id"]) for r in traces} == {("teacher", "teacher-m"), ("generator", "weak-m")}
    # 15*4-5: the teacher's three answers disagree, the weak engine's three 55s settle it; the first agreeing
    # trace (by role name, then sample) is the generator's
    kept = {q: (i, v) for q, i, v in _kept(root, "weak_to_strong_v1")}
    assert set(kept) == set(TEACHER) and kept["Compute 15 * 4 - 5."] == (0, "correct")
    selection = root.read_table("supervision_selection", {"student": "s", "selection": "weak_to_strong_v1"})
    dropped = [r for r in selection.to_pylist() if not r["kept"] and r["role"] == "teacher"]
    assert any("is not the agreed '55/1'" in r["reason"] for r in dropped)
