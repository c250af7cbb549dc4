"""One call shape for every model call: chat requests with sampling parameters in, completions out.

Backends (embedded llama.cpp, OpenAI-compatible servers, vLLM offline) implement `Backend.complete`, which
takes one sample per call; `engines.engine.Engine` fans requests out into samples and puts the persistent
cache in front, so every backend gets caching, resumability and accounting for free.

A request whose final message is `open` is a raw-prefix request: the prompt is the chat template rendered up to
the end of that message's content, and the model continues it (`open_turn_prompt`). An open user turn with empty
content after a system line is ScaleQuest's question-only prefix (methods §8): each completion is one question.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn. `open` (final message only) leaves the turn open: the model writes the rest of it."""

    role: Role
    content: str
    open: bool = False

    def as_json(self) -> dict[str, object]:
        # `open` is written only when set, so ordinary messages (and their cache keys) are what they always were.
        return {"role": self.role, "content": self.content, **({"open": True} if self.open else {})}


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

    def __post_init__(self) -> None:
        if any(m.open for m in self.messages[:-1]):
            raise ValueError("only the final message of a request can be open (the turn the model continues)")

    @staticmethod
    def of(messages: Sequence[Message | dict[str, str]], sampling: SamplingParams | None = None) -> ChatRequest:
        """Build a request from `Message`s or `{"role", "content"}` dicts."""
        msgs = tuple(m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages)  # type: ignore[arg-type]
        return ChatRequest(msgs, sampling or SamplingParams())

    @staticmethod
    def open_turn(system: str | None, sampling: SamplingParams | None = None, *, role: Role = "user") -> ChatRequest:
        """Sample what the model writes in a fresh `role` turn after the `system` line and nothing else: the
        question-only prefix of ScaleQuest (methods §8; Ding et al., arXiv 2410.18693). Each completion is the
        content of that turn; generation stops at the template's end-of-turn marker or the model's EOS."""
        messages = (Message("system", system),) if system is not None else ()
        return ChatRequest((*messages, Message(role, "", open=True)), sampling or SamplingParams())


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

    @property
    def is_open_turn(self) -> bool:
        """True for a raw-prefix call: the backend continues the final message instead of answering the chat."""
        return bool(self.messages) and self.messages[-1].open

    def messages_json(self) -> list[dict[str, object]]:
        return [m.as_json() for m in self.messages]


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


_OPEN_TURN_MARK = "<<gradus:open-turn>>"


@dataclass(frozen=True, slots=True)
class OpenTurnPrompt:
    """A raw prompt that ends where the open message's content ends, and the template's end-of-turn marker."""

    text: str
    end_of_turn: str  # e.g. "<|im_end|>"; "" when the template closes a turn with whitespace only

    def stop(self, extra: Sequence[str] = ()) -> list[str]:
        """The stop strings of a continuation: the caller's, then the end-of-turn marker."""
        return [*extra, *([self.end_of_turn] if self.end_of_turn and self.end_of_turn not in extra else [])]


def open_turn_prompt(messages: Sequence[Message], render: Callable[[list[dict[str, str]]], str]) -> OpenTurnPrompt:
    """Render `messages` with a chat template (`render`, called without a generation prompt) and cut it where the
    final (open) message's content ends: a mark is appended to that content, rendered, and cut at.

    What follows the mark up to the next whitespace is the template's end-of-turn marker, so a continuation can
    stop there. Raises `ValueError` if the template drops the content (the mark is missing from its output)."""
    if not messages:
        raise ValueError("an open-turn request needs at least one message")
    plain = [{"role": m.role, "content": m.content} for m in messages]
    plain[-1]["content"] += _OPEN_TURN_MARK
    rendered = render(plain)
    cut = rendered.rfind(_OPEN_TURN_MARK)
    if cut < 0:
        raise ValueError("the chat template dropped the open message's content; cannot build its prefix")
    tail = rendered[cut + len(_OPEN_TURN_MARK) :].split(maxsplit=1)
    return OpenTurnPrompt(rendered[:cut], tail[0] if tail else "")


# ChatML, the default chat template where a backend has no template of its own (openai; a GGUF without one).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: the stable text that hashes are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
