"""probkit.privacy: Bayesian estimation of differential privacy from membership-inference audits.

Implements Zanella-Béguelin et al. (2023), "Bayesian Estimation of Differential Privacy"
(ICML, arXiv:2206.05199): the posterior of epsilon given the false-positive and
false-negative counts of an attack, its frequentist baselines (Clopper-Pearson, Jeffreys,
Katz), privacy regions and trade-off curves, simulated audits and an end-to-end DP-SGD audit.
"""
from probkit.privacy.audit import (
    AuditCounts,
    DPSGDAuditResult,
    DPSGDConfig,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    accountant_epsilon,
    best_threshold,
    counts_from_scores,
    dpsgd_audit,
    multi_sample_counts,
    simulate_counts,
    simulate_scores,
    train_dpsgd_models,
)
from probkit.privacy.bayes import (
    EpsilonPosterior,
    GDPPosterior,
    epsilon_posterior,
    epsilon_posterior_cdf,
    gdp_posterior,
    rate_posteriors,
)
from probkit.privacy.frequentist import (
    clopper_pearson_epsilon,
    epsilon_confidence_interval,
    epsilon_lower_bound,
    rate_interval,
)
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
    # regions
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
    # Bayesian estimation
    "epsilon_posterior",
    "epsilon_posterior_cdf",
    "rate_posteriors",
    "EpsilonPosterior",
    "gdp_posterior",
    "GDPPosterior",
    # frequentist baselines
    "clopper_pearson_epsilon",
    "epsilon_lower_bound",
    "epsilon_confidence_interval",
    "rate_interval",
    # audits
    "AuditCounts",
    "GaussianMechanism",
    "LaplaceMechanism",
    "RandomizedResponse",
    "simulate_scores",
    "simulate_counts",
    "counts_from_scores",
    "best_threshold",
    "multi_sample_counts",
    "accountant_epsilon",
    "DPSGDConfig",
    "DPSGDAuditResult",
    "train_dpsgd_models",
    "dpsgd_audit",
]
