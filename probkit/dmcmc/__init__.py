"""Denoising MCMC (Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based Generative
Models", ICML, arXiv 2209.14593): Denoising Langevin Gibbs on the joint of data and noise level,
the denoising pass, and a learned noise-level estimator for score-only models.

* :func:`dlg` — the convenience function (chains, burn-in, thinning, denoising, NFE accounting),
  configured by :class:`NoiseGrid` (the t-move) and :class:`Denoise` (the denoising pass).
* :func:`build_kernel` — the ``init``/``step`` pair of one Gibbs chain; :func:`noise_scaled_step`
  — the step schedule ``scale * sigma_t^power`` for its x-move (a :mod:`probkit.smc` corrector).
* :func:`t_conditional_log_probs` — the exact conditional ``P(t_j | x)`` on the grid.
* :func:`train_noise_estimator` — a noise-level classifier (optax) for models without ``log p_t``.
* :func:`diagnostics`, ``DLGResult.to_inference_data`` — R-hat / ESS via ArviZ (lazy import).
"""
from probkit.dmcmc.dlg import Denoise, DLGDiagnostics, DLGResult, denoise_samples, diagnostics, dlg
from probkit.dmcmc.kernel import DLGInfo, DLGKernel, DLGState, build_kernel, noise_scaled_step
from probkit.dmcmc.noise_level import (NoiseEstimatorFit, NoiseGrid, NoiseLevelEstimator, noise_level_features,
                                       noise_level_log_probs, t_conditional_log_probs, train_noise_estimator)

__all__ = [
    "dlg", "Denoise", "NoiseGrid", "DLGResult", "DLGState", "DLGInfo", "DLGKernel", "DLGDiagnostics",
    "build_kernel", "noise_scaled_step", "denoise_samples", "diagnostics", "t_conditional_log_probs",
    "NoiseLevelEstimator", "NoiseEstimatorFit", "noise_level_features", "noise_level_log_probs",
    "train_noise_estimator",
]
