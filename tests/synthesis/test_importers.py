"""Dataset import: presets on the real files in ../shared, other formats through `datasets`, bad rows as rejects."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from engines.errors import ConfigError
from synthesis.answers import last_boxed
from synthesis.importers import import_dataset, mapping_for


def test_gsm8k_train_rows_become_problems(shared_dir: Path) -> None:
    path = shared_dir / "data" / "gsm8k" / "train.jsonl"
    result = import_dataset(path, source="gsm8k", mapping=mapping_for("gsm8k"), limit=25)
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
    result = import_dataset(path, source="seeds", mapping=mapping_for("gsm8k"))
    assert [p.answer for p in result.problems] == ["2", "4"]
    reasons = {r.input_ref: r.reason for r in result.rejects}
    assert set(reasons) == {"seeds.jsonl:2", "seeds.jsonl:3", "seeds.jsonl:4", "seeds.jsonl:5"}
    assert "malformed JSON" in reasons["seeds.jsonl:2"]
    assert "no final answer" in reasons["seeds.jsonl:3"]
    assert "missing field 'question'" in reasons["seeds.jsonl:4"] and "'prompt'" in reasons["seeds.jsonl:4"]
    assert "JSON object" in reasons["seeds.jsonl:5"]


def test_math500_preset_and_boxed_rule(shared_dir: Path, tmp_path: Path) -> None:
    result = import_dataset(
        shared_dir / "data" / "math" / "math500_test.jsonl",
        source="math500",
        mapping=mapping_for("math"),
        limit=5,
    )
    assert len(result.problems) == 5 and all(p.answer for p in result.problems)
    path = tmp_path / "boxed.jsonl"
    path.write_text('{"q": "Half of one?", "sol": "It is \\\\boxed{\\\\frac{1}{2}}."}\n')
    boxed = import_dataset(
        path,
        source="b",
        mapping=mapping_for(None, {"question": "q", "answer": "sol", "answer_rule": "boxed"}),
    )
    assert boxed.problems[0].answer == "\\frac{1}{2}"


def test_missing_file_and_unknown_preset_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        import_dataset(tmp_path / "absent.jsonl", source="x", mapping=mapping_for("gsm8k"))
    with pytest.raises(ConfigError, match="did you mean 'gsm8k'"):
        mapping_for("gsm8")


# --- through Hugging Face `datasets`: other formats, schema checks, null rows, the MATH presets -----------------


def _write_parquet(path: Path, columns: dict[str, list[object]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_with_an_unseen_schema_and_a_mapping(tmp_path: Path) -> None:
    path = _write_parquet(
        tmp_path / "olympiad.parquet",
        {
            "prompt": ["Add 2 and 3.", "Name the prime after 7.", "  ", "Halve 9."],
            "final": ["5", None, "1", "4.5"],
            "worked": ["2 + 3 = 5", "11", "x", None],
            "uid": [101, 102, 103, 104],
            "topic": ["arith", "primes", "arith", "arith"],
        },
    )
    mapping = mapping_for(
        None,
        {"question": "prompt", "answer": "final", "answer_rule": "column", "solution": "worked", "id_field": "uid"},
    )
    result = import_dataset(path, source="olympiad", mapping=mapping)
    assert [(p.question, p.answer, p.solution) for p in result.problems] == [
        ("Add 2 and 3.", "5", "2 + 3 = 5"),
        ("Halve 9.", "4.5", None),
    ]
    assert [p.source_ref for p in result.problems] == ["olympiad.parquet:1", "olympiad.parquet:4"]
    assert json.loads(result.problems[0].metadata) == {"original_id": "101"}
    assert all(p.source == p.family == "olympiad" for p in result.problems)
    reasons = {r.input_ref: r.reason for r in result.rejects}
    assert reasons == {
        "olympiad.parquet:2": "field 'final' is null",
        "olympiad.parquet:3": "field 'prompt' is not a non-empty string",
    }
    assert "Name the prime after 7." in result.rejects[0].raw_text
    assert len(import_dataset(path, source="olympiad", mapping=mapping, limit=1).problems) == 1


def test_csv_columns_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Q", "A", "n"])
        writer.writerow(["Which code opens the safe?", "042", "1"])
        writer.writerow(["A question with no answer", "", "2"])
        writer.writerow(["A cell that spans\ntwo lines: 3 * 1.0?", "3.0", "3"])
    mapping = mapping_for(None, {"question": "Q", "answer": "A", "answer_rule": "column", "id_field": "n"})
    result = import_dataset(path, source="quiz", mapping=mapping)
    assert [p.answer for p in result.problems] == ["042", "3.0"]  # not 42 and 3: no type inference on answers
    assert [p.source_ref for p in result.problems] == ["quiz.csv:1", "quiz.csv:3"]
    assert "\n" in result.problems[1].question
    assert [(r.input_ref, r.reason) for r in result.rejects] == [("quiz.csv:2", "field 'A' is null")]


def test_a_saved_to_disk_dataset_and_its_splits(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = {"text": ["What is 6 * 7?", "What is 10 / 4?"], "gold": ["The product is \\boxed{42}.", "\\boxed{2.5}"]}
    Dataset.from_dict(rows).save_to_disk(tmp_path / "saved")
    mapping = mapping_for(None, {"question": "text", "answer": "gold", "answer_rule": "boxed"})
    result = import_dataset(tmp_path / "saved", source="saved", mapping=mapping)
    assert [p.answer for p in result.problems] == ["42", "2.5"] and not result.rejects
    assert [p.source_ref for p in result.problems] == ["saved:1", "saved:2"]
    assert result.problems[0].solution == "The product is \\boxed{42}."

    DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(rows)}).save_to_disk(tmp_path / "dd")
    with pytest.raises(ConfigError, match="holds the splits"):
        import_dataset(tmp_path / "dd", source="dd", mapping=mapping)
    assert len(import_dataset(tmp_path / "dd" / "test", source="dd", mapping=mapping).problems) == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_a_mapped_field_missing_from_the_columns_is_a_config_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    columns = {"prompt": ["What is 1+1?"], "solution": ["#### 2"]}
    if suffix == ".jsonl":
        path.write_text(json.dumps({"prompt": "What is 1+1?", "solution": "#### 2"}) + "\n")
    elif suffix == ".parquet":
        _write_parquet(path, columns)
    else:
        path.write_text("prompt,solution\nWhat is 1+1?,#### 2\n")
    with pytest.raises(ConfigError) as info:
        import_dataset(path, source="d", mapping=mapping_for("gsm8k", {"answer": "solution"}))
    message = str(info.value)
    assert str(path) in message and "'question'" in message
    assert "available: prompt, solution" in message


def test_an_optional_field_missing_says_how_to_switch_it_off(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"problem": "What is 2+2?", "answer": "4"}) + "\n")
    with pytest.raises(ConfigError, match=r"'id_field' \(or set id_field to '' to import without it\)"):
        import_dataset(path, source="m", mapping=mapping_for("math"))
    mapping = mapping_for("math", {"id_field": "", "solution": ""})
    assert import_dataset(path, source="m", mapping=mapping).problems[0].answer == "4"
    with pytest.raises(ConfigError, match="did you mean 'question'"):
        mapping_for("math", {"questoin": "q"})


def test_null_answers_in_jsonl_are_rejects_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "nulls.jsonl"
    rows = [{"question": "Q1", "answer": "#### 1"}, {"question": "Q2", "answer": None}, {"question": "Q3"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = import_dataset(path, source="n", mapping=mapping_for("gsm8k"))
    assert [p.source_ref for p in result.problems] == ["nulls.jsonl:1"]
    assert [(r.input_ref, r.reason) for r in result.rejects] == [
        ("nulls.jsonl:2", "field 'answer' is null"),
        ("nulls.jsonl:3", "field 'answer' is null"),
    ]


def test_deepscaler_json_array_with_null_and_empty_answers(shared_dir: Path) -> None:
    path = shared_dir / "data" / "math" / "deepscaler_train" / "math.json"
    rows = json.loads(path.read_text())
    result = import_dataset(path, source="deepscaler", mapping=mapping_for("math", {"id_field": "", "solution": ""}))
    bad = {i + 1: row["answer"] for i, row in enumerate(rows) if not (row["answer"] or "").strip()}
    assert None in bad.values() and "" in bad.values()  # the real file has both: 2 nulls, 2 empty strings
    assert [r.input_ref for r in result.rejects] == [f"math.json:{n}" for n in bad]
    reasons = [r.reason for r in result.rejects]
    assert reasons.count("field 'answer' is null") == list(bad.values()).count(None)
    assert len(result.problems) == len(rows) - len(bad)
    assert result.problems[0].answer == rows[0]["answer"].strip()


def test_math500_preset_keeps_solution_and_id(shared_dir: Path) -> None:
    path = shared_dir / "data" / "math" / "math500_test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    result = import_dataset(path, source="math500", mapping=mapping_for("math"))
    assert len(result.problems) == len(rows) == 500 and not result.rejects
    for problem, row in zip(result.problems, rows, strict=True):
        assert problem.answer == row["answer"].strip() and problem.solution == row["solution"].strip()
        assert json.loads(problem.metadata) == {"original_id": row["unique_id"]}
    assert result.problems[-1].source_ref == "math500_test.jsonl:500"


def test_math_test5000_solution_preset_takes_the_last_boxed(shared_dir: Path) -> None:
    path = shared_dir / "data" / "math" / "math_test5000.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()[:200]]
    result = import_dataset(path, source="math5000", mapping=mapping_for("math_solution"), limit=200)
    assert len(result.problems) == 200 and not result.rejects
    for problem, row in zip(result.problems, rows, strict=True):
        assert problem.answer == last_boxed(row["solution"]) and problem.solution == row["solution"].strip()
        assert json.loads(problem.metadata) == {"original_id": str(row["idx"])}
    assert result.problems[0].answer == "2"  # "the graph has $\boxed{2}$ vertical asymptotes"


def test_loading_never_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted during an import")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    offline_before = datasets.config.HF_HUB_OFFLINE
    path = _write_parquet(tmp_path / "p.parquet", {"question": ["What is 3+3?"], "answer": ["#### 6"]})
    assert import_dataset(path, source="p", mapping=mapping_for("gsm8k")).problems[0].answer == "6"
    assert datasets.config.HF_HUB_OFFLINE is offline_before  # restored after the import


def test_unknown_extension_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    path.write_text("What is 1+1?\n")
    with pytest.raises(ConfigError, match=r"unknown extension '.txt'; expected one of .jsonl, .json, .parquet, .csv"):
        import_dataset(path, source="t", mapping=mapping_for("gsm8k"))


def test_where_keeps_listed_math_levels_with_their_original_row_refs(shared_dir: Path) -> None:
    path = shared_dir / "data" / "math" / "deepscaler_train" / "math.json"
    rows = json.loads(path.read_text())
    mapping = mapping_for("math", {"id_field": "", "solution": ""})
    result = import_dataset(path, source="m", mapping=mapping, limit=12, where={"difficulty": [1, 2]})
    expected = [
        i + 1 for i, row in enumerate(rows) if row["difficulty"] in (1.0, 2.0) and (row["answer"] or "").strip()
    ]
    assert [p.source_ref for p in result.problems] == [f"math.json:{n}" for n in expected[:12]]
    assert all(rows[int(p.source_ref.split(":")[1]) - 1]["difficulty"] in (1.0, 2.0) for p in result.problems)
    unfiltered = import_dataset(path, source="m", mapping=mapping, limit=12)
    assert [p.source_ref for p in unfiltered.problems] != [p.source_ref for p in result.problems]


@pytest.mark.parametrize("broken", [False, True])
def test_where_on_jsonl_skips_rows_without_rejecting_them(tmp_path: Path, broken: bool) -> None:
    path = tmp_path / "levels.jsonl"
    lines = [
        json.dumps({"question": f"Q{i}", "answer": f"#### {i}", "level": "easy" if i % 2 else "hard"}) for i in range(6)
    ]
    if broken:  # a malformed line sends the file down the line-by-line reader, which must filter the same way
        lines.insert(1, '{"question": ')
    path.write_text("\n".join(lines) + "\n")
    result = import_dataset(path, source="l", mapping=mapping_for("gsm8k"), limit=2, where={"level": ["easy"]})
    assert [p.answer for p in result.problems] == ["1", "3"]
    assert len(result.rejects) == int(broken)


def test_where_on_a_missing_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question": "Q", "answer": "#### 1", "level": 1}) + "\n")
    with pytest.raises(ConfigError, match=r"no column 'levle' to filter on \(where\);.*did you mean 'level'"):
        import_dataset(path, source="r", mapping=mapping_for("gsm8k"), where={"levle": [1]})
