"""Model access for synthesis and scoring: one call shape, three backends, one persistent cache."""

from engines.base import ChatRequest, Completion, Message, SamplingParams
from engines.config import BACKENDS, EngineConfig, build_engine
from engines.engine import Engine, EngineStats

__all__ = [
    "BACKENDS",
    "ChatRequest",
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "Message",
    "SamplingParams",
    "build_engine",
]
