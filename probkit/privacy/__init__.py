"""probkit.privacy: Bayesian estimation of differential privacy from membership-inference audits.

Implements Zanella-Béguelin et al. (2023), "Bayesian Estimation of Differential Privacy"
(ICML, arXiv:2206.05199): the posterior of epsilon given the false-positive and
false-negative counts of an attack, its frequentist baselines (Clopper-Pearson, Jeffreys,
Katz), privacy regions and trade-off curves, audits from raw attack scores (privacy curves with
credible bands, thresholds chosen on held-out calibration data), simulated audits and an
end-to-end DP-SGD audit.
"""
from probkit.privacy.bayes import (EpsilonPosterior, GDPPosterior, epsilon_density, epsilon_posterior,
                                   epsilon_posterior_cdf, gdp_posterior, rate_posteriors)
from probkit.privacy.counts import AuditCounts, counts_from_scores
from probkit.privacy.dpsgd import DPSGDAuditResult, DPSGDConfig, accountant_epsilon, dpsgd_audit, train_dpsgd_models
from probkit.privacy.frequentist import (clopper_pearson_epsilon, epsilon_confidence_interval, epsilon_lower_bound,
                                         rate_interval)
from probkit.privacy.mechanisms import (GaussianMechanism, LaplaceMechanism, RandomizedResponse, best_threshold,
                                        multi_sample_counts, simulate_counts, simulate_scores)
from probkit.privacy.regions import (claims_tradeoff, delta_from_rates, eps_delta_tradeoff, epsilon_from_rates,
                                     gaussian_tradeoff, gdp_delta, gdp_epsilon, gdp_mu, gdp_mu_from_rates,
                                     laplace_tradeoff, randomized_response_tradeoff, tradeoff_delta, tradeoff_epsilon)
from probkit.privacy.scores import ScoreAudit, audit_from_scores, roc_counts

__all__ = [
    # regions
    "epsilon_from_rates", "delta_from_rates", "gaussian_tradeoff", "laplace_tradeoff", "randomized_response_tradeoff",
    "eps_delta_tradeoff", "claims_tradeoff", "gdp_delta", "gdp_epsilon", "gdp_mu", "gdp_mu_from_rates",
    "tradeoff_epsilon", "tradeoff_delta",
    # Bayesian estimation
    "epsilon_posterior", "epsilon_posterior_cdf", "epsilon_density", "rate_posteriors", "EpsilonPosterior",
    "gdp_posterior", "GDPPosterior",
    # frequentist baselines
    "clopper_pearson_epsilon", "epsilon_lower_bound", "epsilon_confidence_interval", "rate_interval",
    # audits
    "AuditCounts", "audit_from_scores", "ScoreAudit", "roc_counts", "GaussianMechanism", "LaplaceMechanism",
    "RandomizedResponse", "simulate_scores", "simulate_counts", "counts_from_scores", "best_threshold",
    "multi_sample_counts", "accountant_epsilon", "DPSGDConfig", "DPSGDAuditResult", "train_dpsgd_models",
    "dpsgd_audit",
]
