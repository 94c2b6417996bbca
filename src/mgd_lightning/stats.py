"""Paired comparisons over seeds: mean and spread of the differences, and a paired t-test.

The benchmark compares a method with its baseline on the same seeds, so the differences are
paired. :func:`paired_t_test` gives their mean, standard deviation (``n - 1`` denominator), the
t statistic and the two-sided p-value of Student's t distribution with ``n - 1`` degrees of
freedom, computed here with :func:`regularized_incomplete_beta` (no SciPy dependency; the tests
check it against SciPy's values).

Example:
    >>> result = paired_t_test([0.52, 0.55, 0.50], [0.50, 0.51, 0.49])
    >>> round(result.mean, 4), round(result.t, 4), round(result.p_value, 4)
    (0.0233, 2.6458, 0.1181)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["PairedTest", "paired_t_test", "regularized_incomplete_beta", "t_two_sided_p"]

_EPS = 1e-15
_TINY = 1e-300


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, for ``0 <= x <= 1``.

    Lentz's continued fraction (Numerical Recipes, ``betacf``), on the side of ``x`` where it
    converges fast; accurate to about 1e-14.

    Raises:
        ValueError: ``x`` outside ``[0, 1]`` or ``a``, ``b`` not positive.

    Examples:
        >>> round(regularized_incomplete_beta(0.5, 2.0, 2.0), 12)
        0.5
    """
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"`x` must be in [0, 1], got {x!r}")
    if not (a > 0 and b > 0):
        raise ValueError(f"`a` and `b` must be positive, got a={a!r}, b={b!r}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"the incomplete beta fraction did not converge (x={x}, a={a}, b={b})")


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom.

    Examples:
        >>> round(t_two_sided_p(2.0, 2), 6)
        0.183503
    """
    if not df > 0:
        raise ValueError(f"`df` must be positive, got {df!r}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / (df + t * t), df / 2, 0.5)


class PairedTest(NamedTuple):
    """The paired differences ``a - b`` of :func:`paired_t_test`."""

    n: int  # pairs
    mean: float  # mean difference
    std: float  # standard deviation of the differences (n - 1 denominator)
    t: float  # mean / (std / sqrt(n)); +-inf when every difference is the same non-zero value
    p_value: float  # two-sided, Student's t with n - 1 degrees of freedom; NaN when undefined


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` (e.g. MGD and labeled-only mIoU, seed by seed).

    Args:
        a: values of the method, one per seed.
        b: values of the baseline on the same seeds, in the same order.

    Returns:
        The :class:`PairedTest` of the differences ``a - b``. With fewer than two pairs the
        spread and the test are undefined: ``std`` 0, ``t`` and ``p_value`` NaN. Identical
        differences give ``t = ±inf`` and ``p = 0`` (or ``t`` NaN and ``p = 1`` when all are
        zero).

    Raises:
        ValueError: ``a`` and ``b`` differ in length, or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(
            f"a paired test needs two equally long, non-empty lists, got {len(a)} and {len(b)}"
        )
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return PairedTest(n, mean, 0.0, math.nan, math.nan)
    std = statistics.stdev(diffs)
    if std == 0.0:
        if mean == 0.0:
            return PairedTest(n, mean, std, math.nan, 1.0)
        return PairedTest(n, mean, std, math.copysign(math.inf, mean), 0.0)
    t = mean / (std / math.sqrt(n))
    return PairedTest(n, mean, std, t, t_two_sided_p(t, n - 1))
