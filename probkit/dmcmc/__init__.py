"""Denoising MCMC (Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based Generative
Models", ICML, arXiv 2209.14593): Denoising Langevin Gibbs on the joint of data and noise level,
the denoising pass, and a learned noise-level estimator for score-only models.

* :func:`dlg` — the convenience function (chains, burn-in, thinning, denoising, NFE accounting).
* :func:`build_kernel` — the ``init``/``step`` pair of one Gibbs chain.
* :func:`make_t_grid`, :func:`t_conditional_log_probs` — the noise-level grid and the exact
  conditional ``P(t_j | x)``.
* :func:`train_noise_estimator` — a noise-level classifier (optax) for models without ``log p_t``.
* :func:`diagnostics`, :func:`to_inference_data` — R-hat / ESS via ArviZ (lazy import).
"""
from probkit.dmcmc.dlg import (
    X_MOVES,
    DLGDiagnostics,
    DLGInfo,
    DLGKernel,
    DLGResult,
    DLGState,
    build_kernel,
    denoise_samples,
    diagnostics,
    dlg,
    to_inference_data,
)
from probkit.dmcmc.noise_level import (
    NoiseEstimatorFit,
    NoiseLevelEstimator,
    make_t_grid,
    noise_level_features,
    noise_level_log_probs,
    t_conditional_log_probs,
    train_noise_estimator,
)

__all__ = [
    "dlg", "DLGResult", "DLGState", "DLGInfo", "DLGKernel", "DLGDiagnostics", "X_MOVES",
    "build_kernel", "denoise_samples", "diagnostics", "to_inference_data",
    "make_t_grid", "t_conditional_log_probs", "NoiseLevelEstimator", "NoiseEstimatorFit",
    "noise_level_features", "noise_level_log_probs", "train_noise_estimator",
]
