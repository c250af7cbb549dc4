"""GAIN-RL's angle concentration (methods §16; Wang et al., *Angles Don't Lie: Unlocking Training-Efficient RL
Through the Model's Own Signals*, arXiv 2506.02281; code github.com/wangqinsi1/GAINRL, `data_processor.py`): how
closely the student's hidden states point the same way while it reads a problem, from one prefill pass.

Per problem: the trainer's prompt (system message + question + the prompt's suffix, the same text as grading and
training) goes through the student once; the **input** of the last decoder layer's `mlp.up_proj` gives one vector
per prompt token. After L2-normalising them, `c_intra` is the mean cosine over distinct pairs of question tokens
(the strictly lower triangle of the cosine matrix) and `c_inter` the mean cosine between question tokens and the
template tokens before the question. The score is `c_intra + 8 · c_inter`, the weighting of the released script
(the paper's exact weighting is unverified, methods §16); we use the clean sub-blocks the method describes, not
the script's row slices. Identical token states give the maximum, 1 + 8 = 9. The paper trains on high scores
first (its ordering rule: descending). Versioned as `ANGLE_SIGNAL`: change the recipe, bump the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.grading.rollouts import PROMPTS

ANGLE_SIGNAL = "gain_rl_angle_v1"
INTER_WEIGHT = 8.0  # the released script's weight of C_inter (methods §16)


@dataclass(frozen=True, slots=True)
class AngleScore:
    """One problem's angle concentration and the token counts it was measured on."""

    c_intra: float
    c_inter: float
    score: float
    prefix_tokens: int
    question_tokens: int


def angle_concentration(hidden: np.ndarray, prefix_tokens: int, question: tuple[int, int]) -> AngleScore:
    """The score of one prompt's hidden states `hidden` (tokens × features): template tokens `[0, prefix_tokens)`,
    question tokens `[question[0], question[1])`. Needs ≥ 1 template token and ≥ 2 question tokens."""
    start, end = question
    if prefix_tokens < 1 or end - start < 2 or start < prefix_tokens or end > hidden.shape[0]:
        raise ValueError(
            f"angle concentration needs >= 1 template token before >= 2 question tokens inside the "
            f"{hidden.shape[0]} prompt tokens; got template {prefix_tokens}, question [{start}, {end})"
        )
    vectors = hidden.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)  # a zero vector has cosine 0 with everything
    q, p = unit[start:end], unit[:prefix_tokens]
    below = np.tril_indices(end - start, k=-1)  # distinct pairs, each once
    c_intra = float((q @ q.T)[below].mean())
    c_inter = float((q @ p.T).mean())
    return AngleScore(
        round(c_intra, 9), round(c_inter, 9), round(c_intra + INTER_WEIGHT * c_inter, 9), prefix_tokens, end - start
    )


def prompt_spans(tokenizer: Any, question: str, prompt: str) -> tuple[list[int], int, tuple[int, int]]:
    """(token ids of the chat prompt, template tokens before the question, the question's token span) for the
    trainer's prompt `prompt` (a `rollouts.PROMPTS` key). Tokens are attributed by character offsets, so a token
    straddling the question's edge counts as question."""
    system, suffix = PROMPTS[prompt]
    user = question + suffix
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    first = text.rindex(user)
    last = first + len(question)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < last and b > first]
    if not inside:
        raise ValueError(f"question {question[:60]!r} has no tokens in its rendered prompt")
    return list(encoded["input_ids"]), inside[0], (inside[0], inside[-1] + 1)


def last_up_proj(model: Any) -> Any:
    """The last decoder layer's `mlp.up_proj`: the module whose input GAIN-RL reads."""
    found = [module for name, module in model.named_modules() if name.endswith("mlp.up_proj")]
    if not found:
        raise ValueError(f"{type(model).__name__} has no `mlp.up_proj` module to read hidden states from")
    return found[-1]


def angle_scores(
    model: Any, tokenizer: Any, problems: Sequence[tuple[str, str]], prompt: str, *, batch_size: int = 8
) -> dict[str, AngleScore]:
    """Problem id → its angle concentration under `model` (one prefill pass, no generation), for `problems` as
    (problem id, question) pairs, `batch_size` prompts at a time (right-padded: a causal model's states of real
    tokens do not see the padding after them)."""
    import torch

    spans = {pid: prompt_spans(tokenizer, question, prompt) for pid, question in problems}
    captured: list[Any] = []
    hook = last_up_proj(model).register_forward_pre_hook(lambda _module, args: captured.append(args[0].detach()))
    was_training = model.training
    model.eval()
    scores: dict[str, AngleScore] = {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    try:
        ids = [pid for pid, _ in problems]
        for lo in range(0, len(ids), batch_size):
            batch = ids[lo : lo + batch_size]
            width = max(len(spans[pid][0]) for pid in batch)
            tokens = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, pid in enumerate(batch):
                length = len(spans[pid][0])
                tokens[row, :length] = torch.tensor(spans[pid][0])
                mask[row, :length] = 1
            captured.clear()
            with torch.no_grad():
                model(input_ids=tokens, attention_mask=mask, use_cache=False)
            hidden = captured[-1].float().numpy()
            for row, pid in enumerate(batch):
                _, prefix, question = spans[pid]
                scores[pid] = angle_concentration(hidden[row, : len(spans[pid][0])], prefix, question)
    finally:
        hook.remove()
        model.train(was_training)
    return scores
