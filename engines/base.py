"""One call shape for every model call: chat requests with sampling parameters in, completions out.

Backends (embedded llama.cpp, OpenAI-compatible servers, vLLM offline) implement `Backend.complete`, which
takes one sample per call; `engines.engine.Engine` fans requests out into samples and puts the persistent
cache in front, so every backend gets caching, resumability and accounting for free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling knobs shared by all backends. `n` samples are drawn per request, each with its own seed."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 256
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()

    def per_sample(self) -> dict[str, object]:
        """The parameters that shape one sample (without `n` and `seed`, which the cache key holds apart)."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat prompt and its sampling. Samples `first_sample .. first_sample + n - 1` are drawn, so a later
    round of sequential sampling continues the same seeded sample sequence (and the same cache keys)."""

    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    first_sample: int = 0

    @staticmethod
    def of(messages: Sequence[Message | dict[str, str]], sampling: SamplingParams | None = None) -> ChatRequest:
        """Build a request from `Message`s or `{"role", "content"}` dicts."""
        msgs = tuple(m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages)  # type: ignore[arg-type]
        return ChatRequest(msgs, sampling or SamplingParams())


@dataclass(frozen=True, slots=True)
class SampleCall:
    """One sample to draw: the unit a backend executes and the cache stores."""

    messages: tuple[Message, ...]
    sampling: SamplingParams
    sample_index: int

    @property
    def sample_seed(self) -> int:
        """A per-sample seed derived by hashing, so (seed 1, index 0) and (seed 0, index 1) never collide."""
        digest = hashlib.sha256(f"{self.sampling.seed}:{self.sample_index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def messages_json(self) -> list[dict[str, str]]:
        return [asdict(m) for m in self.messages]


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled answer with its accounting. `finish_reason == "error"` carries the failure in `error`."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    sample_index: int = 0
    cached: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"


@runtime_checkable
class Backend(Protocol):
    """What a model backend provides. `complete` yields `(position, completion)` as each call finishes."""

    name: str

    @property
    def model_id(self) -> str: ...

    @property
    def model_revision(self) -> str: ...

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]: ...

    def close(self) -> None: ...


class ModelIdentity:
    """The `model_id` / `model_revision` pair every backend reports; set both in `__init__`."""

    def __init__(self, model_id: str, model_revision: str) -> None:
        self._model_id = model_id
        self._model_revision = model_revision

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def model_revision(self) -> str:
        return self._model_revision


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: the stable text that hashes are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
