r"""Approximation-free ensemble posterior sampling with a diffusion prior.

Chen, Ren, Min, Ying, Izzo (2025), "Solving Inverse Problems via Diffusion-Based Priors: An
Approximation-Free Ensemble Sampling Approach", arXiv 2506.03979.

**Target path.** Prior marginals p_t of the forward process dX = f dt + g dW (f = f(t) x), a
likelihood path l_t with l_0 = l (:mod:`probkit.inverse.likelihoods`) and the unnormalised
posterior path q̃_t = p_t l_t; q̃_0 ∝ p_0(x) p(y | x) is the posterior.

**Proposal.** In generative time s = 1 - t, with s = ∇ log p_t (the score network),
u = ∇ log l_t and any noise level η ≥ 0,

    dx = [-f + (g² + η²)/2 · (s + u)] ds + η dW        (η = g: the modified reverse SDE).

**Weights.** The weighted particle measure equals q̃_t if log-weights grow at the rate given by
the generator formula r = ∂_s log q̃ + div v + v·∇log q̃ - (η²/2)(Δ log q̃ + ‖∇log q̃‖²).
p_t solves the forward Fokker-Planck equation, ∂_s log p = div f + f·s - (g²/2)(Δ log p + ‖s‖²);
substituting, div f cancels, f·s cancels, the Δ log p terms cancel
(-g²/2 + (g²+η²)/2 - η²/2 = 0) and so do all η² terms, leaving, **for every η**,

    r = ∂_s log l_t - f·u + (g²/2) Δ log l_t + g² ⟨s, u⟩ + (g²/2) ‖u‖²

(the weight rate of Chen et al.). Only the score s is a network call; u, Δ log l_t and
∂_s log l_t = -∂_t log l_t come from the likelihood path (closed form or autodiff), so a step
costs **one** score evaluation — no gradient through the network, unlike DPS and TDS.

**Discretisation (issue 11).** Chen et al.'s weights, log G_k = h · r(x_k, t_k)
(``weights="rate"``), are a left-point quadrature of ∫ r ds that does not telescope: its error
is O(h) per unit time with constants that grow with ‖u‖² and Δ log l_t as the likelihood
sharpens, and inside exp() it biases the evidence *upwards* (+0.3 to +11 nats at 50-200 steps
on mixture problems; a stochastic Hutchinson Laplacian adds a further Jensen bias). By Itô's
formula, for η = g, ∫ r ds = log l_{t'}(x') - log l_t(x) - ∫ (g²/2)‖u‖² ds - ∫ g u·dW, i.e. the
telescoped likelihood plus the Girsanov log-density ratio of the prior reverse chain to the
guided one. Its exact discrete counterpart (``weights="transition"``, the default) is

    log G_k = log l_{t_{k+1}}(x_{k+1}) - log l_{t_k}(x_k) + log K(x_{k+1} | x_k) - log Q(x_{k+1} | x_k),

K the prior chain's Gaussian kernel (Euler-Maruyama with noise η·g, or DDPM / DDIM with
``eta_ddim`` > 0) driven by s, Q the same kernel driven by s + u. These weights are exact for the
discretised prior chain, so the only time-discretisation error left is that of *unconditional*
sampling with the same kernel (which vanishes as h → 0): the sampler stays consistent in N and
steps and needs no Laplacian at all. ``proposal="adapted"`` samples K · l_{t'} exactly (Gaussian
path) with weight ∫ K l_{t'} / l_t.

**Twist (the choice of likelihood path).** The flat-prior Gaussian path l_t(x) ignores the
prior's shrinkage of x_0 given x_t; on multimodal priors its intermediate targets p_t l_t are far
from the posterior's noised marginals and the weights are heavy-tailed (log p(y) seed spread
0.3-0.8 nat that does not fall with N). ``twist="denoised"`` (the default of :func:`ensemble`)
evaluates the path's likelihood at Tweedie's denoised estimate, l̃_t(x) = l_t^{path}(x̂_0(x)),
x̂_0 = (x + σ_t² s(x, t))/α_t (Gaussian path: N(y; A x̂_0, s_y² I + c r_t² A Aᵀ), the TDS
twist), using the score that the next step needs anyway (cached in the particle), so a step
still costs **one** score evaluation and no gradient through the network: the proposal's
guidance is ∇ log l̃ with ∂x̂_0/∂x ≈ I/α_t, and the transition weights make any guidance exact.
The last step targets p_{t_min} · l exactly (l̃_0 = l at x), so ``log_evidence`` estimates
log ∫ p_{t_min}(x) l(x) dx ≈ log p(y).

**Start.** For the Gaussian path q̃_1 ∝ N(0, v I) l_1 is Gaussian and sampled exactly
(v = ``process.prior_scale()²``); otherwise particles start from N(0, v I) with weight l_1. If
the exact noised prior log density ``logdensity_fn`` is given, the start is reweighted by
p_1 / N(0, v I) and Metropolis-adjusted correctors (``probkit.smc.mala``/``hmc``) become
available.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from probkit import _checks
from probkit.diffusion.schedules import Process, time_grid
from probkit.diffusion.sde import ancestral_kernel, check_score_output, denoise, euler_maruyama_kernel
from probkit.inverse.likelihoods import Likelihood, LikelihoodPath, make_path
from probkit.smc.correctors import MoveTarget
from probkit.smc.feynman_kac import FeynmanKacModel, Particle, WeightedParticles, finish, make_config, run_model
from probkit._jit import filter_jit

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

__all__ = ["ensemble_model", "ensemble", "ENSEMBLE_INTEGRATORS"]

ENSEMBLE_INTEGRATORS = ("euler_maruyama", "ddpm", "ddim")


def weight_rate(process: Process, x: Array, t: Array, score: Array, u: Array, dt_log_l: Array, lap: Array) -> Array:
    """r = -∂_t log l_t - f(t)⟨x, u⟩ + (g²/2) Δ log l_t + g²⟨s, u⟩ + (g²/2)‖u‖² (one particle)."""
    g2 = process.diffusion(t) ** 2
    return (-dt_log_l - process.drift_coef(t) * jnp.sum(x * u) + 0.5 * g2 * lap
            + g2 * jnp.sum(score * u) + 0.5 * g2 * jnp.sum(u * u))


WEIGHTS = ("auto", "transition", "rate")
PROPOSALS = ("guided", "adapted")
TWISTS = ("path", "denoised")


def _kernel_coefs(process: Process, integrator: str, eta: float, eta_ddim: float, x: Array, t: Array, t_next: Array):
    """The prior chain's Gaussian kernel x' ~ N(b + c·score, var I) of one step t -> t_next:
    ``(b, c, var)`` with the mean affine in the score (so the guided mean is b + c (s + u))."""
    if integrator == "euler_maruyama":
        b, c, std = euler_maruyama_kernel(process, x, t, t - t_next, eta * process.diffusion(t))
    else:
        b, c, std = ancestral_kernel(process, x, t, t_next, 1.0 if integrator == "ddpm" else eta_ddim)
    return b, c, std**2


def ensemble_model(
    process: Process,
    score_fn: ScoreFn,
    path: LikelihoodPath,
    shape: tuple[int, ...],
    *,
    integrator: str = "euler_maruyama",
    eta: float = 1.0,
    eta_ddim: float = 0.0,
    weighted: bool = True,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    t_start: float = 1.0,
    weights: str = "auto",
    proposal: str = "guided",
    t_end: float | None = None,
    twist: str = "path",
) -> tuple[FeynmanKacModel, MoveTarget]:
    """The Feynman-Kac model of the posterior path p_t l_t (module docstring) and the
    :class:`~probkit.smc.MoveTarget` of its correctors. Particles are
    :class:`~probkit.smc.Particle`; ``weighted=False`` gives the same guided proposal without weights.

    ``weights``: ``"auto"`` (``"transition"`` unless the kernel is noiseless and the proposal
    guided), ``"transition"`` (telescoped log l_t plus the exact log-ratio of the prior
    chain's Gaussian kernel to the proposal's; needs a noisy kernel) or ``"rate"`` (Chen et
    al.'s continuous-time rate × h). ``proposal``: ``"guided"`` (the kernel with score s + u)
    or ``"adapted"`` (the kernel times l_{t'} sampled exactly; needs ``path.propose``).
    ``t_end``: the last grid time; the step that reaches it targets p_{t_end} · l (the exact
    likelihood, l_0) instead of p_{t_end} l_{t_end}, so ``log_evidence`` estimates
    log ∫ p_{t_end}(x) l(x) dx.
    """
    shape = tuple(int(s) for s in shape)
    dtype = jnp.result_type(float)
    var0 = float(process.prior_scale()) ** 2
    t0 = jnp.asarray(t_start, dtype)
    grads = jax.value_and_grad(path.loglikelihood_fn, argnums=(0, 1))
    _checks.choice("weights", weights, WEIGHTS)
    _checks.choice("proposal", proposal, PROPOSALS)
    _checks.choice("twist", twist, TWISTS)
    noiseless = (integrator == "euler_maruyama" and eta == 0) or (integrator == "ddim" and eta_ddim == 0)
    if weights == "auto":
        weights = "rate" if (noiseless and proposal == "guided") else "transition"
    if twist == "denoised" and (path.denoised_loglikelihood_fn is None or weights == "rate" or proposal != "guided" or not weighted):
        raise ValueError("`twist='denoised'` needs a path with `denoised_loglikelihood_fn`, transition weights, the guided proposal and weighted=True")
    if proposal == "adapted" and path.propose is None:
        raise ValueError(f"`proposal='adapted'` needs a likelihood path with an exact `propose` (the 'gaussian' path); {path.name!r} has none")
    if weighted and weights == "transition" and proposal == "guided" and noiseless:
        raise ValueError("`weights='transition'` needs a noisy kernel (eta > 0, or ddim with eta_ddim > 0); use weights='rate' or proposal='adapted'")

    def _t_eff(t_next):  # the last step targets the exact likelihood l = l_0
        return t_next if t_end is None else jnp.where(t_next <= t_end, jnp.zeros_like(t_next), t_next)

    def _twist(x, s, t, t_eff):
        """log l̃_t(x̂_0(x)) (t_eff = 0: the exact likelihood at x) and the proposal's guidance
        ∇_{x0} log l̃ / α_t (∂x̂_0/∂x ≈ I/α_t: no gradient through the score)."""
        x0 = denoise(process, x, s, t)
        lt, g = jax.value_and_grad(path.denoised_loglikelihood_fn)(x0, t)
        return jnp.where(t_eff == 0, path.loglikelihood_fn(x, t_eff), lt), g / process.alpha(t)

    def init(key):
        x = math.sqrt(var0) * jax.random.normal(key, shape, dtype)
        if twist == "denoised":
            s = score_fn(x, t0)
            log_tw, _ = _twist(x, s, t0, t0)
            log_w = log_tw if logdensity_fn is None else log_tw + logdensity_fn(x, t0) - process.prior_log_prob(x)
            return Particle(x, jnp.asarray(log_w, dtype), s.astype(dtype), log_tw.astype(dtype))
        x, log_w = path.init(key, t0, var0) if path.init is not None else (x, path.loglikelihood_fn(x, t0))
        if logdensity_fn is not None:
            log_w = log_w + logdensity_fn(x, t0) - process.prior_log_prob(x)
        return Particle(x.astype(dtype), jnp.asarray(log_w, dtype))

    def transition(key, t, t_next, p):
        x = p.x
        k_lap, k_move = jax.random.split(key)
        t_n = _t_eff(t_next)
        b, c, var = _kernel_coefs(process, integrator, eta, eta_ddim, x, t, t_next)
        if twist == "denoised":  # twisted proposal with the cached score
            s, log_l_x, u = p.score, p.log_l, _twist(x, p.score, t, t)[1]
        else:
            s = score_fn(x, t)
            if proposal == "adapted":  # locally optimal proposal x' ~ K(x, ·) l_{t'} / Z(x), weight Z(x) / l_t(x)
                x_new, log_z = path.propose(k_move, b + c * s, var, t_n)
                return Particle(x_new.astype(dtype), (log_z - path.loglikelihood_fn(x, t)).astype(dtype))
            log_l_x, (u, dt_log_l) = grads(x, t)
        # the prior chain's kernel (Euler-Maruyama, DDPM or DDIM) driven by the guided score s + u
        z = jax.random.normal(k_move, x.shape, x.dtype)
        x_new = b + c * (s + u) + jnp.sqrt(var) * z
        if weighted and weights == "transition":  # log N(x'; m_p, var) - log N(x'; m_q, var), m_q - m_p = c u
            log_ratio = -(jnp.sum(z * c * u) / jnp.sqrt(var) + 0.5 * jnp.sum((c * u) ** 2) / var)
        if twist == "denoised":  # weight l̃_{t'}(x') K / (Q l̃_t(x)), caching the score and twist at x'
            s_new = score_fn(x_new, t_next)
            log_tw, _ = _twist(x_new, s_new, t_next, t_n)
            return Particle(x_new.astype(dtype), (log_tw - log_l_x + log_ratio).astype(dtype), s_new.astype(dtype),
                            log_tw.astype(dtype))
        if not weighted:
            log_g = jnp.zeros((), dtype)
        elif weights == "rate":
            log_g = (t - t_next) * weight_rate(process, x, t, s, u, dt_log_l, path.laplacian(k_lap, x, t))
            if t_end is not None:
                log_g = log_g + jnp.where(t_n == 0, path.loglikelihood_fn(x_new, t_n) - path.loglikelihood_fn(x_new, t_next), 0.0)
        else:  # telescoped log l plus the kernels' log-ratio
            log_g = path.loglikelihood_fn(x_new, t_n) - log_l_x + log_ratio
        return Particle(x_new.astype(dtype), log_g.astype(dtype))

    def log_potential(t, t_next, prev, new):
        return new.log_g

    def _log_twist_at(x, t):
        # the intermediate target's likelihood factor at (x, t) (recomputes the score)
        if twist == "denoised":
            return _twist(x, score_fn(x, t), t, _t_eff(t))[0]
        return path.loglikelihood_fn(x, _t_eff(t))

    def target_logdensity(x, t):
        return logdensity_fn(x, t) + _log_twist_at(x, t)

    def target_score(x, t):
        return score_fn(x, t) + jax.grad(_log_twist_at)(x, t)

    def set_position(p, x, t):
        if twist == "denoised":  # refresh the cached score and log-twist of a moved particle
            s_new = score_fn(x, t)
            log_tw, _ = _twist(x, s_new, t, _t_eff(t))
            return p._replace(x=x, score=s_new.astype(dtype), log_l=log_tw.astype(dtype))
        return p._replace(x=x)

    return (FeynmanKacModel(init, transition, log_potential, (lambda p: p.log_g) if weighted else None),
            MoveTarget(None if logdensity_fn is None else target_logdensity, target_score, lambda p: p.x, set_position))


def validate_problem(process, score_fn, likelihood, num_steps):
    """The argument checks shared by the inverse samplers (ValueError naming the argument)."""
    if not isinstance(process, Process):
        raise ValueError(f"`process` must be a probkit.diffusion Process, got {type(process).__name__}")
    if not callable(score_fn):
        raise ValueError("`score_fn` must be a callable score_fn(x, t) for ONE particle")
    if not isinstance(likelihood, Likelihood):
        raise ValueError("`likelihood` must be a probkit.inverse Likelihood (inverse.gaussian(...) or inverse.from_numpyro(...))")
    _checks.positive_int("num_steps", num_steps)  # num_particles: make_config
    check_score_output(score_fn, jnp.zeros(likelihood.x_shape, jnp.result_type(float)))


@filter_jit
def _ensemble_run(key, process, score_fn, likelihood, likelihood_path, path_options, num_particles, ts, config,
                  model_options):
    options = dict(model_options)
    if options.get("t_end") == "grid":  # the last grid time (traced): the step reaching it targets p l
        options["t_end"] = ts[-1]
    with jax.ensure_compile_time_eval():  # constants of the model (prior scale, ...) stay concrete
        path = make_path(likelihood_path, likelihood, process, **path_options)
        model, target = ensemble_model(process, score_fn, path, likelihood.x_shape, **options)
    return run_model(key, model, num_particles, ts, config, nfe_per_step=1,
                     nfe_init=1 if options.get("twist") == "denoised" else 0, target=target)


def ensemble(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    likelihood: Likelihood,
    num_particles: int,
    num_steps: int,
    *,
    likelihood_path: str | LikelihoodPath = "gaussian",
    path_options: dict | None = None,
    integrator: str = "euler_maruyama",
    eta: float = 1.0,
    eta_ddim: float = 0.0,
    weighted: bool = True,
    grid: str = "uniform",
    t_min: float | None = None,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    twist: str | None = None,
    weights: str = "auto",
    proposal: str = "guided",
    **options,
) -> WeightedParticles:
    """Posterior samples of x given y with a diffusion prior, by the approximation-free weighted
    ensemble of Chen et al. (2025, arXiv 2506.03979), on the Feynman-Kac engine.

    Compiled once per configuration: the observation ``y``, the operator's arrays and the arrays
    inside ``score_fn`` / ``logdensity_fn`` (``jax.tree_util.Partial``) are traced, so a new
    observation of the same shape reuses the compiled program, and ``jax.vmap`` over ``y``
    solves a batch of problems in one program.

    Args:
      key: PRNG key.
      process: forward process of the prior's diffusion model.
      score_fn: prior score ``s(x, t)`` for ONE particle.
      likelihood: :func:`probkit.inverse.gaussian` or :func:`probkit.inverse.from_numpyro`.
      num_particles, num_steps: N and the number of grid steps (NFE = ``num_steps``, + 1 for the
        default denoised twist, which evaluates the score once at the start).
      likelihood_path: ``"gaussian"`` (linear-Gaussian likelihoods; exact start),
        ``"tempered"`` (any likelihood) or a :class:`~probkit.inverse.likelihoods.LikelihoodPath`.
      path_options: keyword arguments of the path (``{"c": 1.0}`` for the Gaussian path;
        ``schedule``, ``laplacian``, ``num_probes`` for the tempered one).
      integrator: ``"euler_maruyama"`` (noise ``eta`` · g), ``"ddpm"`` or ``"ddim"``
        (``eta_ddim``); the weights are the same for all (the rate is η-independent).
      weighted: ``False`` runs the guided proposal without weights (an ablation).
      grid, t_min: time grid (``probkit.diffusion.time_grid``).
      logdensity_fn: optional exact noised prior log density ``(x, t) -> log p_t(x)``: exact
        start weights and MALA/HMC correctors.
      twist: ``"denoised"`` (default: the path's likelihood at Tweedie's x̂_0(x), cached score,
        telescoped weights; NFE = ``num_steps`` + 1) or ``"path"`` (l_t(x) itself, Chen et
        al.'s path; the default when ``weights="rate"``, ``proposal="adapted"``,
        ``weighted=False`` or the kernel is noiseless).
      weights: ``"auto"``, ``"transition"`` (exact discrete weights) or ``"rate"`` (Chen et al.'s
        rate × h); see :func:`ensemble_model`.
      proposal: ``"guided"`` or ``"adapted"`` (exact kernel × l_{t'}; Gaussian path only).
      **options: the engine's options (:class:`probkit.smc.SMCConfig`: ``resampling``,
        ``ess_threshold``, ``corrector``, ``sharding``, ``progress``).

    Returns:
      :class:`probkit.smc.WeightedParticles` with ``particles`` of shape ``(N, *x_shape)``,
      ``nfe`` = score evaluations per particle, ``log_evidence`` ≈ log ∫ p_{t_min}(x) l(x) dx
      (≈ log p(y); with ``weights="rate"`` and ``twist="path"``: log ∫ p_{t_min} l_{t_min}).
    """
    validate_problem(process, score_fn, likelihood, num_steps)
    _checks.choice("integrator", integrator, ENSEMBLE_INTEGRATORS)
    eta = _checks.scalar("eta", eta, low=0.0)
    eta_ddim = _checks.scalar("eta_ddim", eta_ddim, low=0.0, high=1.0)
    if not isinstance(likelihood_path, LikelihoodPath):
        _checks.choice("likelihood_path", likelihood_path, ("gaussian", "tempered"))
    noiseless = (integrator == "euler_maruyama" and eta == 0) or (integrator == "ddim" and eta_ddim == 0)
    if twist is None:
        twist = "path" if (weights == "rate" or proposal == "adapted" or not weighted or noiseless) else "denoised"
    ts = time_grid(process, int(num_steps), grid, t_min=t_min)
    config = make_config(num_particles, ts, logdensity_fn is not None, **options)
    model_options = dict(integrator=integrator, eta=eta, eta_ddim=eta_ddim, weighted=bool(weighted),
                         logdensity_fn=logdensity_fn, weights=weights, proposal=proposal, twist=twist,
                         t_end=None if (weights == "rate" and twist == "path") else "grid")
    out, flags = _ensemble_run(key, process, score_fn, likelihood, likelihood_path, dict(path_options or {}),
                               int(num_particles), ts, config, model_options)
    return finish(out, flags)
