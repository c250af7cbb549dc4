"""Online curriculum samplers (SEC, DUMP): hand-computed updates, bandit behaviour, determinism and resuming."""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from scoring.curriculum.category_sampler import CategorySampler, grpo_advantages
from scoring.curriculum.samplers import DUMPConfig, DUMPSampler, SECConfig, SECSampler
from scoring.errors import ConfigError

PROBLEMS = {
    "algebra": ["alg-0", "alg-1", "alg-2"],
    "geometry": ["geo-0", "geo-1"],
    "logic": ["log-0", "log-1", "log-2", "log-3"],
}
SAMPLERS = [SECSampler, DUMPSampler]


def _run(sampler: CategorySampler, first_step: int, steps: int, batch_size: int = 5) -> list[list[str]]:
    """Sample and update for `steps` steps. The advantages are a fixed function of (problem, step), so two runs see
    the same feedback for the same samples."""
    batches = []
    for step in range(first_step, first_step + steps):
        batch = sampler.sample(batch_size)
        by_category: dict[str, list[float]] = defaultdict(list)
        for problem_id in batch:
            code = zlib.crc32(f"{problem_id}/{step}".encode())
            by_category[sampler.category_of(problem_id)] += [(code % 1000) / 500 - 1, ((code >> 10) % 1000) / 1000]
        for category, advantages in by_category.items():
            sampler.update(category, advantages)
        batches.append(batch)
    return batches


# --- defaults ------------------------------------------------------------------------------------------------------


def test_defaults_are_the_values_in_methods_md() -> None:
    # methods §2 Defaults: α = 0.5 (reproduction commands), τ = 1.0 (config default, Countdown), Q initialised to 0.
    assert SECConfig().model_dump() == {"learning_rate": 0.5, "temperature": 1.0, "initial_value": 0.0}
    # methods §3: window k = 300, exploration weight 1.0, τ = 0.1.
    assert DUMPConfig().model_dump() == {"window_size": 300, "exploration_weight": 1.0, "temperature": 0.1}


@pytest.mark.parametrize("sampler_class", SAMPLERS)
def test_distribution_is_uniform_before_any_update(sampler_class: type[CategorySampler]) -> None:
    probabilities = sampler_class(PROBLEMS, seed=0).probabilities()
    assert probabilities == pytest.approx({"algebra": 1 / 3, "geometry": 1 / 3, "logic": 1 / 3})


# --- SEC: TD(0) and Boltzmann --------------------------------------------------------------------------------------


def test_sec_td0_update_matches_hand_computation() -> None:
    sampler = SECSampler(PROBLEMS, seed=0)
    sampler.update("algebra", [0.5, -1.5, 1.0, 0.0])
    # r = (0.5 + 1.5 + 1.0 + 0.0) / 4 = 0.75;  Q = α·r + (1 − α)·Q = 0.5·0.75 + 0.5·0.0 = 0.375
    assert sampler.values() == pytest.approx({"algebra": 0.375, "geometry": 0.0, "logic": 0.0})
    sampler.update("algebra", [2.0, -2.0])
    # r = (2.0 + 2.0) / 2 = 2.0;  Q = 0.5·2.0 + 0.5·0.375 = 1.1875
    assert sampler.values() == pytest.approx({"algebra": 1.1875, "geometry": 0.0, "logic": 0.0})


def test_sec_boltzmann_probabilities_match_hand_softmax() -> None:
    sampler = SECSampler(PROBLEMS, seed=0)
    sampler.update("algebra", [0.5, -1.5, 1.0, 0.0])
    sampler.update("algebra", [2.0, -2.0])  # Q = 1.1875, the others stay at 0 (previous test)
    # τ = 1: p(algebra) = e^1.1875 / (e^1.1875 + e^0 + e^0)
    denominator = math.exp(1.1875) + 2.0
    assert sampler.probabilities() == pytest.approx(
        {"algebra": math.exp(1.1875) / denominator, "geometry": 1 / denominator, "logic": 1 / denominator}
    )


def test_sec_uses_configured_learning_rate_temperature_and_initial_value() -> None:
    sampler = SECSampler(PROBLEMS, SECConfig(learning_rate=0.1, temperature=0.4, initial_value=0.2), seed=0)
    sampler.update("geometry", [1.0, -1.0])
    # Q(geometry) = 0.1·1.0 + 0.9·0.2 = 0.28;  the others stay 0.2
    assert sampler.values() == pytest.approx({"algebra": 0.2, "geometry": 0.28, "logic": 0.2})
    # Boltzmann at τ = 0.4: exponents 0.28/0.4 = 0.7 and 0.2/0.4 = 0.5
    denominator = math.exp(0.7) + 2 * math.exp(0.5)
    expected = {"algebra": math.exp(0.5), "geometry": math.exp(0.7), "logic": math.exp(0.5)}
    assert sampler.probabilities() == pytest.approx({c: e / denominator for c, e in expected.items()})


# --- DUMP: windowed UCB and softmax --------------------------------------------------------------------------------


def test_dump_ucb_scores_and_probabilities_match_hand_computation() -> None:
    sampler = DUMPSampler(PROBLEMS, DUMPConfig(window_size=3), seed=0)
    sampler.update("algebra", [1.0, -0.5])  # window [1.0, 0.5], n = 2
    sampler.update("geometry", [0.2, -0.4, 0.6, 0.8])  # 0.2 falls out of the 3-window: [0.4, 0.6, 0.8], n = 4
    # logic never updated: empty window (L̂ = 0), n = 0.  n_total = 2 + 4 + 0 = 6, so ln(n_total + 1) = ln 7.
    ucb_algebra = (1.0 + 0.5) / 2 + math.sqrt(2 * math.log(7) / (2 + 1))  # 0.75 + 1.13898 = 1.88898
    ucb_geometry = (0.4 + 0.6 + 0.8) / 3 + math.sqrt(2 * math.log(7) / (4 + 1))  # 0.6 + 0.88225 = 1.48225
    ucb_logic = 0.0 + math.sqrt(2 * math.log(7) / (0 + 1))  # 1.97277: the unvisited category scores highest
    assert sampler.ucb_scores() == pytest.approx({"algebra": ucb_algebra, "geometry": ucb_geometry, "logic": ucb_logic})
    assert ucb_algebra == pytest.approx(1.88898, abs=1e-5)
    assert ucb_geometry == pytest.approx(1.48225, abs=1e-5)
    assert ucb_logic == pytest.approx(1.97277, abs=1e-5)
    # softmax at τ = 0.1
    exps = {"algebra": math.exp(ucb_algebra / 0.1), "geometry": math.exp(ucb_geometry / 0.1)}
    exps["logic"] = math.exp(ucb_logic / 0.1)
    total = sum(exps.values())
    assert sampler.probabilities() == pytest.approx({c: e / total for c, e in exps.items()})


def test_dump_window_evicts_the_oldest_values_but_counts_every_rollout() -> None:
    sampler = DUMPSampler(PROBLEMS, DUMPConfig(window_size=3), seed=0)
    sampler.update("algebra", [1.0, -1.0, 1.0])
    sampler.update("algebra", [0.0, 0.0])  # the first two 1.0s drop out of the window
    state = sampler.state_dict()
    assert state["windows"]["algebra"] == [1.0, 0.0, 0.0]
    assert state["counts"] == {"algebra": 5, "geometry": 0, "logic": 0}
    # L̂ = (1 + 0 + 0) / 3;  n_total = 5, n_algebra = 5
    assert sampler.ucb_scores()["algebra"] == pytest.approx(1 / 3 + math.sqrt(2 * math.log(6) / 6))


# --- GRPO advantages from rewards ----------------------------------------------------------------------------------


def test_update_from_rewards_uses_grpo_advantages_per_group() -> None:
    sampler = SECSampler(PROBLEMS, seed=0)
    advantages = sampler.update_from_rewards("logic", [1, 0, 0, 0, 1, 1, 1, 1], group_size=4)
    # Group 1: mean 0.25; Bessel std = sqrt((0.75² + 3·0.25²) / 3) = sqrt(0.25) = 0.5.
    # Group 2: all rewards equal, so every advantage is 0.
    high, low = 0.75 / (0.5 + 1e-6), -0.25 / (0.5 + 1e-6)
    assert advantages == pytest.approx([high, low, low, low, 0.0, 0.0, 0.0, 0.0])
    # Group 1's mean |A| agrees with methods §1.4 step 4: 2·sqrt((G−1)/G)·sqrt(p̂(1−p̂)) = 2·sqrt(0.75)·sqrt(0.1875)
    assert (abs(high) + 3 * abs(low)) / 4 == pytest.approx(2 * math.sqrt(0.75) * math.sqrt(0.1875), rel=1e-5)
    # Q = 0.5 · mean|A| over all 8 rollouts = 0.5 · (0.75 + 3·0.25) / 0.500001 / 8
    assert sampler.values()["logic"] == pytest.approx(0.5 * 1.5 / (0.5 + 1e-6) / 8)


@pytest.mark.parametrize(
    ("rewards", "group_size", "message"),
    [
        ([1, 0, 1], 1, "group_size must be an integer ≥ 2"),
        ([1, 0, 1], 2, "3 rewards, which is not a positive multiple of group_size=2"),
        ([], 2, "0 rewards"),
        ([1, float("nan")], 2, r"rewards\[1\] = nan is not finite"),
    ],
)
def test_grpo_advantages_rejects_bad_groups(rewards: list[float], group_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grpo_advantages(rewards, group_size)


# --- a simulated non-stationary bandit -----------------------------------------------------------------------------


@pytest.mark.parametrize("sampler_class", SAMPLERS)
def test_sampler_shifts_toward_the_category_whose_signal_rises(sampler_class: type[CategorySampler]) -> None:
    problems = {name: [f"{name}-{i}" for i in range(20)] for name in ("rising", "steady_a", "steady_b")}
    sampler = sampler_class(problems, seed=11)
    noise = np.random.default_rng(5)
    steps, group_size = 60, 4
    late_draws: Counter[str] = Counter()
    early_probability = None
    for step in range(steps):
        # mean |advantage|: "rising" climbs from 0.05 to 1.0, the others stay at 0.3
        level = {"rising": 0.05 + 0.95 * step / (steps - 1), "steady_a": 0.3, "steady_b": 0.3}
        batch = sampler.sample(32)
        by_category: dict[str, list[float]] = defaultdict(list)
        for problem_id in batch:
            category = sampler.category_of(problem_id)
            magnitudes = level[category] * noise.uniform(0.5, 1.5, size=group_size)
            by_category[category] += (magnitudes * noise.choice([-1.0, 1.0], size=group_size)).tolist()
        for category, advantages in by_category.items():
            sampler.update(category, advantages)
        if step == 10:
            early_probability = sampler.probabilities()["rising"]
        if step >= steps - 20:
            late_draws.update(sampler.category_of(problem_id) for problem_id in batch)

    final = sampler.probabilities()
    assert final["rising"] > max(final["steady_a"], final["steady_b"])
    assert late_draws["rising"] > max(late_draws["steady_a"], late_draws["steady_b"])
    assert early_probability is not None and early_probability < 1 / 3 < final["rising"]


# --- the sampling rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler_class", SAMPLERS)
def test_each_category_serves_every_problem_once_before_reshuffling(sampler_class: type[CategorySampler]) -> None:
    sampler = sampler_class(PROBLEMS, seed=3)
    served: dict[str, list[str]] = defaultdict(list)
    for batch in _run(sampler, first_step=0, steps=30, batch_size=7):
        for problem_id in batch:
            served[sampler.category_of(problem_id)].append(problem_id)
    for category, problem_ids in PROBLEMS.items():
        stream, size = served[category], len(problem_ids)
        assert len(stream) >= 3 * size  # enough draws that several passes are checked
        for start in range(0, len(stream) - size + 1, size):
            assert sorted(stream[start : start + size]) == sorted(problem_ids)
        # reshuffled passes are not all in the same order
        assert len({tuple(stream[s : s + size]) for s in range(0, len(stream) - size + 1, size)}) > 1


def test_a_batch_larger_than_its_category_starts_a_new_pass() -> None:
    sampler = SECSampler({"only": ["a", "b", "c", "d", "e"]}, seed=0)
    batch = sampler.sample(12)
    assert sorted(batch[:5]) == sorted(batch[5:10]) == ["a", "b", "c", "d", "e"]
    assert len(set(batch[10:])) == 2


# --- determinism and resuming --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler_class", SAMPLERS)
def test_same_seed_same_samples_different_seed_different_samples(sampler_class: type[CategorySampler]) -> None:
    first = _run(sampler_class(PROBLEMS, seed=42), first_step=0, steps=15)
    again = _run(sampler_class(PROBLEMS, seed=42), first_step=0, steps=15)
    other = _run(sampler_class(PROBLEMS, seed=43), first_step=0, steps=15)
    assert first == again
    assert first != other


def test_input_order_does_not_change_the_samples() -> None:
    reordered = {category: list(reversed(ids)) for category, ids in reversed(PROBLEMS.items())}
    assert _run(SECSampler(reordered, seed=1), 0, 10) == _run(SECSampler(PROBLEMS, seed=1), 0, 10)


@pytest.mark.parametrize("sampler_class", SAMPLERS)
def test_resumed_sampler_continues_exactly_like_the_uninterrupted_one(sampler_class: type[CategorySampler]) -> None:
    uninterrupted = sampler_class(PROBLEMS, seed=42)
    expected = _run(uninterrupted, first_step=0, steps=20)

    original = sampler_class(PROBLEMS, seed=42)
    before = _run(original, first_step=0, steps=10)
    state = json.loads(json.dumps(original.state_dict()))
    resumed = sampler_class(PROBLEMS, seed=999)  # a different seed: the RNG state must come from the checkpoint
    resumed.load_state_dict(state)
    after = _run(resumed, first_step=10, steps=10)

    assert before + after == expected
    assert resumed.state_dict() == uninterrupted.state_dict()
    assert resumed.probabilities() == uninterrupted.probabilities()


def test_from_table_matches_the_mapping_and_stringifies_categories() -> None:
    rows = [(pid, category) for category, ids in PROBLEMS.items() for pid in ids][::-1]
    table = pa.table({"problem_id": [pid for pid, _ in rows], "family": [c for _, c in rows]})
    from_table = DUMPSampler.from_table(table, category_column="family", seed=4)
    assert _run(from_table, 0, 10) == _run(DUMPSampler(PROBLEMS, seed=4), 0, 10)

    knobs = SECSampler.from_table(
        pa.table({"problem_id": ["p", "q"], "difficulty_knob": [3, 5]}), category_column="difficulty_knob"
    )
    assert knobs.categories == ("3", "5")
    assert knobs.category_of("q") == "5"


# --- input errors --------------------------------------------------------------------------------------------------


def test_update_with_an_unknown_category_names_it() -> None:
    sampler = SECSampler(PROBLEMS, seed=0)
    with pytest.raises(ValueError, match=r"unknown category 'algebrra'; did you mean 'algebra'\?"):
        sampler.update("algebrra", [1.0])
    with pytest.raises(ValueError, match="unknown category 'topology'.*available: algebra, geometry, logic"):
        sampler.update_from_rewards("topology", [1, 0], group_size=2)


@pytest.mark.parametrize(
    ("problems", "message"),
    [
        ({"algebra": ["a"], "geometry": []}, "category 'geometry' has no problems"),
        ({}, "non-empty mapping"),
        ({"algebra": ["a", "b"], "logic": ["b"]}, "problem id 'b' is listed in both 'algebra' and 'logic'"),
        ({"algebra": ["a", "a"]}, "problem id 'a' is listed twice in 'algebra'"),
        ({"algebra": "abc"}, "category 'algebra' must list problem ids"),
    ],
)
def test_bad_problem_sets_are_rejected_at_construction(problems: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DUMPSampler(problems, seed=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_below_one_or_not_an_integer_is_rejected(batch_size: object) -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1"):
        SECSampler(PROBLEMS, seed=0).sample(batch_size)  # type: ignore[arg-type]


def test_bad_advantages_and_unknown_problem_ids_are_named() -> None:
    sampler = DUMPSampler(PROBLEMS, seed=0)
    with pytest.raises(ValueError, match="no advantages given for category 'logic'"):
        sampler.update("logic", [])
    with pytest.raises(ValueError, match=r"advantages\[2\] = inf is not finite"):
        sampler.update("logic", [0.1, 0.2, float("inf")])
    with pytest.raises(ValueError, match="unknown problem id 'zzz'"):
        sampler.category_of("zzz")
    assert sampler.state_dict()["counts"] == {"algebra": 0, "geometry": 0, "logic": 0}  # rejected calls left no trace


@pytest.mark.parametrize(
    ("config_class", "fields"),
    [
        (SECConfig, {"temperature": 0.0}),
        (SECConfig, {"learning_rate": 1.5}),
        (SECConfig, {"alpha": 0.5}),
        (DUMPConfig, {"window_size": 0}),
        (DUMPConfig, {"temperature": float("inf")}),
        (DUMPConfig, {"exploration_weight": -1.0}),
    ],
)
def test_config_bounds_and_unknown_keys_are_rejected(config_class: type, fields: dict) -> None:
    with pytest.raises(ValidationError):
        config_class(**fields)


def test_wrong_config_type_and_bad_table_are_named() -> None:
    with pytest.raises(ConfigError, match="SECSampler needs a SECConfig, got DUMPConfig"):
        SECSampler(PROBLEMS, DUMPConfig(), seed=0)
    table = pa.table({"problem_id": ["a", "b"], "family": ["x", None]})
    with pytest.raises(ConfigError, match=r"no column 'famly'; did you mean 'family'\?"):
        SECSampler.from_table(table, category_column="famly")
    with pytest.raises(ConfigError, match="row 1 of the problems table has a null family"):
        SECSampler.from_table(table, category_column="family")


def test_incompatible_checkpoints_are_refused_and_change_nothing() -> None:
    sec = SECSampler(PROBLEMS, seed=0)
    _run(sec, 0, 3)
    with pytest.raises(ValueError, match="state is for method 'sec_v1', but this sampler is 'dump_v1'"):
        DUMPSampler(PROBLEMS, seed=0).load_state_dict(sec.state_dict())
    with pytest.raises(ValueError, match=r"different config \{'temperature': 1.0\}"):
        SECSampler(PROBLEMS, SECConfig(temperature=0.4), seed=0).load_state_dict(sec.state_dict())
    with pytest.raises(ValueError, match="different set of problems"):
        SECSampler({**PROBLEMS, "logic": ["log-0"]}, seed=0).load_state_dict(sec.state_dict())

    dump = DUMPSampler(PROBLEMS, DUMPConfig(window_size=2), seed=0)
    _run(dump, 0, 3)
    before = dump.state_dict()
    broken = json.loads(json.dumps(before))
    broken["windows"]["logic"] = [0.1, 0.2, 0.3]  # longer than the window
    with pytest.raises(ValueError, match="state\\['windows'\\]\\['logic'\\] holds more values"):
        dump.load_state_dict(broken)
    assert dump.state_dict() == before
