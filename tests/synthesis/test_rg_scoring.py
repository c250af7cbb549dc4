"""reasoning-gym scorers never see model text when they could evaluate it.

The audit reads the installed package's scorers; the review table says which datasets are allowed; these tests
tie the two together over the whole installed registry (so an upgrade that makes a scorer evaluate text fails
here), check that the audit finds what it must on classes built to hide an evaluator, and send payloads that
write a marker file through every allowed scorer, with a problem attached, in a process whose hash seed differs
from the one that generated the problems (as the verifier's worker processes do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import sympy
from reasoning_gym.factory import DATASETS

from engines.errors import ConfigError
from synthesis.problem import Problem
from synthesis.reasoning_gym_source import rg_problems, rg_score
from synthesis.rg_scorer_audit import audit_scorer
from synthesis.rg_scoring import NATIVE, REFUSED, RefusedDataset, check_scorer, scorer_problem
from tests.conftest import digitless_marker, payloads

REPO = Path(__file__).resolve().parents[2]
# The datasets found evaluating the answer when this was first reviewed (issue 20): they must stay refused.
KNOWN_EVALUATING = {
    "spiral_matrix",
    "n_queens",
    "string_insertion",
    "binary_matrix",
    "countdown",
    "puzzle24",
    "simple_integration",
    "polynomial_multiplication",
}


# --- the review table against the installed registry ----------------------------------------------------------------


def test_every_installed_dataset_is_reviewed_or_refused() -> None:
    assert not NATIVE & set(REFUSED)
    unreviewed = sorted(set(DATASETS) - NATIVE - set(REFUSED))
    for name in unreviewed:  # a dataset new in an upgrade is refused until someone reads its scorer
        assert scorer_problem(name) is not None and "not been reviewed" in scorer_problem(name)
    assert set(REFUSED) >= KNOWN_EVALUATING


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_no_dataset_whose_scorer_evaluates_text_is_allowed(name: str) -> None:
    """The audit of the installed scorer: any finding means the dataset must be refused (and is, at run time)."""
    findings = audit_scorer(DATASETS[name][0])
    if findings:
        assert name not in NATIVE, f"{name} is allowed but its scorer reaches: {[str(f) for f in findings]}"
        assert scorer_problem(name) is not None
        with pytest.raises(RefusedDataset, match=name):
            check_scorer(name)
    if name in NATIVE:
        assert findings == [] and scorer_problem(name) is None


def test_the_eight_known_evaluators_are_found_by_the_audit_itself() -> None:
    for name in KNOWN_EVALUATING:
        findings = audit_scorer(DATASETS[name][0])
        assert any("eval" in f.what or "sympy" in f.what for f in findings), name


def test_refused_dataset_is_a_config_error_naming_it_and_why() -> None:
    with pytest.raises(ConfigError, match=r"'countdown' is refused: its scorer passes the answer to sympy"):
        rg_problems("countdown", size=1, seed=0)
    with pytest.raises(ConfigError, match=r"'spiral_matrix' is refused: its scorer calls eval\(\)"):
        rg_problems("spiral_matrix", size=1, seed=0)


def test_a_stored_problem_of_a_refused_dataset_is_never_scored_by_its_scorer(tmp_path: Path) -> None:
    """A data root written before the refusal may hold such problems: they get an error verdict, no call."""
    stored = rg_problems("gcd", size=1, seed=0)[0]
    metadata = json.loads(stored.metadata)
    metadata["gradus_rg"]["dataset"] = "spiral_matrix"
    problem = Problem(**{**asdict(stored), "family": "rg:spiral_matrix", "metadata": json.dumps(metadata)})
    marker = digitless_marker()
    for payload in payloads(marker):
        verdict = rg_score(problem, payload)
        assert verdict.label == "error" and "is not scored" in verdict.reason
    assert not marker.exists()


# --- the audit finds evaluators however they are reached ------------------------------------------------------------


def _helper_that_evals(text: str) -> object:
    return eval(text)  # noqa: S307 — the construct the audit must find


class _Direct:
    def score_answer(self, answer: str, entry: dict) -> float:
        return float(eval(answer) == entry["answer"])  # noqa: S307


class _ThroughHelper:
    def score_answer(self, answer: str, entry: dict) -> float:
        return float(self._parse(answer) == entry["answer"])

    def _parse(self, answer: str) -> object:
        return _helper_that_evals(answer)


class _ThroughSympyAlias:
    def score_answer(self, answer: str, entry: dict) -> float:
        return float(sympy.simplify(answer) == 0)


class _ThroughLocalImport:
    def score_answer(self, answer: str, entry: dict) -> float:
        from sympy.parsing.sympy_parser import parse_expr

        return float(parse_expr(answer) == 0)


class _Engine:
    def check(self, answer: str) -> bool:
        return bool(_helper_that_evals(answer))


class _ThroughInstanceAttribute:
    def __init__(self) -> None:
        self._engine = _Engine

    def score_answer(self, answer: str, entry: dict) -> float:
        return float(self._engine().check(answer))


class _Inherited(_ThroughHelper):
    pass


class _Safe:
    def score_answer(self, answer: str, entry: dict) -> float:
        return float(json.loads(answer) == entry["answer"])


@pytest.mark.parametrize(
    "cls,found",
    [
        (_Direct, "calls eval()"),
        (_ThroughHelper, "calls eval()"),
        (_ThroughSympyAlias, "uses module sympy"),
        (_ThroughLocalImport, "imports sympy.parsing.sympy_parser"),
        (_ThroughInstanceAttribute, "calls eval()"),
        (_Inherited, "calls eval()"),
    ],
)
def test_audit_finds_hidden_evaluators(cls: type, found: str) -> None:
    findings = audit_scorer(cls, package="tests")
    assert any(found in f.what for f in findings), findings


def test_audit_passes_a_scorer_that_only_parses_json() -> None:
    assert audit_scorer(_Safe, package="tests") == []


# --- payloads through every allowed scorer, in another process ------------------------------------------------------

_SCORE_ELSEWHERE = """
import json, sys
from synthesis.problem import Problem
from synthesis.reasoning_gym_source import rg_score
jobs = json.load(open(sys.argv[1]))
out = [[rg_score(Problem(**p), a).label, rg_score(Problem(**p), a).reason] for p, a in jobs]
json.dump(out, open(sys.argv[2], "w"))
"""

_GENERATE = """
import json, sys
from dataclasses import asdict
from synthesis.reasoning_gym_source import rg_problems
from synthesis.rg_scoring import NATIVE
from engines.errors import ConfigError
problems, skipped = [], {}
for name in sorted(NATIVE):
    try:
        problems += [asdict(p) for p in rg_problems(name, size=2, seed=0)]
    except ConfigError as exc:
        skipped[name] = str(exc)
json.dump({"problems": problems, "skipped": skipped}, open(sys.argv[1], "w"))
"""


def _run(script: str, *args: str, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script, *args], check=True, env=env, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def allowed_problems(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("rg") / "problems.json"
    _run(_GENERATE, str(path), hash_seed="1")
    return json.loads(path.read_text())


def test_every_allowed_dataset_generates_or_says_why(allowed_problems: dict) -> None:
    generated = {p["family"].removeprefix("rg:") for p in allowed_problems["problems"]}
    assert generated | set(allowed_problems["skipped"]) == NATIVE
    assert len(generated) >= 80
    for name, reason in allowed_problems["skipped"].items():  # validity-only scorers have no gold answer
        assert "has no reference answer" in reason, (name, reason)


def test_rebuilt_items_equal_the_stored_ones_in_another_process(allowed_problems: dict, tmp_path: Path) -> None:
    """Scoring rebuilds each item in a worker whose hash seed differs: the reference answer must score correct
    (a rebuilt item that differs would be an `error` verdict)."""
    jobs = [(p, p["answer"]) for p in allowed_problems["problems"]]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    _run(_SCORE_ELSEWHERE, str(tmp_path / "jobs.json"), str(tmp_path / "out.json"), hash_seed="2")
    labels = json.loads((tmp_path / "out.json").read_text())
    differs = [(p["family"], reason) for (p, _), (label, reason) in zip(jobs, labels, strict=True) if label == "error"]
    assert differs == []
    wrong = [(p["family"], reason) for (p, _), (label, reason) in zip(jobs, labels, strict=True) if label != "correct"]
    assert wrong == []


def test_payloads_through_every_allowed_scorer_never_run(allowed_problems: dict, tmp_path: Path) -> None:
    marker = digitless_marker()
    jobs = [(p, payload) for p in allowed_problems["problems"][::2] for payload in payloads(marker)]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    _run(_SCORE_ELSEWHERE, str(tmp_path / "jobs.json"), str(tmp_path / "out.json"), hash_seed="3")
    labels = json.loads((tmp_path / "out.json").read_text())
    assert not marker.exists()
    bad = [(p["family"], a[:40], label, r) for (p, a), (label, r) in zip(jobs, labels, strict=True) if label == "error"]
    assert bad == []
    assert {label for label, _ in labels} <= {"wrong", "unparseable"}
