"""GAIN-RL's angle signal (issue 26, item 2; methods §16): the score's expected property on constructed states, its
determinism through a real (tiny, randomly initialised) transformers model, the cache that makes a rerun compute
nothing, and the `gain_rl` strategy ordering by it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from scoring.catalog import memory_catalog
from scoring.curriculum.strategies import CurriculumConfig, plan_curriculum
from scoring.grading.rollouts import PROMPTS
from scoring.stages.angles import cached_angle_signals
from scoring.storage import DataRoot
from scoring.training.angles import INTER_WEIGHT, angle_concentration, angle_scores, prompt_spans
from scoring.training.student import load_student
from tests.scoring.conftest import graded_pool

QUESTIONS = {
    "p1": "What is 3 plus 4 ?",
    "p2": "Tom has 12 apples and gives 5 away . How many apples does Tom have now ?",
    "p3": "Compute 7 times 8 minus 6 .",
}


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights (seeded) and a word-level tokenizer with a chat template, saved as an
    HF model directory the trainer's loader reads: the real transformers code path, in a fraction of a second."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-student")
    texts = [*QUESTIONS.values(), *(part for pair in PROMPTS.values() for part in pair), "system user assistant"]
    words = sorted({w for text in texts for w in pre_tokenizers.Whitespace().pre_tokenize_str(text)} - {""})
    vocab = {"[UNK]": 0, "[PAD]": 1} | {w: i + 2 for i, w in enumerate(sorted({w for w, _ in words}))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", eos_token="[PAD]")
    fast.chat_template = (
        "{% for m in messages %}< {{ m['role'] }} > {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}< assistant >{% endif %}"
    )
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
    )
    LlamaForCausalLM(config).save_pretrained(str(path))
    return path


def test_identical_token_states_give_the_maximal_concentration() -> None:
    same = np.tile(np.array([[0.3, -1.2, 2.0, 0.5]]), (10, 1))
    top = angle_concentration(same, 4, (4, 10))
    assert (top.c_intra, top.c_inter) == (1.0, 1.0) and top.score == 1.0 + INTER_WEIGHT
    # the same direction at any length still counts as concentrated: cosines, not dot products
    scaled = same * np.arange(1, 11)[:, None]
    assert angle_concentration(scaled, 4, (4, 10)).score == pytest.approx(top.score)
    spread = np.random.default_rng(0).standard_normal((10, 256))
    low = angle_concentration(spread, 4, (4, 10))
    assert abs(low.c_intra) < 0.2 and abs(low.c_inter) < 0.2 and low.score < top.score / 3
    orthogonal = np.eye(10)
    assert angle_concentration(orthogonal, 4, (4, 10)).score == 0.0
    # question states aligned with each other but orthogonal to the template: only C_intra
    split = np.vstack([np.tile([1.0, 0.0], (4, 1)), np.tile([0.0, 1.0], (6, 1))])
    assert (angle_concentration(split, 4, (4, 10)).c_intra, angle_concentration(split, 4, (4, 10)).c_inter) == (
        1.0,
        0.0,
    )


def test_a_span_without_template_or_question_pairs_is_refused() -> None:
    with pytest.raises(ValueError, match="question \\[4, 5\\)"):
        angle_concentration(np.ones((6, 3)), 4, (4, 5))
    with pytest.raises(ValueError, match="template 0"):
        angle_concentration(np.ones((6, 3)), 0, (0, 6))


def test_the_question_span_holds_exactly_the_question_tokens(tiny_student: Path) -> None:
    _, tokenizer, _ = load_student(str(tiny_student), tiny_student)
    ids, prefix, (start, end) = prompt_spans(tokenizer, QUESTIONS["p2"], "answer_only_v1")
    assert tokenizer.decode(ids[start:end]) == QUESTIONS["p2"]
    assert prefix == start > 0 and end < len(ids), "template tokens before, the prompt's suffix after"


def test_scores_are_deterministic_and_do_not_depend_on_the_batch(tiny_student: Path) -> None:
    lm, tokenizer, _ = load_student(str(tiny_student), tiny_student)
    problems = list(QUESTIONS.items())
    together = angle_scores(lm, tokenizer, problems, "answer_only_v1", batch_size=3)
    again = angle_scores(lm, tokenizer, problems, "answer_only_v1", batch_size=3)
    alone = angle_scores(lm, tokenizer, problems, "answer_only_v1", batch_size=1)
    assert together == again, "the same model and prompts give the same scores"
    for pid in QUESTIONS:
        assert together[pid].score == pytest.approx(alone[pid].score, abs=1e-5), "padding does not leak in"
    assert len({round(s.score, 6) for s in together.values()}) == 3, "different questions, different scores"
    lm.train()
    angle_scores(lm, tokenizer, problems[:1], "answer_only_v1")
    assert lm.training, "a model being trained is put back in training mode"


def test_stored_scores_are_reused_and_only_new_problems_are_computed(tiny_student: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    model = str(tiny_student)
    first = cached_angle_signals(root, list(QUESTIONS.items())[:2], model=model, prompt="answer_only_v1")
    assert first.computed == 2 and set(first.scores) == {"p1", "p2"}
    again = cached_angle_signals(root, list(QUESTIONS.items())[:2], model=model, prompt="answer_only_v1")
    assert again.computed == 0 and again.scores == first.scores, "a rerun computes nothing"
    grown = cached_angle_signals(root, list(QUESTIONS.items()), model=model, prompt="answer_only_v1")
    assert grown.computed == 1 and {k: grown.scores[k] for k in first.scores} == first.scores
    other_prompt = cached_angle_signals(root, list(QUESTIONS.items())[:1], model=model, prompt="solve_boxed_v1")
    assert other_prompt.computed == 1, "another prompt is another signal"

    con, views = memory_catalog(root)
    assert "angle_signals" in views
    stored = con.execute(
        "select prompt, count(*), count(distinct problem_id), min(signal_version) from angle_signals group by prompt "
        "order by prompt"
    ).fetchall()
    assert stored == [("answer_only_v1", 3, 3, "gain_rl_angle_v1"), ("solve_boxed_v1", 1, 1, "gain_rl_angle_v1")]


def test_gain_rl_orders_by_the_angle_score_highest_first_and_keeps_signal_free_problems() -> None:
    problems, grades = graded_pool({"a": 0, "b": 2, "c": 4, "d": 1, "e": 3})  # a never solved, c always
    signals = {"a": 5.0, "b": 1.5, "c": 7.25, "d": 1.5}  # e has no score
    plan = plan_curriculum(
        problems, grades, student_id="s", config=CurriculumConfig(strategy="gain_rl"), signals=signals
    )
    assert plan.ordered.column("problem_id").to_pylist() == ["c", "a", "b", "d"], "descending score, ties by id"
    assert "angle_score" not in plan.ordered.column_names
    excluded = {r["problem_id"]: r["reason"] for r in plan.excluded.to_pylist()}
    assert list(excluded) == ["e"] and excluded["e"].startswith("no_angle_signal")
    reversed_signals = {pid: -score for pid, score in signals.items()}
    flipped = plan_curriculum(
        problems, grades, student_id="s", config=CurriculumConfig(strategy="gain_rl"), signals=reversed_signals
    )
    assert flipped.ordered.column("problem_id").to_pylist() == ["b", "d", "a", "c"], "the order follows the signal"
    assert pc.sum(plan.ordered.column("position")).as_py() == 6
