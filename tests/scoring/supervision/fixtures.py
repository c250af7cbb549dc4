"""A small graded pool for the supervision tests: four problems, the student's rollouts and difficulty rows
(written for the config's student revision, sampling config and verifier), and the traces a scripted teacher
writes for them."""

from __future__ import annotations

from scoring.config import ProjectConfig
from scoring.grading.rollouts import sampling_hash
from scoring.grading.verify import VERIFIER_VERSION
from scoring.schemas import DIFFICULTY, PROBLEMS, ROLLOUTS, to_table
from scoring.storage import DataRoot
from synthesis.problem import Problem

# question -> (gold, the teacher's three traces; None is a failed engine call)
TEACHER = {
    "Compute 12 * 7.": ("84", ["12 * 7 = 84\n\\boxed{84}", "12 * 7 = 86\n\\boxed{86}", "12 * 7 = 84\nSo \\boxed{84}"]),
    "Compute 84 + 6.": ("90", ["84 + 6 = 91\n\\boxed{91}", "84 + 6 = 90\n\\boxed{90}", "The sum is \\boxed{90}"]),
    "Compute 15 * 4 - 5.": (
        "55",
        [
            "15 * 4 = 60\n60 - 5 = 55\n\\boxed{55}",
            "15 * 4 = 60\n60 - 5 = 54\n\\boxed{54}",
            "15 * 4 = 65\n65 - 5 = 60\n\\boxed{60}",
        ],
    ),
    "Compute 9 * 9.": ("81", ["9 * 9 = 81\n\\boxed{81}", "9 * 9 = 81\nSo \\boxed{81}", None]),
}
# question -> the student's rollouts as (completion, verdict)
STUDENT = {
    "Compute 12 * 7.": [("\\boxed{80}", "wrong"), ("\\boxed{74}", "wrong")],
    "Compute 84 + 6.": [
        ("\\boxed{90}", "correct"),
        ("\\boxed{96}", "wrong"),
        ("\\boxed{80}", "wrong"),
        ("I am not sure.", "unparseable"),
    ],
    "Compute 15 * 4 - 5.": [("\\boxed{55}", "correct"), ("\\boxed{55}", "correct"), ("\\boxed{65}", "wrong")],
    "Compute 9 * 9.": [("\\boxed{81}", "correct"), ("\\boxed{81}", "correct")],
}


def teacher_script(question: str, index: int) -> str | None:
    """The scripted teacher: trace `index` of `question` (None: a failed call)."""
    return TEACHER[question][1][index]


def problems() -> dict[str, Problem]:
    """The four problems by question."""
    return {
        q: Problem.create(source="t", family="t", question=q, answer=gold, source_ref=f"t:{i}")
        for i, (q, (gold, _)) in enumerate(TEACHER.items())
    }


def seed_tables(root: DataRoot, config: ProjectConfig, revision: str = "student-r1") -> None:
    """The pool, the student's rollouts and its difficulty rows (revision `revision`, the config's sampling)."""
    pool = problems()
    root.write_table(
        "problems", to_table([{n: getattr(p, n) for n in PROBLEMS.names} for p in pool.values()], PROBLEMS)
    )
    student = config.student.id
    rollouts, grades = [], []
    key = {"student_id": student, "student_revision": revision, "sampling_hash": sampling_hash(config.rollouts)}
    for question, samples in STUDENT.items():
        pid = pool[question].problem_id
        for index, (text, verdict) in enumerate(samples):
            sample = {"problem_id": pid, "sample_index": index, "completion": text, "verdict": verdict}
            checked = {"verdict_reason": f"scripted {verdict}", "verifier_version": VERIFIER_VERSION}
            rollouts.append({**key, **sample, **checked, "finish_reason": "stop"})
        n, k = len(samples), sum(v == "correct" for _, v in samples)
        stats = {"n": n, "k": k, "pass_rate": k / n, "post_mean": (k + 1) / (n + 2)}
        grades.append({**key, "problem_id": pid, "verifier_version": VERIFIER_VERSION, **stats})
    root.write_table("rollouts", to_table(rollouts, ROLLOUTS), {"student": student})
    root.write_table("difficulty", to_table(grades, DIFFICULTY), {"student": student})
