"""Predicted lifetime value: BG/NBD for how often people buy, Gamma-Gamma for how much.

The likelihoods are Fader, Hardie and Lee's ("Counting your customers the easy way",
2005; "RFM and CLV", 2005), maximised with scipy on log-parameters so every parameter
stays positive. Inputs per customer, in one time unit (days or weeks): `frequency` (repeat
purchases), `recency` (age at the last purchase) and `age` (at the end of the period:
Fader's T).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1, logsumexp

Array = NDArray[np.float64]
# Parameters are fitted as logarithms within these bounds (e^±12): on data that cannot
# identify a parameter the search stops at a bound instead of running away.
LOG_BOUNDS = (-12.0, 12.0)


def _maximise(negative: Callable[[Array], float], size: int) -> tuple[Array, float]:
    """Minimise a negative log-likelihood over log-parameters: a simplex search to get
    near, then L-BFGS-B to polish."""
    bounds = [LOG_BOUNDS] * size
    rough = minimize(
        negative,
        np.zeros(size),
        method="Nelder-Mead",
        bounds=bounds,
        options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-8},
    )
    best = minimize(negative, rough.x, method="L-BFGS-B", bounds=bounds)
    return best.x, float(best.fun)


@dataclass(frozen=True)
class BetaGeo:
    """Fitted BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def expected_purchases(self, t: float, frequency: Array, recency: Array, age: Array) -> Array:
        """Expected purchases in the next `t` units, per customer."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x = frequency
        first = (a + b + x - 1) / (a - 1)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
        second = 1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp
        result: Array = first * second / self._dropout_term(x, recency, age)
        return result

    def probability_alive(self, frequency: Array, recency: Array, age: Array) -> Array:
        result: Array = 1.0 / self._dropout_term(frequency, recency, age)
        return result

    def _dropout_term(self, x: Array, recency: Array, age: Array) -> Array:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = a / (b + x - 1) * ((alpha + age) / (alpha + recency)) ** (r + x)
        result: Array = 1 + np.where(x > 0, ratio, 0.0)
        return result


def beta_geo_log_likelihood(params: Array, x: Array, tx: Array, age: Array) -> Array:
    """Each customer's log-likelihood under BG/NBD."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = (
            betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + tx)
        )
    dropped = np.where(x > 0, dropped, -np.inf)
    result: Array = common + logsumexp(np.stack([alive, dropped]), axis=0)
    return result


def fit_beta_geo(frequency: Array, recency: Array, age: Array) -> BetaGeo:
    x, tx, age_ = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    if len(x) == 0:
        raise ValueError("no customers to fit")

    def negative(log_params: Array) -> float:
        return -float(beta_geo_log_likelihood(np.exp(log_params), x, tx, age_).sum())

    log_params, value = _maximise(negative, 4)
    r, alpha, a, b = np.exp(log_params)
    return BetaGeo(float(r), float(alpha), float(a), float(b), -value)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters of spend per transaction."""

    p: float
    q: float
    v: float
    log_likelihood: float

    def expected_value(self, frequency: Array, monetary: Array) -> Array:
        """Expected mean spend per future transaction (the population mean for x = 0)."""
        p, q, v = self.p, self.q, self.v
        population = p * v / (q - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            individual = p * (v + frequency * monetary) / (p * frequency + q - 1)
        result: Array = np.where(frequency > 0, individual, population)
        return result


def gamma_gamma_log_likelihood(params: Array, x: Array, m: Array) -> Array:
    p, q, v = params
    result: Array = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )
    return result


def fit_gamma_gamma(frequency: Array, monetary: Array) -> GammaGamma:
    """Fit on repeat customers (frequency > 0) with their mean repeat spend."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise ValueError("no repeat customers to fit")

    def negative(log_params: Array) -> float:
        return -float(gamma_gamma_log_likelihood(np.exp(log_params), x, m).sum())

    log_params, value = _maximise(negative, 3)
    p, q, v = np.exp(log_params)
    return GammaGamma(float(p), float(q), float(v), -value)


def lifetime_value(
    purchases: BetaGeo,
    spend: GammaGamma,
    *,
    frequency: Array,
    recency: Array,
    age: Array,
    monetary: Array,
    months: int = 12,
    days_per_month: float = 30.0,
    monthly_discount: float = 0.01,
) -> Array:
    """Discounted value of each customer's expected purchases over the next `months`
    (time unit: days)."""
    value = spend.expected_value(frequency, monetary)
    total = np.zeros(len(frequency))
    previous = np.zeros(len(frequency))
    for month in range(1, months + 1):
        cumulative = purchases.expected_purchases(month * days_per_month, frequency, recency, age)
        total += (cumulative - previous) * value / (1 + monthly_discount) ** month
        previous = cumulative
    return total
