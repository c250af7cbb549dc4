"""Batched decoding on llama.cpp's low-level API: many sequences advance one token per `llama_decode`.

On a CPU, decoding one sequence is bound by memory bandwidth: every token reads every weight once. Decoding B
sequences in one batch reads each weight once for all of them, so tokens/s grows with B until the cores, not the
memory bus, are the limit.

Batch-invariant: a sample's text depends on its own call (and on whether `parallel` is below 8, below), never on
which other samples share its batches, how many run at once, or in which order calls arrive. So the engine can
hand the decoder every missing call at once, requests are packed together (continuous batching), and a resumed run
or a Ray worker decodes the same texts as one uninterrupted process. Three choices make the floating-point results
independent of the batch (measured bitwise on the 0.5B and 1.5B students, `tests/engines/test_batched.py`):
- one KV stream per sequence (`kv_unified = False`): a sequence attends over its own cells only, laid out the same
  whatever its neighbours hold;
- every `llama_decode` on one side of llama.cpp's kernel switch at 8 rows (other kernels, other rounding): with
  `parallel` < 8 ("narrow") at most 7 rows per call (more live samples take several calls per step); with
  `parallel` >= 8 ("wide") at least 8, idle streams filled with a throw-away token;
- the weights in the layout that side's kernels sum the same way for every row count. Narrow decoders use them as
  stored: llama.cpp's repacked (interleaved) CPU layouts change their summation order between 3 and 4 rows. Wide
  decoders use the repacked layouts, which agree bit for bit from 8 to 32 rows and are faster there (1.5B on 2
  cores: 250 against 340 ms a call of 16 rows).
Texts therefore depend on which side `parallel` is on, never on anything else. A wide call of 8 rows costs about
what a narrow call of 7 costs, and three one-row calls: wide decoding pays when many samples are in flight.

How calls are decoded (`BatchDecoder.run`):
- Up to `parallel` samples are live, one per KV stream; a finished one is replaced by the next waiting call
  (waiting calls are grouped by prompt, in order of first appearance).
- A request's K samples share one prompt evaluation: the prompt minus its last token is evaluated into the first
  sample's stream, and each sibling copies that stream (`llama_memory_seq_cp`) and cuts it back to the prompt; a
  sibling taking over a finished sibling's stream only cuts it back. Each sample feeds the last prompt token
  itself, so its first token is sampled from its own batch row.
- Live streams are decoded in ascending order and taken lowest free first, so a call's streams are consecutive,
  which llama.cpp needs to run them as one micro-batch (a gap would split the call).
- Sampling is llama.cpp's own sampler chain, one chain per sample, seeded with the call's `sample_seed`, in the
  order llama-cpp-python's `create_completion` uses (top-k 40, top-p, min-p 0.05, temperature, seeded draw;
  greedy at temperature 0). Stop strings are matched on the decoded text; an end-of-generation token stops too.
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
# This llama.cpp CPU build computes a decode call of 1-7 rows with one set of kernels and of 8 or more rows with
# another (other rounding). Every call of a decoder stays on one side: at most 7 rows, or (wide, parallel >= 8)
# at least 8. 1.5B on 2 cores, ms a call: narrow 64 for one row, 203 for 7; wide 208 for 8, 251 for 16, 454 for 32.
ROWS_PER_DECODE = 7
WIDE_ROWS = ROWS_PER_DECODE + 1


@dataclass(slots=True)
class PreparedCall:
    """One call ready to decode: its prompt tokens, sampling, seed and the stop strings to end it at."""

    prompt: list[int]
    sampling: SamplingParams
    seed: int
    stop: tuple[str, ...]
    error: str | None = None  # set when the call cannot run (prompt too long); decoded as an error completion


@dataclass(slots=True)
class _Live:
    position: int  # index of the call in the list being decoded
    prompt: tuple[int, ...]
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
    """Where decoding time went, in seconds: prompt evaluation, batched decode calls, sampling + detokenizing;
    `steps` counts the decode calls that sampled tokens, `tokens` the tokens they sampled."""

    prompt_s: float = 0.0
    decode_s: float = 0.0
    sample_s: float = 0.0
    steps: int = 0
    tokens: int = 0


class BatchDecoder:
    """A llama.cpp context of its own over a loaded model, decoding groups of calls in batches."""

    def __init__(self, model_path: str, *, parallel: int, n_ctx: int, n_threads: int, n_batch: int = 512) -> None:
        self.parallel = parallel
        self.wide = parallel >= WIDE_ROWS
        self.n_ctx_seq = n_ctx  # the context window one sequence may use, as configured
        model_params = ll.llama_model_default_params()
        # Repacked (interleaved) weights only for wide calls: their kernels sum a row's products in one order from 8
        # rows on, but in another below 4 rows than from 4 to 7; the weights as stored sum alike for 1-7 rows.
        model_params.use_extra_bufts = self.wide
        self._model = ll.llama_model_load_from_file(model_path.encode("utf-8"), model_params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {model_path}")
        params = ll.llama_context_default_params()
        n_streams = parallel  # one KV stream per live sample
        params.n_ctx = n_streams * n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_streams
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # One KV stream per sequence: a sequence attends over its own cells, laid out the same whatever else is
        # decoding, instead of over a shared buffer whose layout depends on its neighbours.
        params.kv_unified = False
        self._ctx = ll.llama_init_from_model(self._model, params)
        if not self._ctx:
            ll.llama_model_free(self._model)
            raise RuntimeError(f"llama.cpp could not create a context of {n_streams} x {n_ctx} cells")
        self._memory = ll.llama_get_memory(self._ctx)
        self._vocab = ll.llama_model_get_vocab(self._model)
        self._n_batch = n_batch
        self._batch = ll.llama_batch_init(n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self.times = DecodeTimes()

    def reset(self) -> None:
        """Forget every sequence (after a failed decode)."""
        ll.llama_memory_clear(self._memory, True)

    def close(self) -> None:
        if self._ctx:
            ll.llama_batch_free(self._batch)
            ll.llama_free(self._ctx)
            ll.llama_model_free(self._model)
            self._ctx = None

    def run(self, calls: Sequence[PreparedCall]) -> Iterator[tuple[int, Completion]]:
        """Decode `calls`; yield `(position, completion)` as each sample finishes."""
        ll.llama_memory_clear(self._memory, True)
        order: dict[tuple[int, ...], list[int]] = {}
        for position, call in enumerate(calls):
            if call.error is not None:
                yield position, Completion(text="", finish_reason="error", error=call.error)
            else:
                order.setdefault(tuple(call.prompt), []).append(position)
        waiting = deque(position for positions in order.values() for position in positions)
        holders: dict[int, tuple[int, ...]] = {}  # stream -> the prompt whose head its cells [0, n-1) hold
        free = set(range(self.parallel))
        live: dict[int, _Live] = {}
        try:
            while waiting or live:
                while waiting and free:
                    call = calls[waiting[0]]
                    key = tuple(call.prompt)
                    # A stream already holding the prompt, else the lowest free one (keeps live streams consecutive).
                    stream = min((s for s in free if holders.get(s) == key), default=min(free))
                    free.discard(stream)
                    self._load_prompt(key, stream, holders)
                    live[stream] = self._admit(waiting.popleft(), call, key, stream)
                for stream, completion in self._step(live):
                    free.add(stream)
                    yield completion
        finally:  # a failed decode or an abandoned generator leaves live samplers behind
            for seq in live.values():
                ll.llama_sampler_free(seq.sampler)

    def _load_prompt(self, key: tuple[int, ...], stream: int, holders: dict[int, tuple[int, ...]]) -> None:
        """Make `stream` hold the prompt head of `key` and nothing else."""
        head = len(key) - 1
        if holders.get(stream) == key:
            ll.llama_memory_seq_rm(self._memory, stream, head, -1)
            return
        source = min((s for s, held in holders.items() if held == key), default=None)
        if source is not None:  # a sibling's stream holds the prompt: copy it, then drop what the sibling added
            ll.llama_memory_seq_cp(self._memory, source, stream, -1, -1)
            ll.llama_memory_seq_rm(self._memory, stream, head, -1)
        else:
            ll.llama_memory_seq_rm(self._memory, stream, -1, -1)
            self._eval_prompt(list(key[:-1]), stream)
        holders[stream] = key

    def _max_tokens(self, call: PreparedCall) -> int:
        return max(1, min(call.sampling.max_tokens, self.n_ctx_seq - len(call.prompt)))

    def _eval_prompt(self, head: list[int], stream: int) -> None:
        started = time.perf_counter()
        for start in range(0, len(head), self._n_batch):
            chunk = head[start : start + self._n_batch]
            self._batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                self._put(i, token, start + i, stream, logits=False)
            self._decode()
        self.times = _add(self.times, prompt_s=time.perf_counter() - started)

    def _admit(self, position: int, call: PreparedCall, key: tuple[int, ...], stream: int) -> _Live:
        return _Live(
            position=position,
            prompt=key,
            seq_id=stream,
            sampler=_sampler_chain(call.sampling, call.seed),
            max_tokens=self._max_tokens(call),
            stop=call.stop,
            next_token=key[-1],
            n_past=len(key) - 1,
            started=time.perf_counter(),
        )

    def _step(self, live: dict[int, _Live]) -> Iterator[tuple[int, tuple[int, Completion]]]:
        """Advance every live sample one token; yield `(stream, (position, completion))` for each that finished.

        Narrow (`parallel` < 8): live streams in calls of at most 7 rows. Wide: one call over streams 0 .. the
        highest live one, at least 8 rows, idle streams filled with a throw-away token, so every call takes the
        8-row kernels."""
        streams = sorted(live)
        if self.wide:
            chunks = [range(max(WIDE_ROWS, streams[-1] + 1))]
        else:
            chunks = [streams[start : start + ROWS_PER_DECODE] for start in range(0, len(streams), ROWS_PER_DECODE)]
        for chunk in chunks:
            for seq, text, reason in self._decode_rows([live.get(stream) for stream in chunk], list(chunk)):
                del live[seq.seq_id]
                ll.llama_sampler_free(seq.sampler)
                yield seq.seq_id, (seq.position, self._completion(seq, text, reason))

    def _decode_rows(self, rows: list[_Live | None], streams: list[int]) -> list[tuple[_Live, str, str]]:
        started = time.perf_counter()
        self._batch.n_tokens = len(rows)
        fillers: list[tuple[int, int]] = []  # (stream, position) of the throw-away tokens, removed after the call
        for row, (seq, stream) in enumerate(zip(rows, streams, strict=True)):
            if seq is None:
                position = ll.llama_memory_seq_pos_max(self._memory, stream) + 1
                fillers.append((stream, position))
                self._put(row, 0, position, stream, logits=True)  # an output row: the head's kernels count rows too
            else:
                self._put(row, seq.next_token, seq.n_past, seq.seq_id, logits=True)
        try:
            self._decode()
        finally:
            for stream, position in fillers:
                ll.llama_memory_seq_rm(self._memory, stream, position, -1)
        decoded = time.perf_counter()
        finished: list[tuple[_Live, str, str]] = []
        for row, seq in enumerate(rows):
            if seq is None:
                continue
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
            tokens=len(rows) - len(fillers),
        )
        return finished

    def _completion(self, seq: _Live, text: str, reason: str) -> Completion:
        return Completion(
            text=text,
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=len(seq.prompt),
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
