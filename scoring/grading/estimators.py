"""Pass-rate statistics from k successes in n rollouts (`../shared/methods.md` §1).

Wilson and Jeffreys intervals (§1.1), the Beta posterior and its equal-tailed credible interval as in CurES
(Zeng et al., arXiv 2510.01037; §1.2, §4), learnability p(1-p) (§1.3) and the exact expected |advantage| of a
GRPO group of size G with Bessel-corrected std (§1.4).
"""

from __future__ import annotations

import math

from scipy.stats import beta as beta_dist
from scipy.stats import betabinom, binom, norm


def wilson_interval(k: int, n: int, level: float = 0.90) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(1 - (1 - level) / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def jeffreys_interval(k: int, n: int, level: float = 0.90) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta_dist.ppf(a, k + 0.5, n - k + 0.5))
    hi = 1.0 if k == n else float(beta_dist.ppf(1 - a, k + 0.5, n - k + 0.5))
    return lo, hi


def beta_posterior(
    k: int, n: int, prior_alpha: float = 1.0, prior_beta: float = 1.0, level: float = 0.90
) -> tuple[float, float, float, float, float]:
    """(alpha, beta, mean, lo, hi) of Beta(prior_alpha + k, prior_beta + n - k); see `credible_interval`."""
    alpha, beta_ = prior_alpha + k, prior_beta + (n - k)
    lo, hi = credible_interval(k, n, (prior_alpha, prior_beta), level)
    return alpha, beta_, alpha / (alpha + beta_), lo, hi


def credible_interval(k: int, n: int, prior: tuple[float, float], level: float = 0.90) -> tuple[float, float]:
    """Posterior interval of Beta(α0 + k, β0 + n − k): equal-tailed, except that it reaches 0 when k = 0 and
    1 when k = n (one-sided at `level` there, the Jeffreys-interval convention of methods §1.1) — an
    equal-tailed interval would exclude the pass rate 0 that a never-solved problem keeps showing."""
    if n == 0:
        return 0.0, 1.0
    a, b = prior[0] + k, prior[1] + (n - k)
    if k == 0:
        return 0.0, float(beta_dist.ppf(level, a, b))
    if k == n:
        return float(beta_dist.ppf(1 - level, a, b)), 1.0
    tail = (1 - level) / 2
    return float(beta_dist.ppf(tail, a, b)), float(beta_dist.ppf(1 - tail, a, b))


def fresh_group_interval(
    k: int, n: int, prior: tuple[float, float], group: int, level: float = 0.90
) -> tuple[float, float]:
    """Central `level` range of the pass rate a fresh group of `group` rollouts would show, under the posterior
    predictive (beta-binomial). Unlike the credible interval for the true rate, this one is meant to contain a
    re-rollout's observed pass rate, which carries its own sampling noise."""
    if group <= 0:
        return 0.0, 1.0
    dist = betabinom(group, prior[0] + k, prior[1] + (n - k))
    tail = (1 - level) / 2
    return float(dist.ppf(tail)) / group, float(dist.ppf(1 - tail)) / group


def learnability(p: float) -> float:
    """Reward variance p(1-p): 0 at p in {0, 1}, 0.25 at p = 0.5."""
    return p * (1 - p)


def expected_abs_advantage(p: float, group_size: int) -> float:
    """E|A| over a GRPO group of `group_size` rollouts with Bessel-normalised advantages (methods §1.4, step 5)."""
    g = group_size
    if g < 2:
        return 0.0
    c_g = math.sqrt((g - 1) / g)
    total = 0.0
    for k in range(1, g):
        q = k / g
        total += float(binom.pmf(k, g, p)) * 2 * math.sqrt(q * (1 - q)) * c_g
    return total
