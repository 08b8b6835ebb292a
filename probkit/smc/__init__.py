"""Sequential Monte Carlo: one generic Feynman-Kac particle engine and BlackJAX MCMC correctors.

See :mod:`probkit.smc.feynman_kac` for the model abstraction and a worked example.
"""
from probkit.smc import correctors
from probkit.smc.correctors import Corrector, MoveTarget, from_blackjax, hmc, langevin, mala, ula
from probkit.smc.feynman_kac import (RESAMPLING, FeynmanKacModel, Particle, SMCConfig, SMCState, StepInfo,
                                     WeightedParticles, check_history, finish, run_model, run_smc, smc_init, smc_step)

__all__ = [
    "FeynmanKacModel", "MoveTarget", "Particle", "SMCConfig", "SMCState", "StepInfo", "WeightedParticles", "RESAMPLING",
    "smc_init", "smc_step", "run_smc", "check_history",
    "correctors", "Corrector", "from_blackjax", "mala", "hmc", "langevin", "ula", "run_model", "finish",
]
