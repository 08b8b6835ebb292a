"""Sequential Monte Carlo: one generic Feynman-Kac particle engine and BlackJAX MCMC correctors.

See :mod:`probkit.smc.feynman_kac` for the model abstraction and a worked example.
"""
from probkit.smc import correctors
from probkit.smc.correctors import Corrector, hmc, langevin, mala
from probkit.smc.feynman_kac import (
    RESAMPLING,
    FeynmanKacModel,
    SMCConfig,
    SMCState,
    StepInfo,
    WeightedParticles,
    check_history,
    run_smc,
    smc_init,
    smc_step,
)

__all__ = [
    "FeynmanKacModel", "SMCConfig", "SMCState", "StepInfo", "WeightedParticles", "RESAMPLING",
    "smc_init", "smc_step", "run_smc", "check_history",
    "correctors", "Corrector", "mala", "hmc", "langevin",
]
