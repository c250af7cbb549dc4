"""Batched decoding on llama.cpp's low-level API: many sequences advance one token per `llama_decode`.

On a CPU, decoding one sequence is bound by memory bandwidth: every token reads every weight once. Decoding B
sequences in one batch reads each weight once for all of them, so tokens/s grows almost B-fold until the cores,
not the memory bus, are the limit (issue 22 measured 3.5x at 16 sequences on 2 cores for the 1.5B student).

How a group of calls is decoded (`BatchDecoder.run`):
- Calls with the same prompt (the K samples of one request) share one prompt evaluation. The prompt minus its
  last token is decoded once into a *prompt sequence*; each sample copies that KV (`llama_memory_seq_cp`, which
  in a unified KV cache shares the cells instead of copying them) and feeds the last prompt token itself, so its
  first token is sampled from logits of its own batch row.
- Continuous batching: up to `parallel` samples are live; a finished one is replaced by the next waiting sample
  in call order. Admission reserves KV cells for the whole sample (prompt + max_tokens), so a decode never runs
  out of cells mid-way.
- Sampling is llama.cpp's own sampler chain, one chain per sample, seeded with the call's `sample_seed`, in the
  order llama-cpp-python's `create_completion` uses (top-k 40, top-p, min-p 0.05, temperature, seeded draw;
  greedy at temperature 0). Stop strings are matched on the decoded text; an end-of-generation token stops too.

Everything about a group's schedule follows from its calls alone (no clocks, no thread timing), so the same
group decodes to the same texts run after run. Floating-point results can depend on which sequences share a
batch, which is why the engine hands a backend the same groups on every run (`EmbeddedBackend.batch_plan`).
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.base import Completion, SamplingParams


def settle_openmp_threads() -> bool:
    """Make llama.cpp's OpenMP threads sleep, not spin, while they wait for each other (`OMP_WAIT_POLICY=PASSIVE`),
    unless the user chose a policy; True when it set the variable. A spinning thread burns the time slice that
    the thread it waits for needs when another process holds a core (issue 22 saw rollouts 5-7x slower then).
    libgomp reads the variable once, when it loads, so it must be set before llama_cpp is imported."""
    if any(key in os.environ for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


_SET_POLICY = settle_openmp_threads()
import llama_cpp as ll  # noqa: E402  (after the wait policy is set: libgomp reads it when llama.cpp loads it)

if _SET_POLICY:  # read by now; taken back so torch's own OpenMP and child processes keep their defaults
    del os.environ["OMP_WAIT_POLICY"]

TOP_K = 40  # llama-cpp-python's create_completion defaults, kept so texts keep their character
MIN_P = 0.05


@dataclass(slots=True)
class PreparedCall:
    """One call ready to decode: its prompt tokens, sampling, seed and the stop strings to end it at."""

    prompt: list[int]
    sampling: SamplingParams
    seed: int
    stop: tuple[str, ...]
    error: str | None = None  # set when the call cannot run (prompt too long); decoded as an error completion


@dataclass(slots=True)
class _Prompt:
    tokens: list[int]
    seq_id: int = -1  # the prompt sequence holding its KV, -1 when not resident
    pending: int = 0  # samples of this prompt not yet finished


@dataclass(slots=True)
class _Live:
    position: int  # index of the call in the group
    prompt: _Prompt
    seq_id: int
    sampler: Any
    max_tokens: int
    stop: tuple[str, ...]
    next_token: int
    n_past: int
    started: float
    pieces: bytearray = field(default_factory=bytearray)
    generated: int = 0


@dataclass(frozen=True, slots=True)
class DecodeTimes:
    """Where a group's time went, in seconds: prompt evaluation, batched decode steps, sampling + detokenizing."""

    prompt_s: float = 0.0
    decode_s: float = 0.0
    sample_s: float = 0.0
    steps: int = 0
    tokens: int = 0


class BatchDecoder:
    """A llama.cpp context of its own over a loaded model, decoding groups of calls in batches."""

    def __init__(self, model: Any, *, parallel: int, n_ctx: int, n_threads: int, n_batch: int = 512) -> None:
        self.parallel = parallel
        self.n_ctx_seq = n_ctx  # the context window one sequence may use, as configured
        # Shared KV cells: room for `parallel` samples of ~512 tokens besides one full window; admission keeps
        # within them, so longer samples just run fewer at a time.
        self.n_cells = n_ctx + parallel * 512
        params = ll.llama_context_default_params()
        params.n_ctx = self.n_cells
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = 2 * parallel  # sample sequences + prompt sequences
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = True  # prompt cells are shared by every sample of a request, not copied
        self._model = model
        self._ctx = ll.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {self.n_cells} cells")
        self._memory = ll.llama_get_memory(self._ctx)
        self._vocab = ll.llama_model_get_vocab(model)
        self._n_batch = n_batch
        self._batch = ll.llama_batch_init(max(n_batch, parallel), 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self.times = DecodeTimes()

    def reset(self) -> None:
        """Forget every sequence (after a failed decode, before the next group)."""
        ll.llama_memory_clear(self._memory, True)

    def close(self) -> None:
        if self._ctx:
            ll.llama_batch_free(self._batch)
            ll.llama_free(self._ctx)
            self._ctx = None

    def run(self, calls: Sequence[PreparedCall]) -> Iterator[tuple[int, Completion]]:
        """Decode `calls` together; yield `(position, completion)` as each sample finishes."""
        ll.llama_memory_clear(self._memory, True)  # a group starts from an empty cache: same cells every run
        prompts: dict[tuple[int, ...], _Prompt] = {}
        order: dict[tuple[int, ...], list[int]] = {}
        for position, call in enumerate(calls):
            if call.error is not None:
                yield position, Completion(text="", finish_reason="error", error=call.error)
                continue
            prompt = prompts.setdefault(tuple(call.prompt), _Prompt(call.prompt))
            prompt.pending += 1
            order.setdefault(tuple(call.prompt), []).append(position)
        # Samples of one prompt wait together, so a resident prompt always has a live or the next waiting sample.
        waiting = deque(position for positions in order.values() for position in positions)
        live: list[_Live] = []
        free_samples = list(range(self.parallel - 1, -1, -1))
        free_prompts = list(range(2 * self.parallel - 1, self.parallel - 1, -1))
        while waiting or live:
            while waiting and free_samples:
                call = calls[waiting[0]]
                prompt = prompts[tuple(call.prompt)]
                if not self._fits(call, prompt, live, prompts) or (prompt.seq_id < 0 and not free_prompts):
                    if live:
                        break  # wait for a live sample to finish and free its cells
                    raise RuntimeError("a single sample does not fit the KV cache")  # _fits guards this
                if prompt.seq_id < 0:
                    prompt.seq_id = free_prompts.pop()
                    self._eval_prompt(prompt)
                live.append(self._admit(waiting.popleft(), call, prompt, free_samples.pop()))
            yield from self._step(live, free_samples, free_prompts)

    def _fits(self, call: PreparedCall, prompt: _Prompt, live: list[_Live], prompts: dict[Any, _Prompt]) -> bool:
        resident = sum(len(p.tokens) for p in prompts.values() if p.seq_id >= 0)
        reserved = resident + sum(s.max_tokens + 1 for s in live)
        extra = (0 if prompt.seq_id >= 0 else len(prompt.tokens)) + self._max_tokens(call) + 1
        return reserved + extra <= self.n_cells or not live

    def _max_tokens(self, call: PreparedCall) -> int:
        return max(1, min(call.sampling.max_tokens, self.n_ctx_seq - len(call.prompt)))

    def _eval_prompt(self, prompt: _Prompt) -> None:
        started = time.perf_counter()
        head = prompt.tokens[:-1]
        for start in range(0, len(head), self._n_batch):
            chunk = head[start : start + self._n_batch]
            self._batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                self._put(i, token, start + i, prompt.seq_id, logits=False)
            self._decode()
        self.times = _add(self.times, prompt_s=time.perf_counter() - started, tokens=0)

    def _admit(self, position: int, call: PreparedCall, prompt: _Prompt, seq_id: int) -> _Live:
        ll.llama_memory_seq_cp(self._memory, prompt.seq_id, seq_id, -1, -1)
        return _Live(
            position=position,
            prompt=prompt,
            seq_id=seq_id,
            sampler=_sampler_chain(call.sampling, call.seed),
            max_tokens=self._max_tokens(call),
            stop=call.stop,
            next_token=prompt.tokens[-1],
            n_past=len(prompt.tokens) - 1,
            started=time.perf_counter(),
        )

    def _step(
        self, live: list[_Live], free_samples: list[int], free_prompts: list[int]
    ) -> Iterator[tuple[int, Completion]]:
        started = time.perf_counter()
        self._batch.n_tokens = len(live)
        for row, seq in enumerate(live):
            self._put(row, seq.next_token, seq.n_past, seq.seq_id, logits=True)
        self._decode()
        decoded = time.perf_counter()
        finished: list[tuple[_Live, str, str]] = []
        for row, seq in enumerate(live):
            token = ll.llama_sampler_sample(seq.sampler, self._ctx, row)
            seq.n_past += 1
            if ll.llama_vocab_is_eog(self._vocab, token):
                finished.append((seq, _text(seq.pieces), "stop"))
                continue
            seq.generated += 1
            seq.next_token = token
            before = len(seq.pieces)
            seq.pieces += self._token_bytes(token)
            cut = _stop_cut(seq.pieces, before, seq.stop)
            if cut is not None:
                finished.append((seq, cut, "stop"))
            elif seq.generated >= seq.max_tokens:
                finished.append((seq, _text(seq.pieces), "length"))
        self.times = _add(
            self.times,
            decode_s=decoded - started,
            sample_s=time.perf_counter() - decoded,
            steps=1,
            tokens=len(live),
        )
        for seq, text, reason in finished:
            live.remove(seq)
            yield seq.position, self._finish(seq, text, reason, free_samples, free_prompts)

    def _finish(
        self, seq: _Live, text: str, reason: str, free_samples: list[int], free_prompts: list[int]
    ) -> Completion:
        ll.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
        ll.llama_sampler_free(seq.sampler)
        free_samples.append(seq.seq_id)
        seq.prompt.pending -= 1
        if seq.prompt.pending == 0:  # no sample of this prompt is left: its cells go back to the pool
            ll.llama_memory_seq_rm(self._memory, seq.prompt.seq_id, -1, -1)
            free_prompts.append(seq.prompt.seq_id)
            seq.prompt.seq_id = -1
        return Completion(
            text=text,
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=len(seq.prompt.tokens),
            completion_tokens=seq.generated,
            latency_s=time.perf_counter() - seq.started,
        )

    def _put(self, row: int, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[row] = token
        batch.pos[row] = pos
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq_id
        batch.logits[row] = logits

    def _decode(self) -> None:
        status = ll.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _token_bytes(self, token: int) -> bytes:
        n = ll.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[: max(n, 0)]


def _sampler_chain(sampling: SamplingParams, seed: int) -> Any:
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if sampling.temperature <= 0.0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        return chain
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(TOP_K))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sampling.top_p, 1))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(MIN_P, 1))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sampling.temperature))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed))
    return chain


def _text(pieces: bytearray) -> str:
    return pieces.decode("utf-8", "replace")


def _stop_cut(pieces: bytearray, before: int, stop: tuple[str, ...]) -> str | None:
    """The text up to the first stop string, if one ends in the newest piece; else None."""
    if not stop:
        return None
    text = pieces.decode("utf-8", "ignore")
    window = max(0, len(pieces[:before].decode("utf-8", "ignore")) - max(len(s) for s in stop))
    hits = [i for s in stop if (i := text.find(s, window)) >= 0]
    return text[: min(hits)] if hits else None


def _add(times: DecodeTimes, **more: float) -> DecodeTimes:
    return DecodeTimes(
        prompt_s=times.prompt_s + more.get("prompt_s", 0.0),
        decode_s=times.decode_s + more.get("decode_s", 0.0),
        sample_s=times.sample_s + more.get("sample_s", 0.0),
        steps=times.steps + int(more.get("steps", 0)),
        tokens=times.tokens + int(more.get("tokens", 0)),
    )
