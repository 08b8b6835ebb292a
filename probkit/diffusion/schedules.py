"""Forward noising processes and generative time grids.

Every process is a linear SDE ``dX = f(t) X dt + g(t) dW`` on t in [0, 1] (t = 0 data,
t = 1 noise) with Gaussian transition ``X_t | X_0 ~ N(alpha_t X_0, sigma_t^2 I)``.

* :class:`VP` — variance preserving with linear beta(t) (Song et al. 2021, "Score-Based
  Generative Modeling through Stochastic Differential Equations", arXiv 2011.13456).
* :class:`VPCosine` — VP with the cosine alpha schedule of Nichol & Dhariwal 2021
  (arXiv 2102.09672), truncated at t_max = 0.9946 as in DPM-Solver (Lu et al. 2022).
* :class:`VE` — variance exploding, sigma_t^2 = sigma_min^2 ((sigma_max/sigma_min)^{2t} - 1)
  (the exact transition of Song et al.'s VE SDE, so that sigma_0 = 0).
* :class:`EDM` — Karras et al. 2022 (arXiv 2206.00364): alpha = 1, sigma(t) = sigma_max t;
  use it with the ``"edm"`` rho time grid.

Processes are frozen dataclasses: hashable, so they can be closed over or passed as static
arguments to ``jax.jit``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from probkit import _checks

Array = jax.Array

__all__ = ["Process", "VP", "VPCosine", "VE", "EDM", "time_grid", "GRIDS"]


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")


class Process:
    """Base class of linear forward processes ``dX = f(t) X dt + g(t) dW``.

    Subclasses define :meth:`alpha`, :meth:`sigma`, :meth:`drift_coef` and :meth:`diffusion`.
    """

    t_min: float = 1e-3

    # --- to implement -------------------------------------------------------------
    def alpha(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def drift_coef(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        """f(t) with drift f(x, t) = f(t) x; equals d log alpha_t / dt."""
        raise NotImplementedError

    def diffusion(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        """g(t) = sqrt(d sigma_t^2/dt - 2 f(t) sigma_t^2)."""
        raise NotImplementedError

    # --- derived ------------------------------------------------------------------
    def drift(self, x: ArrayLike, t: ArrayLike) -> Array:
        """Forward drift f(x, t) = f(t) x."""
        return self.drift_coef(t) * jnp.asarray(x)

    def div_drift(self, t: ArrayLike, dim: int) -> Array:
        """Divergence of the forward drift, ``dim * f(t)`` (constant in x)."""
        return dim * self.drift_coef(t)

    def log_snr(self, t: ArrayLike) -> Array:
        """lambda_t = log(alpha_t^2 / sigma_t^2), decreasing in t."""
        return 2.0 * (jnp.log(self.alpha(t)) - jnp.log(self.sigma(t)))

    def marginal_sample(self, key: Array, x0: ArrayLike, t: ArrayLike) -> Array:
        """One draw of x_t ~ N(alpha_t x0, sigma_t^2 I)."""
        x0 = jnp.asarray(x0)
        noise = jax.random.normal(key, x0.shape, dtype=x0.dtype if jnp.issubdtype(x0.dtype, jnp.floating) else None)
        return self.alpha(t) * x0 + self.sigma(t) * noise

    def prior_scale(self) -> Array:
        """Standard deviation of the reference distribution at t = 1, assuming unit-scale data."""
        return jnp.sqrt(self.alpha(1.0) ** 2 + self.sigma(1.0) ** 2)

    def prior_sample(self, key: Array, shape: tuple[int, ...]) -> Array:
        """Draws from N(0, (alpha_1^2 + sigma_1^2) I), the usual reference at t = 1."""
        return self.prior_scale() * jax.random.normal(key, shape)

    def prior_log_prob(self, x: ArrayLike, power: ArrayLike = 1.0) -> Array:
        """log N(x; 0, (v / power) I), v = ``prior_scale()²``: the reference at t = 1 (``power``
        B: the normalised N(0, v I)^B, the start of a geometric path with exponent sum B)."""
        x = jnp.asarray(x)
        var = self.prior_scale() ** 2 / power
        return -0.5 * (jnp.sum(x**2) / var + x.size * jnp.log(2 * jnp.pi * var))

    def t_from_log_snr(self, lam: ArrayLike, t_lo: float = 0.0, t_hi: float = 1.0) -> Array:
        """Inverse of :meth:`log_snr` by bisection (vectorised, jittable; 60 halvings)."""
        lam = jnp.asarray(lam, dtype=jnp.result_type(float))
        lo, hi = jnp.full_like(lam, t_lo), jnp.full_like(lam, t_hi)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            # log_snr decreases in t: if log_snr(mid) > lam the root lies above mid.
            above = self.log_snr(jnp.maximum(mid, 1e-12)) > lam
            return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

        lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
        return 0.5 * (lo + hi)


class _VPFamily(Process):
    """Variance-preserving processes: f(t) = -beta(t)/2 and g(t) = sqrt(beta(t)); subclasses
    define :meth:`beta` (with alpha and sigma consistent with it)."""

    def beta(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def drift_coef(self, t: ArrayLike) -> Array:
        return -0.5 * self.beta(t)

    def diffusion(self, t: ArrayLike) -> Array:
        return jnp.sqrt(self.beta(t))


class _VEFamily(Process):
    """Variance-exploding processes: alpha = 1 and f = 0, with ``sigma_min < sigma_max``
    (positive, checked by :meth:`_check_sigmas`); subclasses define sigma and g."""

    sigma_min: float
    sigma_max: float

    def _check_sigmas(self) -> None:
        _check_positive("sigma_min", self.sigma_min)
        _check_positive("sigma_max", self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"`sigma_max` ({self.sigma_max}) must exceed `sigma_min` ({self.sigma_min})")

    def alpha(self, t: ArrayLike) -> Array:
        return jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def drift_coef(self, t: ArrayLike) -> Array:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(float)))


@dataclasses.dataclass(frozen=True)
class VP(_VPFamily):
    """Variance-preserving process with beta(t) = beta_min + t (beta_max - beta_min).

    f(t) = -beta(t)/2, g(t) = sqrt(beta(t)), alpha_t = exp(-B(t)/2) with
    B(t) = beta_min t + (beta_max - beta_min) t^2 / 2, sigma_t^2 = 1 - alpha_t^2.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        _check_positive("beta_min", self.beta_min)
        _check_positive("beta_max", self.beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(f"`beta_max` ({self.beta_max}) must be >= `beta_min` ({self.beta_min})")

    def beta(self, t: ArrayLike) -> Array:
        return self.beta_min + jnp.asarray(t) * (self.beta_max - self.beta_min)

    def _int_beta(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t: ArrayLike) -> Array:
        return jnp.exp(-0.5 * self._int_beta(t))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.sqrt(-jnp.expm1(-self._int_beta(t)))

    def log_snr(self, t: ArrayLike) -> Array:
        b = self._int_beta(t)
        return -b - jnp.log(-jnp.expm1(-b))


@dataclasses.dataclass(frozen=True)
class VPCosine(_VPFamily):
    """VP process with alpha_t = cos(pi/2 (u + s)/(1 + s)) / cos(pi/2 s/(1 + s)), u = t * t_end.

    Nichol & Dhariwal 2021 (arXiv 2102.09672). t is rescaled by ``t_end`` = 0.9946 so that
    beta stays finite at t = 1 (the truncation DPM-Solver uses). beta(t) = -2 d log alpha/dt.
    """

    s: float = 0.008
    t_end: float = 0.9946
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        _check_positive("s", self.s)
        if not 0.0 < self.t_end < 1.0:
            raise ValueError(f"`t_end` must lie in (0, 1), got {self.t_end}")

    def _phase(self, t: ArrayLike) -> Array:
        return 0.5 * jnp.pi * (jnp.asarray(t) * self.t_end + self.s) / (1.0 + self.s)

    def alpha(self, t: ArrayLike) -> Array:
        return jnp.cos(self._phase(t)) / math.cos(0.5 * math.pi * self.s / (1.0 + self.s))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.sqrt(jnp.clip(1.0 - self.alpha(t) ** 2, 0.0, 1.0))

    def beta(self, t: ArrayLike) -> Array:
        return jnp.pi * self.t_end / (1.0 + self.s) * jnp.tan(self._phase(t))


@dataclasses.dataclass(frozen=True)
class VE(_VEFamily):
    """Variance-exploding process: alpha = 1, sigma_t^2 = sigma_min^2 (r^{2t} - 1), r = sigma_max/sigma_min.

    f = 0, g(t)^2 = d sigma_t^2/dt = 2 log(r) sigma_min^2 r^{2t} (Song et al. 2021).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        self._check_sigmas()

    @property
    def _log_r(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: ArrayLike) -> Array:
        return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * self._log_r * jnp.asarray(t)))

    def diffusion(self, t: ArrayLike) -> Array:
        return self.sigma_min * jnp.sqrt(2.0 * self._log_r) * jnp.exp(self._log_r * jnp.asarray(t))


@dataclasses.dataclass(frozen=True)
class EDM(_VEFamily):
    """EDM process (Karras et al. 2022, arXiv 2206.00364): alpha = 1, sigma(t) = sigma_max t.

    g(t)^2 = d sigma^2/dt = 2 sigma_max^2 t. ``sigma_min`` sets the end of generative grids
    (t_min = sigma_min / sigma_max) and ``rho`` the default exponent of the ``"edm"`` grid.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        self._check_sigmas()
        _check_positive("rho", self.rho)

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return self.sigma_min / self.sigma_max

    def sigma(self, t: ArrayLike) -> Array:
        return self.sigma_max * jnp.asarray(t)

    def diffusion(self, t: ArrayLike) -> Array:
        return self.sigma_max * jnp.sqrt(2.0 * jnp.asarray(t))


GRIDS = ("uniform", "quadratic", "log_snr", "edm")
GridKind = Literal["uniform", "quadratic", "log_snr", "edm"]


def time_grid(
    process: Process,
    num_steps: int,
    kind: GridKind = "uniform",
    t_min: float | None = None,
    t_max: float = 1.0,
    rho: float | None = None,
) -> Array:
    """Decreasing generative time grid ``t_max = t_0 > t_1 > ... > t_N = t_min``.

    * ``uniform``: equal steps in t.
    * ``quadratic``: t_i = t_min + (t_max - t_min) (1 - i/N)^2 (denser near the data).
    * ``log_snr``: equal steps in lambda_t = log(alpha^2/sigma^2) (DPM-Solver's choice).
    * ``edm``: Karras et al.'s rho grid on the noise-to-signal ratio
      r_i = (r_max^{1/rho} + i/N (r_min^{1/rho} - r_max^{1/rho}))^rho, r = sigma/alpha.

    ``t_max`` may be traced (jittable; e.g. per-particle start times under ``vmap``).
    """
    num_steps = _checks.positive_int("num_steps", num_steps)
    t_min = process.t_min if t_min is None else t_min
    if not _checks.is_traced(t_max) and not 0.0 <= t_min < t_max <= 1.0:  # t_max may be traced
        raise ValueError(f"need 0 <= `t_min` < `t_max` <= 1, got t_min={t_min}, t_max={t_max}")
    frac = jnp.linspace(0.0, 1.0, num_steps + 1)
    if kind == "uniform":
        return (t_max + (t_min - t_max) * frac).at[0].set(t_max).at[-1].set(t_min)
    if kind == "quadratic":
        return (t_min + (t_max - t_min) * (1.0 - frac) ** 2).at[0].set(t_max).at[-1].set(t_min)
    if kind in ("log_snr", "edm"):
        if t_min <= 0.0:
            raise ValueError(f"`t_min` must be > 0 for the {kind!r} grid (log-SNR is infinite at 0)")
        if kind == "log_snr":
            lam = process.log_snr(t_max) + (process.log_snr(t_min) - process.log_snr(t_max)) * frac
        else:
            rho = getattr(process, "rho", 7.0) if rho is None else rho
            r_max = jnp.exp(-0.5 * process.log_snr(t_max))
            r_min = jnp.exp(-0.5 * process.log_snr(t_min))
            r = (r_max ** (1 / rho) + frac * (r_min ** (1 / rho) - r_max ** (1 / rho))) ** rho
            lam = -2.0 * jnp.log(r)
        return process.t_from_log_snr(lam, 0.0, 1.0).at[0].set(t_max).at[-1].set(t_min)
    raise ValueError(f"`kind` (the samplers' `grid`) must be one of {GRIDS}, got {kind!r}")
