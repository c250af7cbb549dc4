"""reasoning-gym as a problem source: its procedural datasets become `Problem`s and its scorers give `Verdict`s.

What the reasoning-gym API offers (read from the installed package, PyPI release 0.1.25):

- `reasoning_gym.create_dataset(name, **config)` builds a `ProceduralDataset` from the config dataclass registered
  under `name` (`seed` and `size` are config fields; configs are validated with `assert`). An item is
  `{"question", "answer", "metadata"}` and `dataset.score_answer(answer, item)` returns a float in [0, 1]. Item
  `i` comes from its own `Random(seed + i)`: the same arguments always give the same items, and seed s item i+1
  is seed s+1 item i, so Gradus passes it a hash of (name, seed) rather than the configured seed itself.
- Difficulty lives in curricula: `reasoning_gym.factory.CURRICULA` maps 102 of the 106 dataset names to a
  `BaseCurriculum` subclass (`create_curriculum(name)`, `has_curriculum(name)`). Each curriculum attribute has a
  list of `levels` and the config field(s) it sets (`RangeAttributeDefinition` a min/max pair,
  `ScalarAttributeDefinition` one field). `set_global_level(n)` moves every attribute to level n (capped at its
  last level); `generate_configuration(defaults, context)` turns the levels into a config object.

Our `level` is that global level: its fields are merged into `config` and written as `difficulty_knob`. We use
reasoning-gym's default context (`RangeAttributeMode.INCLUSIVE`): a range at level n spans levels 0..n, so a
higher level widens the range toward harder items. Some curricula produce configs their own dataset rejects at
some levels (caesar_cipher, knight_swap, modulo_grid, rubiks_cube, survo): that is a `ConfigError`. The other
mode, `UPPER_BOUND`, breaks more of them (countdown, letter_jumble, spell_backward too).

Scoring rebuilds the item from the generator spec stored under `metadata["gradus_rg"]` and calls the dataset's own
scorer; datasets are cached per spec so scoring many answers builds each dataset once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from importlib import metadata as package_metadata
from typing import TYPE_CHECKING, Any

from engines.errors import ConfigError, did_you_mean
from synthesis.problem import Problem, Verdict
from synthesis.rg_scoring import check_scorer, scorer_problem

if TYPE_CHECKING:
    from types import ModuleType

    from reasoning_gym.dataset import ProceduralDataset

SOURCE = "reasoning_gym"
SPEC_KEY = "gradus_rg"  # where a problem's metadata keeps the generator spec that scoring rebuilds the item from
_CACHE_LIMIT = 32
_DATASETS: dict[tuple[str, int, int, str], ProceduralDataset] = {}


@dataclass(frozen=True, slots=True)
class RgSpec:
    """Everything needed to rebuild one reasoning-gym dataset: name, size, seed and the full config passed."""

    name: str
    size: int
    seed: int
    config: dict[str, Any]
    level: int | None = None

    def key(self) -> tuple[str, int, int, str]:
        return self.name, self.size, self.seed, json.dumps(self.config, sort_keys=True, default=str)


def _factory() -> ModuleType:
    """reasoning-gym's registry, imported on first use: importing it loads every generator (about 2 s)."""
    import reasoning_gym.factory

    return reasoning_gym.factory


def rg_dataset_names() -> list[str]:
    return sorted(_factory().DATASETS)


def rg_levels(name: str) -> int | None:
    """How many curriculum levels `name` has (the highest `level` is one less), or None without a curriculum."""
    factory = _factory()
    _check_name(name)
    if not factory.has_curriculum(name):
        return None
    attributes = factory.create_curriculum(name).attributes.values()
    return max((len(attribute.levels) for attribute in attributes), default=0)


def rg_problems(
    name: str, *, size: int, seed: int, config: dict[str, Any] | None = None, level: int | None = None
) -> list[Problem]:
    """`size` problems from reasoning-gym's `name` dataset; the same arguments always give the same problems.

    reasoning-gym seeds item i with `seed + i`, so nearby seeds would share items; the seed it gets is a hash
    of (name, seed) instead, recorded in the metadata so the item can be rebuilt for scoring. A dataset whose
    scorer would evaluate model text is refused (`synthesis.rg_scoring`)."""
    _check_name(name)
    check_scorer(name)
    dataset_seed = hashed_seed(name, seed)
    spec = _resolve(name, size, dataset_seed, config, level)
    dataset = _dataset(spec)
    version = _rg_version()
    problems = []
    for index in range(size):
        try:
            entry = dataset[index]
        except Exception as exc:  # a generator's own failure under this config: name it and stop
            raise ConfigError(
                f"reasoning-gym {name!r} failed to generate item {index} with config {spec.config}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if index == 0:
            _check_rebuilds(spec, entry)
        if entry.get("answer") is None:
            raise ConfigError(
                f"reasoning-gym {name!r} has no reference answer (item {index}): its scorer checks an answer's "
                "validity instead, and every Gradus problem needs a gold answer; choose another dataset"
            )
        generator = {
            "dataset": name,
            "size": size,
            "seed": dataset_seed,
            "user_seed": seed,
            "index": index,
            "level": level,
        }
        problems.append(
            Problem.create(
                source=SOURCE,
                family=f"rg:{name}",
                question=str(entry["question"]),
                answer=str(entry["answer"]),
                source_ref=f"rg:{name}:{seed}:{index}",
                difficulty_knob=level,
                metadata={
                    **_json_safe(entry.get("metadata") or {}),
                    SPEC_KEY: {**generator, "config": _json_safe(spec.config), "version": version},
                },
            )
        )
    return problems


def _check_rebuilds(spec: RgSpec, entry: dict[str, Any]) -> None:
    """Scoring rebuilds each item from its spec; a dataset whose items differ when rebuilt cannot be scored."""
    rebuilt = _factory().create_dataset(spec.name, size=spec.size, seed=spec.seed, **spec.config)[0]
    if str(rebuilt["question"]).strip() != str(entry["question"]).strip() or rebuilt["answer"] != entry["answer"]:
        raise ConfigError(
            f"reasoning-gym {spec.name!r} does not rebuild the same item from the same seed and config "
            f"{spec.config}, so its answers could not be scored later; choose another dataset"
        )


def hashed_seed(name: str, seed: int) -> int:
    digest = hashlib.sha256(f"rg\x00{name}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def rg_prepare(problem: Problem) -> None:
    """Import reasoning-gym and rebuild the problem's dataset ahead of scoring (cached); failures are left for
    `rg_score` to report."""
    try:
        stored = json.loads(problem.metadata).get(SPEC_KEY)
        if isinstance(stored, dict) and scorer_problem(stored["dataset"]) is None:
            _dataset(RgSpec(stored["dataset"], stored["size"], stored["seed"], stored["config"], stored["level"]))
    except Exception:  # noqa: S110 — rg_score rebuilds again and names the failure in the verdict
        pass


def rg_score(problem: Problem, answer: str) -> Verdict:
    """The dataset's own scorer on the rebuilt item: 1.0 is correct, any lower score is wrong (score in reason).

    Only datasets whose scorers never evaluate text are scored (`synthesis.rg_scoring`). A scorer that raises on
    an answer it cannot read makes that answer `unparseable`; a problem whose item cannot be rebuilt is `error`."""
    if not answer or not answer.strip():
        return Verdict("unparseable", "empty answer", answer)
    try:
        stored = json.loads(problem.metadata).get(SPEC_KEY)
        if not isinstance(stored, dict):
            return Verdict("error", f"problem {problem.source_ref!r} has no {SPEC_KEY!r} generator spec", answer)
        refused = scorer_problem(stored["dataset"])
        if refused is not None:  # e.g. a problem stored by an older Gradus: its scorer is never called on text
            return Verdict("error", f"reasoning-gym {stored['dataset']!r} is not scored: {refused}", answer)
        spec = RgSpec(stored["dataset"], stored["size"], stored["seed"], stored["config"], stored["level"])
        dataset = _dataset(spec)
        entry = dataset[stored["index"]]
    except Exception as exc:  # our stored spec or the generator failed: no verdict on the answer
        return Verdict("error", f"could not rebuild {problem.source_ref!r}: {type(exc).__name__}: {exc}", answer)
    if str(entry["question"]).strip() != problem.question:
        return Verdict("error", f"rebuilt item for {problem.source_ref!r} differs from the stored question", answer)
    try:
        score = dataset.score_answer(answer, entry)
    except Exception as exc:  # third-party code that could not read this answer
        return Verdict(
            "unparseable", f"reasoning-gym scorer could not read it: {type(exc).__name__}: {str(exc)[:200]}", answer
        )
    if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
        return Verdict("error", f"reasoning-gym scorer returned {score!r}, not a number", answer)
    if score >= 1.0:
        return Verdict("correct", f"reasoning-gym {problem.family} score 1.0", answer)
    return Verdict("wrong", f"reasoning-gym {problem.family} score {score:.3f} < 1.0", answer)


# --- building datasets ----------------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if name not in _factory().DATASETS:
        raise ConfigError(f"unknown reasoning-gym dataset {name!r};" + did_you_mean(name, _factory().DATASETS))


def _resolve(name: str, size: int, seed: int, config: dict[str, Any] | None, level: int | None) -> RgSpec:
    """The full config for `create_dataset`: the level's fields plus `config`, checked against the config class."""
    _check_name(name)
    config = dict(config or {})
    allowed = [f.name for f in fields(_factory().DATASETS[name][1])]
    for key in config:
        if key in ("seed", "size"):
            raise ConfigError(f"reasoning-gym {name!r}: set {key!r} as its own field, not inside config")
        if key not in allowed:
            raise ConfigError(f"reasoning-gym {name!r} has no config field {key!r};" + did_you_mean(key, allowed))
    from_level = _level_fields(name, level) if level is not None else {}
    clash = sorted(set(from_level) & set(config))
    if clash:
        raise ConfigError(f"reasoning-gym {name!r}: level {level} sets {clash}; drop them from config or drop level")
    return RgSpec(name, size, seed, {**from_level, **config}, level)


def _level_fields(name: str, level: int) -> dict[str, Any]:
    """The config fields reasoning-gym's curriculum sets at `level` (all attributes at that global level)."""
    from reasoning_gym.coaching import RangeAttributeDefinition

    levels = rg_levels(name)
    if levels is None:
        raise ConfigError(f"reasoning-gym {name!r} has no curriculum, so no level; set its parameters in config")
    if not 0 <= level < levels:
        raise ConfigError(f"reasoning-gym {name!r} has levels 0..{levels - 1}; got level {level}")
    curriculum = _factory().create_curriculum(name)
    curriculum.set_global_level(level)
    generated = curriculum.generate_configuration()
    chosen: dict[str, Any] = {}
    for attribute in curriculum.attributes.values():
        if isinstance(attribute, RangeAttributeDefinition):
            names = [attribute.lower_field_name, attribute.upper_field_name]
        else:
            names = [attribute.field_name]
        chosen.update({field: getattr(generated, field) for field in names})
    return chosen


def _dataset(spec: RgSpec) -> ProceduralDataset:
    key = spec.key()
    if key not in _DATASETS:
        try:
            dataset = _factory().create_dataset(spec.name, size=spec.size, seed=spec.seed, **spec.config)
        except (AssertionError, TypeError, ValueError) as exc:  # reasoning-gym validates configs with assert
            raise ConfigError(f"reasoning-gym {spec.name!r} rejected config {spec.config}: {exc}") from exc
        if len(_DATASETS) >= _CACHE_LIMIT:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = dataset
    return _DATASETS[key]


def _rg_version() -> str:
    return package_metadata.version("reasoning-gym")


def _json_safe(value: object) -> Any:
    """A JSON-ready copy: tuples and sets become lists, other keys and unknown values strings, NaN/inf strings."""
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_json_safe(item) for item in value), key=str)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)  # what json.dumps(default=str) would write
