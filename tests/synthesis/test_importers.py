"""Dataset import: the GSM8K preset on the real files in ../shared, and bad rows as rejects with line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.errors import ConfigError
from synthesis.importers import import_jsonl, mapping_for


def test_gsm8k_train_rows_become_problems(shared_dir: Path) -> None:
    path = shared_dir / "data" / "gsm8k" / "train.jsonl"
    result = import_jsonl(path, source="gsm8k", mapping=mapping_for("gsm8k"), limit=25)
    assert len(result.problems) == 25 and not result.rejects
    first_line = json.loads(path.read_text().splitlines()[0])
    first = result.problems[0]
    assert first.question == first_line["question"].strip()
    assert first.answer == first_line["answer"].split("####")[-1].strip().replace(",", "")
    assert first.source_ref == "train.jsonl:1" and first.solution and "####" not in first.solution
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in result.problems)


def test_malformed_lines_become_rejects_and_the_rest_proceeds(tmp_path: Path) -> None:
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        '{"question": "What is 1+1?", "answer": "1+1=2 #### 2"}\n'
        '{"question": "broken", "answer": \n'
        '{"question": "No answer marker", "answer": "just text"}\n'
        '{"prompt": "wrong columns", "answer": "#### 3"}\n'
        "[1, 2]\n"
        "\n"
        '{"question": "What is 2+2?", "answer": "#### 4"}\n'
    )
    result = import_jsonl(path, source="seeds", mapping=mapping_for("gsm8k"))
    assert [p.answer for p in result.problems] == ["2", "4"]
    reasons = {r.input_ref: r.reason for r in result.rejects}
    assert set(reasons) == {"seeds.jsonl:2", "seeds.jsonl:3", "seeds.jsonl:4", "seeds.jsonl:5"}
    assert "malformed JSON" in reasons["seeds.jsonl:2"]
    assert "no final answer" in reasons["seeds.jsonl:3"]
    assert "missing field 'question'" in reasons["seeds.jsonl:4"] and "'prompt'" in reasons["seeds.jsonl:4"]
    assert "JSON object" in reasons["seeds.jsonl:5"]


def test_math500_preset_and_boxed_rule(shared_dir: Path, tmp_path: Path) -> None:
    result = import_jsonl(
        shared_dir / "data" / "math" / "math500_test.jsonl",
        source="math500",
        mapping=mapping_for("math"),
        limit=5,
    )
    assert len(result.problems) == 5 and all(p.answer for p in result.problems)
    path = tmp_path / "boxed.jsonl"
    path.write_text('{"q": "Half of one?", "sol": "It is \\\\boxed{\\\\frac{1}{2}}."}\n')
    boxed = import_jsonl(
        path,
        source="b",
        mapping=mapping_for(None, {"question": "q", "answer": "sol", "answer_rule": "boxed"}),
    )
    assert boxed.problems[0].answer == "\\frac{1}{2}"


def test_missing_file_and_unknown_preset_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        import_jsonl(tmp_path / "absent.jsonl", source="x", mapping=mapping_for("gsm8k"))
    with pytest.raises(ConfigError, match="did you mean 'gsm8k'"):
        mapping_for("gsm8")
