"""Inverse problems with diffusion priors: operators, likelihoods, the approximation-free
ensemble sampler (Chen et al. 2025, arXiv 2506.03979) and the DPS / twisted-SMC baselines.

All three samplers share one call signature, so one call compares them::

    from probkit import inverse
    lik = inverse.gaussian(inverse.operators.mask(observed), y, noise_std=0.05)
    for method in (inverse.ensemble, inverse.dps, inverse.twisted_smc):
        out = method(key, process, score_fn, lik, num_particles=1024, num_steps=200)
"""
from probkit.inverse import operators
from probkit.inverse.baselines import dps, dps_model, tds_model, twisted_smc
from probkit.inverse.ensemble import ensemble, ensemble_model
from probkit.inverse.likelihoods import (PATHS, Likelihood, LikelihoodPath, from_numpyro, gaussian, gaussian_path,
                                         tempered_path)
from probkit.inverse.operators import LinearOperator, blur, dense, downsample, from_function, gaussian_blur, mask

__all__ = [
    "operators", "LinearOperator", "mask", "downsample", "blur", "gaussian_blur", "dense", "from_function",
    "Likelihood", "LikelihoodPath", "gaussian", "from_numpyro", "gaussian_path", "tempered_path", "PATHS",
    "ensemble", "ensemble_model", "dps", "dps_model", "twisted_smc", "tds_model",
]
