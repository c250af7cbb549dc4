"""One registry API for every pluggable, versioned thing (issue 21, item 3)."""

from __future__ import annotations

import pytest

from engines.errors import ConfigError
from scoring.curriculum.samplers import SAMPLERS, DUMPSampler, SECSampler
from scoring.curriculum.strategies import STRATEGIES, CurriculumConfig
from scoring.grading.band_filters import BAND_FILTERS, FilterConfig
from scoring.grading.verify import VERIFIER_VERSION, VERIFIERS, Verifier
from scoring.training.ablation import ARMS, AblationConfig
from synthesis.families import FAMILIES, Family
from synthesis.registry import Registry


def test_entries_are_versioned_and_unknown_names_get_suggestions() -> None:
    registry: Registry[object] = Registry("widget")

    @registry.register("round_robin", version="v3", description="takes turns")
    def round_robin() -> None: ...

    assert registry.get("round_robin") is round_robin
    assert registry.method("round_robin") == "round_robin_v3"
    assert registry.entry("round_robin").description == "takes turns"
    with pytest.raises(ConfigError, match="unknown widget 'round_robbin'; did you mean 'round_robin'"):
        registry.get("round_robbin")
    with pytest.raises(ValueError, match="already registered"):
        registry.add("round_robin", object())


def test_a_registry_with_a_base_refuses_other_classes() -> None:
    with pytest.raises(TypeError, match="not a subclass of Family"):
        FAMILIES.add("not_a_family", int)
    assert issubclass(FAMILIES.get("elementary"), Family)


def test_every_pluggable_kind_is_registered_and_its_method_is_the_stored_id() -> None:
    assert (
        CurriculumConfig(strategy="balanced_band").strategy_id
        == STRATEGIES.method("balanced_band")
        == ("balanced_band_v1")
    )
    assert BAND_FILTERS.method("odf_band") == "odf_band_v1"
    assert SAMPLERS.get("sec") is SECSampler and SAMPLERS.get("dump") is DUMPSampler
    assert SAMPLERS.method("sec") == SECSampler.method and SAMPLERS.method("dump") == DUMPSampler.method
    assert VERIFIERS.get("gradus_verify") is Verifier and VERIFIERS.method("gradus_verify") == VERIFIER_VERSION
    assert {"random", "sec", "balanced_band"} <= set(ARMS.names())
    for kind in (FAMILIES, STRATEGIES, BAND_FILTERS, SAMPLERS, VERIFIERS, ARMS):
        assert len(kind) >= 1 and all(kind.entry(name).description or kind is FAMILIES for name in kind)


@pytest.mark.parametrize(
    ("build", "typo", "suggestion"),
    [
        (lambda v: CurriculumConfig(strategy=v), "easy_to_hrad", "easy_to_hard"),
        (lambda v: FilterConfig(name=v), "odf_bnad", "odf_band"),
        (lambda v: AblationConfig(arms=(v,)), "randon", "random"),
    ],
)
def test_configs_name_the_close_match(build, typo: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        build(typo)
