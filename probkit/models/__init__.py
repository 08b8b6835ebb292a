"""Score models: exact Gaussian mixtures, toy datasets, score networks, the digits model."""
from probkit.models.conditional import (ConditionalScoreConfig, conditional_score_fn, init_conditional_score_mlp,
                                        load_conditional_score_model, save_conditional_score_model,
                                        train_conditional_score_model)
from probkit.models.gmm import GaussianMixture
from probkit.models.nets import (ScoreMLPConfig, TrainResult, init_score_mlp, load_score_model, make_score_fn,
                                 save_score_model, score_mlp_apply, train_score_model)
from probkit.models.boltzmann import DW4, LJ13, DoubleWell, LennardJones
from probkit.models.toy import DATASETS, eight_gaussians_mixture, grid_mixture, make_dataset, random_mixture

__all__ = [
    "GaussianMixture",
    "ScoreMLPConfig", "TrainResult", "init_score_mlp", "score_mlp_apply", "make_score_fn",
    "train_score_model", "save_score_model", "load_score_model",
    "ConditionalScoreConfig", "init_conditional_score_mlp", "conditional_score_fn", "train_conditional_score_model",
    "save_conditional_score_model", "load_conditional_score_model",
    "LennardJones", "DoubleWell", "LJ13", "DW4",
    "DATASETS", "make_dataset", "eight_gaussians_mixture", "grid_mixture", "random_mixture",
]
# probkit.models.digits (sklearn's 8x8 digits and the pretrained score network) is imported on use.
