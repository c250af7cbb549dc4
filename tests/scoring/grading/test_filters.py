"""Band filters over the difficulty table: boundaries, reasons, and that every row is accounted for."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from scoring.grading.band_filters import (
    BAND_FILTERS,
    FILTER_DECISIONS,
    FilterConfig,
    apply_filter,
    dapo_nonzero,
    odf_band,
    skywork_1_to_k_minus_1,
)
from scoring.schemas import DIFFICULTY, to_table


def _grades(counts: list[tuple[int, int]]) -> pa.Table:
    """A difficulty table with one row per (n, k), problem ids p00, p01, … in input order."""
    rows = [
        {
            "problem_id": f"p{i:02d}",
            "student_id": "s",
            "student_revision": "r1",
            "sampling_hash": "h",
            "verifier_version": "math_verify_v1",
            "n": n,
            "k": k,
            "pass_rate": k / n if n else 0.0,
            "post_mean": (k + 1) / (n + 2),
        }
        for i, (n, k) in enumerate(counts)
    ]
    return to_table(rows, DIFFICULTY)


def _reasons(counts: list[tuple[int, int]], config: FilterConfig) -> list[str]:
    return apply_filter(_grades(counts), config).column("reason").to_pylist()


def test_odf_band_is_inclusive_at_both_ends() -> None:
    config = FilterConfig(name="odf_band")
    counts = [(16, 3), (16, 4), (16, 8), (16, 12), (16, 13), (4, 1), (4, 3), (0, 0)]
    assert _reasons(counts, config) == ["below_band", "", "", "", "above_band", "", "", "ungraded"]


def test_odf_band_custom_band() -> None:
    config = FilterConfig(name="odf_band", lo=0.1, hi=0.9)
    assert _reasons([(10, 0), (10, 1), (10, 9), (10, 10)], config) == ["below_band", "", "", "above_band"]
    # A zero-width band keeps exactly that pass rate.
    point = FilterConfig(name="odf_band", lo=0.5, hi=0.5)
    assert _reasons([(8, 3), (8, 4), (8, 5)], point) == ["below_band", "", "above_band"]


def test_odf_band_uses_counts_not_posterior_mean() -> None:
    # k = 0 of 2 has posterior mean 0.25, inside the band; the observed pass rate 0 is not.
    assert _reasons([(2, 0)], FilterConfig(name="odf_band")) == ["below_band"]


def test_dapo_keeps_only_mixed_groups() -> None:
    config = FilterConfig(name="dapo_nonzero")
    counts = [(16, 0), (16, 1), (16, 15), (16, 16), (1, 0), (1, 1), (2, 1), (0, 0)]
    expected = ["all_wrong", "", "", "all_correct", "all_wrong", "all_correct", "", "ungraded"]
    assert _reasons(counts, config) == expected


def test_skywork_keeps_1_to_k_minus_1_and_flags_other_group_sizes() -> None:
    config = FilterConfig(name="skywork_1_to_k_minus_1")
    counts = [(16, 0), (16, 1), (16, 15), (16, 16), (8, 4), (32, 15), (0, 0)]
    reasons = _reasons(counts, config)
    assert reasons[:4] == ["never_solved", "", "", "always_solved"]
    assert reasons[4] == "wrong_group_size (n=8, expected 16)"
    assert reasons[5] == "wrong_group_size (n=32, expected 16)", "k=15 of 32 must not pass as 1 <= k <= 15"
    assert reasons[6] == "ungraded"
    small = FilterConfig(name="skywork_1_to_k_minus_1", group_size=4)
    assert _reasons([(4, 0), (4, 1), (4, 3), (4, 4), (16, 8)], small) == [
        "never_solved",
        "",
        "",
        "always_solved",
        "wrong_group_size (n=16, expected 4)",
    ]


@pytest.mark.parametrize("name", BAND_FILTERS.names())
def test_every_row_decided_once_in_order(name: str) -> None:
    counts = [(16, k) for k in range(17)] + [(0, 0), (4, 2), (16, 8)]
    grades = _grades(counts)
    decisions = apply_filter(grades, FilterConfig(name=name))
    assert decisions.schema == FILTER_DECISIONS
    assert decisions.num_rows == grades.num_rows
    assert decisions.column("problem_id").to_pylist() == grades.column("problem_id").to_pylist()
    assert set(decisions.column("filter").to_pylist()) == {BAND_FILTERS.method(name)}
    for row in decisions.to_pylist():
        assert row["kept"] == (row["reason"] == ""), row
        assert row["student_revision"] == "r1" and row["verifier_version"] == "math_verify_v1"
    # Key columns survive, and the ungraded row is dropped as such with no pass rate to mislead.
    ungraded = decisions.to_pylist()[17]
    assert (ungraded["kept"], ungraded["reason"], ungraded["pass_rate"]) == (False, "ungraded", None)
    assert decisions.to_pylist()[4]["pass_rate"] == pytest.approx(0.25)


def test_filters_agree_where_they_should() -> None:
    # With n = K every skywork keep is a DAPO keep and vice versa.
    for k in range(17):
        assert (dapo_nonzero(16, k) == "") == (skywork_1_to_k_minus_1(16, k) == "")
    assert odf_band(16, 4) == "" and odf_band(16, 4, lo=0.3) == "below_band"


def test_empty_table() -> None:
    decisions = apply_filter(_grades([]), FilterConfig(name="dapo_nonzero"))
    assert decisions.num_rows == 0 and decisions.schema == FILTER_DECISIONS


def test_corrupt_counts_and_missing_columns_raise() -> None:
    with pytest.raises(ValueError, match="k=5"):
        apply_filter(_grades([(4, 5)]), FilterConfig(name="dapo_nonzero"))
    with pytest.raises(ValueError, match="lacks columns"):
        apply_filter(_grades([(4, 2)]).drop_columns(["k"]), FilterConfig(name="dapo_nonzero"))


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="lo"):
        FilterConfig(name="odf_band", lo=0.8, hi=0.2)
    with pytest.raises(ValidationError):
        FilterConfig(name="odf_band", hi=1.5)
    with pytest.raises(ValidationError):
        FilterConfig(name="odf_band", lo=-0.1)
    with pytest.raises(ValidationError):
        FilterConfig(name="odf_band", band=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FilterConfig(name="curriculum")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FilterConfig(name="skywork_1_to_k_minus_1", group_size=1)
    config = FilterConfig(name="odf_band")
    with pytest.raises(ValidationError):
        config.lo = 0.5  # type: ignore[misc]
    assert FilterConfig(name="odf_band", lo=0.0, hi=1.0).hi == 1.0
