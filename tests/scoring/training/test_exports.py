"""Trainer exports of real curriculum shards: verl RL Parquet, TRL prompt-only Parquet and a saved HF dataset,
read back the way each trainer reads them; order, idempotence, stale files and tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from engines.errors import ConfigError, IntegrityError
from scoring.curriculum.shards import CurriculumReader, write_shards
from scoring.curriculum.strategies import CurriculumConfig, LengthBudget, plan_curriculum
from scoring.grading.rollouts import PROMPTS
from scoring.schemas import PROBLEMS, SHARD, to_table
from scoring.training.exports import EXPORT_MANIFEST, TRL_RESERVED, export, export_hf_dataset, export_trl, export_verl
from tests.conftest import difficulty_table

# A ChatML template on a real (word-level) fast tokenizer: enough for TRL and verl to render prompts offline.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer() -> PreTrainedTokenizerFast:
    model = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="[UNK]")
    tokenizer.chat_template = CHATML
    return tokenizer


def _write_curriculum(shard_dir: Path, size: int = 11, shard_size: int = 3) -> list[dict[str, Any]]:
    """Real shards from plan_curriculum + write_shards; returns the rows in curriculum order."""
    ids = [f"p{i:02d}" for i in range(size)]
    problems = [
        {
            "problem_id": pid,
            "source": "procedural" if i % 2 else "gsm8k",
            "family": "arithmetic" if i % 2 else "gsm8k",
            "question": f"What is {i} + {i}?",
            "answer": str(2 * i),
            "solution": None,
            "difficulty_knob": i % 3 or None,
            "source_ref": pid,
            "metadata": "{}",
        }
        for i, pid in enumerate(ids)
    ]
    grades = difficulty_table({pid: 1 + i % 7 for i, pid in enumerate(ids)}, n=8)  # 0 < k < n: every problem is kept
    config = CurriculumConfig(shard_size=shard_size, length_budget=LengthBudget(start=64, end=16, decays=2))
    plan = plan_curriculum(to_table(problems, PROBLEMS), grades, student_id="s", config=config)
    write_shards(plan, shard_dir, config=config, student_id="s", provenance={})
    return list(CurriculumReader(shard_dir).rows())


def _expected_prompt(row: dict[str, Any], version: str) -> list[dict[str, str]]:
    system, suffix = PROMPTS[version]
    return [{"role": "system", "content": system}, {"role": "user", "content": row["question"] + suffix}]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def curriculum(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    shard_dir = tmp_path / "shards"
    return shard_dir, _write_curriculum(shard_dir)


def test_verl_export_has_the_fields_rlhfdataset_reads_in_curriculum_order(curriculum, tmp_path: Path) -> None:
    shard_dir, rows = curriculum
    result = export_verl(shard_dir, tmp_path / "out", prompt="answer_only_v1")
    assert [p.name for p in result.files] == [f"train-{i:05d}.parquet" for i in range(4)]  # one per shard
    assert [f["first_position"] for f in result.manifest["files"]] == [0, 3, 6, 9]
    # verl 0.9.1 does not import here (needs ray, tensordict, omegaconf, …), so read the files as its
    # RLHFDataset does (verl/utils/dataset/rl_dataset.py, `_read_files_and_tokenize`): load_dataset("parquet")
    # per file, concatenate_datasets in the order given.
    files = [str(result.path / f["file"]) for f in result.manifest["files"]]
    parts = [datasets.load_dataset("parquet", data_files=f, cache_dir=str(tmp_path / "hf"))["train"] for f in files]
    data = datasets.concatenate_datasets(parts)
    features = data.features
    assert features["prompt"] == datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    assert features["data_source"] == datasets.Value("string") and features["ability"] == datasets.Value("string")
    assert features["reward_model"] == {"style": datasets.Value("string"), "ground_truth": datasets.Value("string")}
    assert features["extra_info"]["index"] == datasets.Value("int64")
    tokenizer = _tokenizer()
    assert len(data) == len(rows) == 11
    for got, want in zip(data, rows, strict=True):
        # __getitem__ reads prompt (raw_prompt), extra_info.index/tools_kwargs; the naive reward manager
        # (verl/workers/reward_manager/naive.py) reads reward_model["ground_truth"], data_source, extra_info.
        assert got["prompt"] == _expected_prompt(want, "answer_only_v1")
        assert got["data_source"] == f"{want['source']}/{want['family']}" and got["ability"] == "math"
        assert got["reward_model"] == {"style": "rule", "ground_truth": want["answer"]}
        info = got["extra_info"]
        assert info["index"] == want["position"] and info["split"] == "train"
        assert {k: info[k] for k in SHARD.names if k in info} == {k: want[k] for k in SHARD.names if k in info}
        assert {"difficulty", "pass_rate", "stage", "weight", "token_budget"} <= set(info)
        # the length filter's call: tokenizer.apply_chat_template(doc[prompt_key], add_generation_prompt=True)
        assert tokenizer.apply_chat_template(got["prompt"], add_generation_prompt=True)
    assert [r["extra_info"]["index"] for r in data] == list(range(11))
    assert [r["extra_info"]["token_budget"] for r in data][::5] == [64, 32, 16]  # passthrough of a newer column


def test_trl_export_is_conversational_and_trl_renders_it(curriculum, tmp_path: Path) -> None:
    from trl import data_utils

    shard_dir, rows = curriculum
    result = export_trl(shard_dir, tmp_path / "out")
    files = [str(result.path / f["file"]) for f in result.manifest["files"]]
    data = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))["train"]
    assert data.column_names[:4] == ["prompt", "answer", "position", "problem_id"]
    assert not set(data.column_names) & {"completion", *TRL_RESERVED}  # GRPOTrainer's own reward kwargs
    tokenizer = _tokenizer()
    for got, want in zip(data, rows, strict=True):
        assert data_utils.is_conversational(got)
        assert got["prompt"] == _expected_prompt(want, "solve_boxed_v1")
        assert (got["answer"], got["position"], got["problem_id"]) == (
            want["answer"],
            want["position"],
            want["problem_id"],
        )
        rendered = data_utils.maybe_apply_chat_template(got, tokenizer)
        assert rendered["prompt"].startswith("<|im_start|>system\n" + PROMPTS["solve_boxed_v1"][0])
        assert rendered["prompt"].endswith(want["question"] + "<|im_end|>\n<|im_start|>assistant\n")
    assert data["position"] == list(range(len(rows)))


def test_hf_dataset_loads_from_disk_in_manifest_order_with_the_shard_values(curriculum, tmp_path: Path) -> None:
    shard_dir, rows = curriculum
    result = export_hf_dataset(shard_dir, tmp_path / "out")
    data = datasets.load_from_disk(str(tmp_path / "out" / "hf_dataset"))
    assert isinstance(data, datasets.Dataset) and result.rows == len(data) == len(rows)
    manifest_order = [
        pid
        for shard in CurriculumReader(shard_dir).shards
        for pid in pq.read_table(shard_dir / shard["file"], columns=["problem_id"])["problem_id"].to_pylist()
    ]
    assert data["problem_id"] == manifest_order == [r["problem_id"] for r in rows]
    for got, want in zip(data, rows, strict=True):
        assert {k: got[k] for k in SHARD.names} == want
        assert got["prompt"] == _expected_prompt(want, "solve_boxed_v1")
    assert (result.path / EXPORT_MANIFEST).is_file()
    assert [f["file"] for f in result.manifest["files"]] == sorted(
        p.name for p in result.path.iterdir() if p.name != EXPORT_MANIFEST
    )


def test_rerun_is_byte_identical_and_a_smaller_export_removes_stale_files(tmp_path: Path) -> None:
    shard_dir, out = tmp_path / "shards", tmp_path / "out"
    _write_curriculum(shard_dir, shard_size=2)
    formats = ["verl", "trl", "hf_dataset"]
    export(shard_dir, out, formats)
    first = _tree_bytes(out)
    assert sum(name.startswith("verl/train-") for name in first) == 6
    export(shard_dir, out, formats)
    assert _tree_bytes(out) == first
    _write_curriculum(shard_dir, shard_size=5)  # 3 shards instead of 6
    results = export(shard_dir, out, formats)
    for fmt in ("verl", "trl"):
        assert sorted(p.name for p in (out / fmt).iterdir()) == [
            EXPORT_MANIFEST,
            "train-00000.parquet",
            "train-00001.parquet",
            "train-00002.parquet",
        ]
        assert results[fmt].rows == 11 and len(results[fmt].manifest["files"]) == 3
    assert sorted(p.name for p in out.iterdir()) == ["hf_dataset", "trl", "verl"]  # no temp dirs left behind
    assert datasets.load_from_disk(str(out / "hf_dataset"))["position"] == list(range(11))


def test_corrupted_shard_raises_the_readers_integrity_error_and_writes_nothing(curriculum, tmp_path: Path) -> None:
    shard_dir, _ = curriculum
    (shard_dir / "shard-00002.parquet").write_bytes(b"PAR1 tampered")
    with pytest.raises(IntegrityError, match=r"shard-00002\.parquet does not match the sha256"):
        export(shard_dir, tmp_path / "out", ["verl", "trl", "hf_dataset"])
    assert not (tmp_path / "out").exists()


def test_unknown_format_or_prompt_is_named_before_anything_is_written(curriculum, tmp_path: Path) -> None:
    shard_dir, _ = curriculum
    with pytest.raises(ConfigError, match=r"unknown export format 'verll'; did you mean 'verl'\? available: "):
        export(shard_dir, tmp_path / "out", ["trl", "verll"])
    with pytest.raises(ConfigError, match=r"unknown prompt 'solve_boxed_v2'; did you mean 'solve_boxed_v1'"):
        export_verl(shard_dir, tmp_path / "out", prompt="solve_boxed_v2")
    with pytest.raises(ConfigError, match="no export format"):
        export(shard_dir, tmp_path / "out", [])
    assert not (tmp_path / "out").exists()


def test_an_empty_curriculum_is_refused_with_the_exclusion_counts(tmp_path: Path) -> None:
    shard_dir = tmp_path / "shards"
    _write_curriculum(shard_dir, size=0)
    with pytest.raises(ConfigError, match="has no problems"):
        export(shard_dir, tmp_path / "out", ["hf_dataset"])
    assert not (tmp_path / "out").exists()
