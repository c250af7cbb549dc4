"""Held-out evaluation of the policy being trained: accuracy on problems it never trained on (issue 23, item 1).

The held-out split is regenerated from the training problems' procedural families: the same families at the same
difficulty knobs, drawn with another seed (split `heldout`), plus each family's next knob above the hardest one
trained on (split `hard`), so a reader sees both "learned what it was taught" and "transfers one step up".
A candidate is dropped when it shares an id with a training problem, has the same comparable text
(`scoring.curation.dedup.exact_signature`: case, spacing and number format ignored), or is a MinHash near-duplicate
of one (char 5-grams with the numbers kept, estimated Jaccard ≥ `near_duplicate_threshold`). Numbers are kept on
purpose: two items of one family differ only in their numbers by design, and masking them would call every item of
the family a duplicate. Problems from imports have no generator to draw fresh items from, so they are not
represented; `heldout_problems` says how many training problems that leaves out.

The policy answers each held-out problem once, greedily (temperature 0), with the trainer's prompt and token
budget, so a score moves only when the policy does; our verifier checks the answer exactly as in grading (a family's
own scorer sees the full problem). Rows go to the `training_eval` table: (run, step, split, n, correct, accuracy,
tokens), step 0 being the base model before any update.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scoring.curation.dedup import exact_signature
from scoring.curation.minhash import lsh_bands, lsh_pairs, minhash_signatures
from scoring.curation.normalize import comparable_text
from scoring.grading.rollouts import PROMPTS
from scoring.grading.verify import CheckItem, Verifier
from synthesis.families import FAMILIES
from synthesis.problem import Problem

HELDOUT, HARD = "heldout", "hard"


class HeldoutConfig(BaseModel):
    """Which held-out problems the trainer measures, and how often (`trainer.heldout` in gradus.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="evaluate on held-out problems before, during and after training")
    every: int = Field(0, ge=0, description="also evaluate every N optimizer steps (0: before and after only)")
    per_knob: int = Field(4, ge=1, description="held-out problems per (family, knob) trained on")
    hard_per_family: int = Field(4, ge=0, description="problems per family at the next knob up (split `hard`)")
    seed: int = Field(1_000_003, description="family seed of the held-out draw (training pools use others)")
    near_duplicate_threshold: float = Field(
        0.9, gt=0.0, le=1.0, description="MinHash Jaccard (numbers kept) at which a candidate counts as a copy"
    )
    batch_size: int = Field(16, ge=1, description="problems decoded together")


@dataclass(frozen=True, slots=True)
class HeldoutSplit:
    """The held-out problems by split, and what the draw left out."""

    problems: dict[str, list[Problem]]
    dropped_duplicates: int  # candidates removed as an id, text or near-duplicate match of a training problem
    uncovered_training: int  # training problems outside any procedural family (imports): not represented

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.problems.values())


def heldout_problems(training: Sequence[Problem], config: HeldoutConfig) -> HeldoutSplit:
    """Fresh problems from the training problems' families and knobs (`heldout`) and one knob up (`hard`),
    disjoint from `training` by id, comparable text and near-duplicate check; the same inputs give the same split."""
    knobs: dict[str, set[int]] = {}
    uncovered = 0
    for problem in training:
        if problem.family in FAMILIES and problem.difficulty_knob is not None:
            knobs.setdefault(problem.family, set()).add(int(problem.difficulty_knob))
        else:
            uncovered += 1
    candidates: dict[str, list[Problem]] = {HELDOUT: [], HARD: []}
    for name in sorted(knobs):
        family = FAMILIES.get(name)()
        trained = sorted(knobs[name])
        candidates[HELDOUT] += family.sample(config.seed, trained, config.per_knob)
        harder = [k for k in family.difficulties if k > trained[-1]]
        if harder and config.hard_per_family:
            # another seed than the `heldout` draw, so the two splits never share an item
            candidates[HARD] += family.sample(config.seed + 1, harder[:1], config.hard_per_family)
    kept, dropped = _disjoint(candidates, training, config.near_duplicate_threshold)
    return HeldoutSplit(kept, dropped, uncovered)


def _disjoint(
    candidates: dict[str, list[Problem]], training: Sequence[Problem], threshold: float
) -> tuple[dict[str, list[Problem]], int]:
    """`candidates` without any item matching a training problem (or an earlier candidate) by id, comparable text
    or MinHash near-duplicate; returns the kept items per split and how many were dropped."""
    flat = [(split, p) for split, items in candidates.items() for p in items]
    seen_ids = {p.problem_id for p in training}
    seen_text = {exact_signature(p.question) for p in training}
    unique: list[tuple[str, Problem]] = []
    for split, problem in flat:
        signature = exact_signature(problem.question)
        if problem.problem_id in seen_ids or signature in seen_text:
            continue
        seen_ids.add(problem.problem_id)
        seen_text.add(signature)
        unique.append((split, problem))
    near = _near_training(training, [p for _, p in unique], threshold)
    kept: dict[str, list[Problem]] = {split: [] for split in candidates}
    for i, (split, problem) in enumerate(unique):
        if i not in near:
            kept[split].append(problem)
    return kept, len(flat) - sum(len(v) for v in kept.values())


def _near_training(training: Sequence[Problem], fresh: Sequence[Problem], threshold: float) -> set[int]:
    """Positions in `fresh` with a MinHash near-duplicate among `training` (training-training pairs are skipped,
    so the cost grows with the held-out draw, not with pairs inside the pool)."""
    if not fresh or not training:
        return set()
    texts = [comparable_text(p.question) for p in (*training, *fresh)]
    signatures = minhash_signatures(texts)
    skip = np.zeros(len(texts), dtype=bool)
    skip[: len(training)] = True
    pairs = lsh_pairs(signatures, threshold=threshold, bands=lsh_bands(threshold, 128, 0.9), skip=skip)
    n = len(training)
    hits = set()
    for left, right in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        if (left < n) != (right < n):  # one side from training, the other fresh
            hits.add(max(left, right) - n)
    return hits


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    split: HeldoutSplit,
    *,
    verifier: Verifier,
    prompt: str,
    max_tokens: int,
    batch_size: int = 16,
    prompts: Mapping[str, tuple[str, str]] = PROMPTS,
) -> list[dict[str, Any]]:
    """One row per split: n, correct, accuracy, mean completion tokens and seconds, from greedy answers of
    `model` (an HF causal LM, LoRA-wrapped or not) checked by `verifier`. The model is left in the mode it was in.
    `prompt` is a key of `prompts` (grading's rollout prompts by default; an SFT check passes the trace prompts)."""
    rows = []
    for name, problems in split.problems.items():
        if not problems:
            continue
        started = time.perf_counter()
        texts, lengths = generate_answers(model, tokenizer, problems, prompt, max_tokens, batch_size, prompts=prompts)
        items = [CheckItem(p.answer, text, p) for p, text in zip(problems, texts, strict=True)]
        correct = sum(v.label == "correct" for v in verifier.check(items))
        rows.append(
            {
                "split": name,
                "n": len(problems),
                "correct": correct,
                "accuracy": correct / len(problems),
                "tokens": round(sum(lengths) / len(lengths), 3),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return rows


def sample_policy_answers(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    *,
    verifier: Verifier,
    prompt: str,
    max_tokens: int,
    samples: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """`samples` sampled answers of the current policy per problem, each checked by our verifier: one row per answer
    (`problem_id`, `sample_index` within this call, `completion`, `extracted_answer`, `verdict`, `verdict_reason`,
    `verifier_version`, `verifier_rule`, `completion_tokens`). ADCL's re-estimation (methods §12) grades from these
    and the trainer keeps them as evidence. The torch random state is restored afterwards, so training draws the
    same samples as without it."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        repeated = [p for p in problems for _ in range(samples)]
        texts, lengths = generate_answers(
            model, tokenizer, repeated, prompt, max_tokens, batch_size, temperature=temperature, top_p=top_p
        )
    verdicts = verifier.check([CheckItem(p.answer, text, p) for p, text in zip(repeated, texts, strict=True)])
    return [
        {
            "problem_id": problem.problem_id,
            "sample_index": i % samples,
            "completion": text,
            "extracted_answer": verdict.extracted,
            "verdict": verdict.label,
            "verdict_reason": verdict.reason,
            "verifier_version": verifier.version,
            "verifier_rule": verdict.rule,
            "completion_tokens": length,
        }
        for i, (problem, text, length, verdict) in enumerate(zip(repeated, texts, lengths, verdicts, strict=True))
    ]


def pass_rates(answers: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each problem's share of `correct` verdicts among its answers (rows of `sample_policy_answers`)."""
    seen: dict[str, list[bool]] = {}
    for row in answers:
        seen.setdefault(row["problem_id"], []).append(row["verdict"] == "correct")
    return {pid: sum(v) / len(v) for pid, v in seen.items()}


def estimate_pass_rates(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    *,
    verifier: Verifier,
    prompt: str,
    max_tokens: int,
    samples: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int = 16,
) -> dict[str, float]:
    """Each problem's pass rate over `samples` sampled answers of the current policy (`sample_policy_answers`)."""
    answers = sample_policy_answers(
        model,
        tokenizer,
        problems,
        verifier=verifier,
        prompt=prompt,
        max_tokens=max_tokens,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
    )
    return pass_rates(answers)


def generate_answers(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    prompt: str,
    max_tokens: int,
    batch_size: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    prompts: Mapping[str, tuple[str, str]] = PROMPTS,
) -> tuple[list[str], list[int]]:
    """Completions (text, generated token count) for `problems` with the rollout prompt `prompt`, decoded in
    left-padded batches: greedy at temperature 0, else sampled (nucleus `top_p`). The model is put in eval mode
    for the call and restored after."""
    import torch

    system, suffix = prompts[prompt]
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": p.question + suffix}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for p in problems
    ]
    # as the trainer samples: temperature and top_p, no top-k cut (transformers would default to top-50)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
    was_training = model.training
    model.eval()
    texts: list[str] = []
    lengths: list[int] = []
    try:
        for lo in range(0, len(chats), batch_size):
            batch = tokenizer(chats[lo : lo + batch_size], return_tensors="pt", padding=True, padding_side="left")
            with torch.no_grad():
                out = model.generate(
                    **batch, max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
                )
            new = out[:, batch["input_ids"].shape[1] :]
            for row in new:
                ids = [t for t in row.tolist() if t != tokenizer.pad_token_id]
                texts.append(tokenizer.decode(ids, skip_special_tokens=True))
                lengths.append(len(ids))
    finally:
        model.train(was_training)
    return texts, lengths


class HeldoutEvaluator:
    """Runs `evaluate_policy` before training (step 0), every `config.every` steps and after the last step, and
    keeps the rows (step added). `callback()` is the `TrainerCallback` a Hugging Face trainer calls."""

    def __init__(
        self, split: HeldoutSplit, config: HeldoutConfig, *, verifier: Verifier, prompt: str, max_tokens: int
    ) -> None:
        self.split, self.config, self.verifier = split, config, verifier
        self.prompt, self.max_tokens = prompt, max_tokens
        self.rows: list[dict[str, Any]] = []

    def evaluate(self, model: Any, tokenizer: Any, step: int) -> None:
        """Evaluate the policy as it is after `step` updates (once per step, however often it is asked)."""
        if any(r["step"] == step for r in self.rows):
            return
        found = evaluate_policy(
            model,
            tokenizer,
            self.split,
            verifier=self.verifier,
            prompt=self.prompt,
            max_tokens=self.max_tokens,
            batch_size=self.config.batch_size,
        )
        self.rows += [{"step": step, **row} for row in found]

    def callback(self) -> Any:
        from transformers import TrainerCallback

        evaluator = self

        class HeldoutCallback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                evaluator.evaluate(kwargs["model"], kwargs["processing_class"], 0)

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                every, step = evaluator.config.every, int(state.global_step)
                if (every and step % every == 0) or step >= state.max_steps:
                    evaluator.evaluate(kwargs["model"], kwargs["processing_class"], step)

        return HeldoutCallback()
