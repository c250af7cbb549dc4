"""Turn recorded student completions into the verifier's regression table: both checkers' verdicts, the split,
and the expected verdict — agreed, or adjudicated by hand where the two checkers disagree.

    python bench/label_verifier_cases.py [--recordings bench/recordings/verifier_completions*.jsonl]
        [--out tests/fixtures/verifier/recorded_student_completions.jsonl] [--workers 2]

For each recorded completion (`bench/record_verifier_cases.py`: sampled for this table, or taken from the
`rollouts` of `gradus run` data roots) it runs Gradus's `Verifier.check` and math-verify alone
(`bench/verifier_agreement.py: math_verify_alone`, default extraction on the full text). Where both give the same
binary verdict (correct vs anything else), that is the expected verdict (`how: agreed`). Where they differ,
the case stays `how: todo` until a person reads the completion and the gold answer and writes `expected`,
`how: hand` and a one-line `reason` into the table; a rerun keeps every hand-written field (`hand`,
`spot_checked`), so adjudications survive re-labelling. The split is fixed by the case id alone —
`held_out` when the first byte of sha256(id) is odd, else `tuning` — so it was settled before anyone looked at
a verdict, and the verifier may be fixed on the tuning part only.

The columns `gradus_at_labelling` and `math_verify_alone` keep what the two checkers said when the table was
made (the verifier version is in `labelled_with`), so the figure before any fix stays on record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verifier_agreement import math_verify_alone  # noqa: E402

from scoring.grading.verify import VERIFIER_VERSION, CheckItem, Verifier, VerifyConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO / "bench" / "recordings"
DEFAULT_RECORDINGS = [RECORDINGS / "verifier_completions.jsonl", RECORDINGS / "verifier_completions_from_runs.jsonl"]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "verifier" / "recorded_student_completions.jsonl"
HAND_FIELDS = ("expected", "how", "reason")


def split_of(case_id: str) -> str:
    """`held_out` or `tuning`, from the case id alone (about half each)."""
    return "held_out" if hashlib.sha256(case_id.encode()).digest()[0] % 2 else "tuning"


_INTEGER = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?\d*\.\d+$")
_FRACTION = re.compile(r"^-?\\[dt]?frac\{-?\d+\}\{\d+\}$|^-?\d+/\d+$")
_WORD = re.compile(r"[A-Za-z]{3,}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


def gold_shape(gold: str) -> str:
    """The category of a case: the form of its gold answer."""
    text = gold.strip().replace("\\!", "").replace(" ", "")
    if _INTEGER.match(text.replace(",", "")):
        return "integer"
    if _DECIMAL.match(text):
        return "decimal"
    if _FRACTION.match(text):
        return "fraction"
    if "matrix" in text:
        return "matrix"
    if "\\text" in text or _WORD.search(_LATEX_COMMAND.sub("", text)):
        return "text_or_unit"
    if "," in text or text[:1] in "([" or "\\cup" in text or "\\{" in text:
        return "tuple_interval_set"
    return "expression"


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def label(recordings: list[dict], previous: dict[str, dict], workers: int, timeout_s: float) -> list[dict]:
    with Verifier(VerifyConfig(timeout_s=timeout_s, workers=workers)) as verifier:
        verdicts = verifier.check([CheckItem(r["gold"], r["completion"]) for r in recordings])
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        alone = pool.map(math_verify_alone, [(r["gold"], r["completion"], timeout_s) for r in recordings])
    cases = []
    for record, verdict, alone_correct in zip(recordings, verdicts, alone, strict=True):
        case = {
            "id": record["id"],
            "split": split_of(record["id"]),
            "category": gold_shape(record["gold"]),
            **{k: record[k] for k in ("source", "citation", "original_id", "student", "student_revision")},
            "gold": record["gold"],
            "completion": record["completion"],
            "finish_reason": record["finish_reason"],
            "labelled_with": VERIFIER_VERSION,
            "gradus_at_labelling": verdict.label,
            "gradus_reason_at_labelling": verdict.reason[:300],
            "math_verify_alone": "correct" if alone_correct else "not_correct",
        }
        old = previous.get(record["id"])
        if old is not None and old.get("how") in ("hand", "spot_checked"):
            case.update({k: old[k] for k in HAND_FIELDS})
        elif verdict.is_correct == alone_correct:
            case.update(expected="correct" if alone_correct else "wrong", how="agreed", reason="")
        else:
            case.update(expected=None, how="todo", reason="")
        cases.append(case)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=Path, nargs="+", default=DEFAULT_RECORDINGS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    previous = {case["id"]: case for case in _load(args.out)}
    # a failed model call has no completion to judge (the engine's cache keeps no failure, so a rerun retries it)
    recordings = [r for path in args.recordings for r in _load(path) if r["finish_reason"] != "error"]
    cases = label(recordings, previous, args.workers, args.timeout)
    tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases))
    tmp.replace(args.out)
    todo = [case for case in cases if case["how"] == "todo"]
    print(f"{len(cases)} cases -> {args.out}; {len(todo)} disagreements to adjudicate by hand")
    for case in todo:
        tail = case["completion"][-160:].replace("\n", "\\n")
        print(f"- {case['id']} gold {case['gold']!r} gradus {case['gradus_at_labelling']} "
              f"alone {case['math_verify_alone']}: …{tail}")  # fmt: skip


if __name__ == "__main__":
    main()
