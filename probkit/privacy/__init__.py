"""probkit.privacy: Bayesian estimation of differential privacy from membership-inference audits.

Implements Zanella-Béguelin et al. (2023), "Bayesian Estimation of Differential Privacy"
(ICML, arXiv:2206.05199): the posterior of epsilon given the false-positive and
false-negative counts of an attack, its frequentist baselines (Clopper-Pearson, Jeffreys,
Katz), privacy regions and trade-off curves, simulated audits and an end-to-end DP-SGD audit.
"""
from probkit.privacy.regions import (
    delta_from_rates,
    eps_delta_tradeoff,
    epsilon_from_rates,
    gaussian_tradeoff,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    laplace_tradeoff,
    randomized_response_tradeoff,
    tradeoff_delta,
    tradeoff_epsilon,
)

__all__ = [
    "epsilon_from_rates",
    "delta_from_rates",
    "gaussian_tradeoff",
    "laplace_tradeoff",
    "randomized_response_tradeoff",
    "eps_delta_tradeoff",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "tradeoff_epsilon",
    "tradeoff_delta",
]
