"""Hostile inputs: broken and booby-trapped configs, import files with broken and enormous lines, names that
try to leave the data root, and model answers built to attack the verifier or the JSON parser. Each is
refused with a message naming what was wrong, becomes a reject with its line number, or gets a verdict — never
executed, and always within a time bound (generous, for two shared cores)."""

from __future__ import annotations

import time
import tracemalloc
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from scoring.config import ProjectConfig, StudentConfig, load_config
from scoring.errors import ConfigError
from scoring.grading.verify import Verifier, parse_answer
from scoring.storage import DataRoot, safe_name
from synthesis.importers import import_dataset, mapping_for
from synthesis.structured import ParseError, extract_json

# --- configs ---------------------------------------------------------------------------------------------------


def _models(annotation: object) -> typing.Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def test_every_config_section_rejects_unknown_keys() -> None:
    """Walk the whole config tree: every section is a pydantic model with extra='forbid' (a typo never passes
    silently as a default)."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [ProjectConfig]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", f"{model.__module__}.{model.__name__} allows extra keys"
        for field in model.model_fields.values():
            todo.extend(_models(field.annotation))
    assert len(seen) > 20  # the walk reached the nested sections


@pytest.mark.parametrize(
    "text,named",
    [
        ("rollouts: {k: 2, kk: 3}\n", "'rollouts.kk'"),
        ("student: {engine: {modle: x}}\n", "'student.engine.modle'"),
        ("grading: {adaptive: {min_kk: 2}}\n", "'grading.adaptive.min_kk'"),
        ("synthesis: {scalequest: {questionz: 3}}\n", "'synthesis.scalequest.questionz'"),
        ("sources: {procedural: [{family: arithmetic, levles: [1]}]}\n", "'sources.procedural.0.levles'"),
        ("dedup: {treshold: 0.5}\n", "'dedup.treshold'"),
        ("trainer: {stepz: 1}\n", "'trainer.stepz'"),
    ],
)
def test_an_unknown_key_at_any_depth_is_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "gradus.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown key {named}"):
        load_config(path)


@pytest.mark.parametrize(
    "text,match",
    [
        ("rollouts: {k: 2\n", "not valid YAML"),  # unclosed flow mapping
        ('{"rollouts": {"k": 2,, }}\n', "not valid YAML"),  # broken JSON (JSON is YAML)
        ("rollouts:\n\tk: 2\n", "not valid YAML"),  # a tab indent
        ("[1, 2, 3]\n", "must hold a mapping, got list"),
        ("just a string\n", "must hold a mapping, got str"),
        ("rollouts: {k: many}\n", r"rollouts\.k: .*got 'many'"),
        ("rollouts: {k: -3}\n", r"rollouts\.k: .*greater than"),
        ("student: {id: [a, b]}\n", r"student\.id: .*string"),
        ("curriculum: {shard_size: 1e999}\n", r"curriculum\.shard_size"),
        ("rollouts: !!python/object/apply:os.system [touch /tmp/gradus-pwned]\n", "not valid YAML"),
    ],
)
def test_malformed_and_mistyped_configs_name_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "gradus.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert not Path("/tmp/gradus-pwned").exists(), "a YAML tag ran a command"


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path: Path) -> None:
    """A few hundred bytes that expand to 10^9 list elements: validation stops at the first level and the error
    shows the value cut short (it used to print the expansion in full and never return)."""
    lines = ["x: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "gradus.yaml"
    path.write_text("\n".join(lines) + "\nsources: {procedural: *a8}\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="sources.procedural.0") as caught:
        load_config(path)
    assert time.monotonic() - started < 5
    assert len(str(caught.value)) < 5_000


# --- names used in paths ---------------------------------------------------------------------------------------


TRAVERSALS = ["../evil", "../../etc", "/etc/passwd", "a/b", "..", ".hidden", "a\\..\\b", "x" * 200, "", "a\x00b"]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_a_student_id_that_would_leave_the_data_root_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a safe name"):
        StudentConfig(id=bad)
    with pytest.raises(ConfigError, match="not a safe name"):
        safe_name(bad, "shard name")
    with pytest.raises(ConfigError):
        DataRoot(tmp_path).table_path("rollouts", {"student": bad})


def test_export_formats_and_curriculum_strategies_are_closed_lists(tmp_path: Path) -> None:
    """Export directories and shard directories are named from fixed lists, never from free text."""
    for text, match in [
        ("exports: {formats: ['../../x']}\n", r"exports\.formats\.0"),
        ("curriculum: {strategy: ../../x}\n", r"curriculum\.strategy"),
    ]:
        path = tmp_path / "gradus.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(path)


# --- import files ------------------------------------------------------------------------------------------------


def test_an_import_file_with_broken_and_enormous_lines_keeps_the_good_rows(tmp_path: Path) -> None:
    """A 50 MB line, malformed JSON, a JSON array, invalid UTF-8 and a NUL byte: each bad line becomes a reject
    with its line number; the good rows are imported; memory stays near the size of one line."""
    path = tmp_path / "seed.jsonl"
    big = b'{"question": "' + b"A" * 50_000_000 + b'", "answer": "#### 1"}\n'
    with open(path, "wb") as fh:
        fh.write(b'{"question": "What is 2 + 2?", "answer": "#### 4"}\n')  # 1
        fh.write(big)  # 2
        fh.write(b'{"question": "unclosed", "answer": \n')  # 3
        fh.write(b'["a", "list"]\n')  # 4
        fh.write(b'{"question": "\xff\xfe bad bytes", "answer": "#### 2"}\n')  # 5: replaced, still a problem
        fh.write(b'{"question": "nul \x00 byte", "answer": "#### 3"}\n')  # 6: a raw control byte is malformed JSON
        fh.write(b'{"question": "What is 3 + 4?", "answer": "#### 7"}\n')  # 7
    tracemalloc.start()
    started = time.monotonic()
    result = import_dataset(path, source="seed", mapping=mapping_for(None), limit=None)
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reasons = {r.input_ref: r.reason for r in result.rejects}
    assert "longer than" in reasons["seed.jsonl:2"]
    assert "malformed JSON" in reasons["seed.jsonl:3"] and "expected a JSON object" in reasons["seed.jsonl:4"]
    assert "seed.jsonl:6" in reasons
    assert [p.answer for p in result.problems] == ["4", "2", "7"]
    assert elapsed < 30 and peak < 200_000_000, (elapsed, peak)


# --- the verifier ------------------------------------------------------------------------------------------------

PWNED = Path("/tmp/gradus-verifier-pwned")
HOSTILE_ANSWERS = [
    ("7", "\\boxed{10**10**10}"),
    ("7", "\\boxed{10^{10^{10^{10}}}}"),
    ("7", "\\boxed{9!!!!!!!!!!!!!!!!}"),
    ("7", "\\boxed{" + "\\frac{1}{" * 10_000 + "2" + "}" * 10_000 + "}"),
    ("7", "\\boxed{" + "\\left(" * 10_000 + "x" + "\\right)" * 10_000 + "}"),
    ("7", "\\boxed{" * 10_000 + "1" + "}" * 10_000),
    ("7", "\\boxed{" + "\\sqrt{" * 10_000 + "2" + "}" * 10_000 + "}"),
    ("7", f"\\boxed{{__import__('os').system('touch {PWNED}')}}"),
    ("7", f"The answer is __import__('os').system('touch {PWNED}')"),
    ("7", "\\boxed{" + "1" * 1_000_000 + "}"),
    ("7", "1 " * 500_000),
    ("10**10**10", "\\boxed{1}"),  # gold answers come from import files: untrusted too
    ("\\frac{" * 5_000 + "1" + "}{2}" * 5_000, "\\boxed{1}"),
]


def test_answers_built_to_attack_the_verifier_are_bounded_and_never_executed() -> None:
    PWNED.unlink(missing_ok=True)
    with Verifier(timeout_s=3.0) as verifier:
        started = time.monotonic()
        verdicts = verifier.check_completions(HOSTILE_ANSWERS)
        elapsed = time.monotonic() - started
    assert not PWNED.exists(), "a model answer was executed"
    assert len(verdicts) == len(HOSTILE_ANSWERS)
    assert all(v.label in ("wrong", "unparseable", "timeout", "error") for v in verdicts), verdicts
    # every answer has its own 3 s timer in the workers; a stuck worker is replaced and its chunk re-checked
    assert elapsed < 3.0 * len(HOSTILE_ANSWERS) + 30, elapsed


@pytest.mark.parametrize("gold,text", HOSTILE_ANSWERS, ids=range(len(HOSTILE_ANSWERS)))
def test_answer_extraction_in_the_parent_process_is_bounded(gold: str, text: str) -> None:
    """`parse_answer` runs outside the worker pool's timers (e.g. to log the extracted answer): it must be fast
    on its own."""
    started = time.monotonic()
    parse_answer(text)
    assert time.monotonic() - started < 5


# --- the JSON parser ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        "prose { with { many { braces " * 400_000,  # ~12 MB
        '{"q": "' + "x" * 10_000_000 + '"}',
        "```json\n" + '{"a": [' * 3_000 + "```",
    ],
    ids=["deep-list", "deep-object", "12MB-braces", "10MB-string", "unclosed-fence"],
)
def test_the_json_parser_refuses_bombs_quickly(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(ParseError):
        extract_json(text, expect=list if text.startswith("[") else dict)
    assert time.monotonic() - started < 5


def test_module_namespace_is_not_reachable_from_parsed_json() -> None:
    """Parsed JSON is plain data: a `__class__`-style key is just a string key."""
    obj = extract_json('{"__class__": "os.system", "__import__": "os"}')
    assert isinstance(obj, dict) and not any(isinstance(v, types.ModuleType) for v in obj.values())
