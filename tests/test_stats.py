"""The paired t-test against SciPy's values (hard-coded: SciPy is not a dependency)."""

from __future__ import annotations

import math

import pytest

from mgd_lightning.stats import paired_t_test, regularized_incomplete_beta, t_two_sided_p

# 2 * scipy.stats.t.sf(abs(t), df), scipy 1.x
SCIPY_P = [
    (0.5, 1, 0.7048327646991335),
    (2.0, 2, 0.18350341907227397),
    (3.1, 4, 0.03622111103743915),
    (-1.2, 9, 0.2607731973904615),
    (10.0, 30, 4.575251408229618e-11),
    (0.0, 5, 1.0),
]


@pytest.mark.parametrize(("t", "df", "expected"), SCIPY_P)
def test_two_sided_p_matches_scipy(t: float, df: int, expected: float) -> None:
    assert t_two_sided_p(t, df) == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_paired_t_test_matches_scipy_ttest_rel() -> None:
    # scipy.stats.ttest_rel([0.52, 0.55, 0.50], [0.50, 0.51, 0.49])
    result = paired_t_test([0.52, 0.55, 0.50], [0.50, 0.51, 0.49])
    assert result.n == 3
    assert result.mean == pytest.approx(0.07 / 3)
    assert result.std == pytest.approx(math.sqrt(((0.02 - 0.07 / 3) ** 2 + (0.04 - 0.07 / 3) ** 2
                                                  + (0.01 - 0.07 / 3) ** 2) / 2))
    assert result.t == pytest.approx(2.6457513110645903, rel=1e-9)
    assert result.p_value == pytest.approx(0.11808289631180315, rel=1e-9)
    # scipy.stats.ttest_rel([0.41, 0.43], [0.40, 0.40])
    result = paired_t_test([0.41, 0.43], [0.40, 0.40])
    assert result.t == pytest.approx(2.0, rel=1e-9)
    assert result.p_value == pytest.approx(0.29516723530086725, rel=1e-9)


def test_incomplete_beta_symmetry_and_known_values() -> None:
    assert regularized_incomplete_beta(0.3, 1.0, 1.0) == pytest.approx(0.3)  # uniform CDF
    assert regularized_incomplete_beta(0.3, 2.5, 4.0) == pytest.approx(
        1 - regularized_incomplete_beta(0.7, 4.0, 2.5), abs=1e-14)
    assert regularized_incomplete_beta(0.0, 2.0, 3.0) == 0.0
    assert regularized_incomplete_beta(1.0, 2.0, 3.0) == 1.0


def test_degenerate_cases_and_bad_arguments() -> None:
    one = paired_t_test([0.5], [0.4])
    assert one.mean == pytest.approx(0.1) and math.isnan(one.p_value) and one.std == 0.0
    same = paired_t_test([0.5, 0.6], [0.4, 0.5])
    assert same.t == math.inf and same.p_value == 0.0
    zero = paired_t_test([0.5, 0.6], [0.5, 0.6])
    assert math.isnan(zero.t) and zero.p_value == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_t_test([0.5, 0.6], [0.5])
    with pytest.raises(ValueError, match="`x` must be in"):
        regularized_incomplete_beta(1.5, 1.0, 1.0)
    with pytest.raises(ValueError, match="`df` must be positive"):
        t_two_sided_p(1.0, 0)
