"""Score networks: re-exports the three modules this one was split into, so that
``probkit.models.nets`` imports keep working: :mod:`probkit.models.score_mlp` (the residual MLP
noise predictor), :mod:`probkit.models.training` (denoising score matching) and
:mod:`probkit.models.serialization` (pickle-free ``.npz`` + ``.json`` files).
"""
from __future__ import annotations

from probkit.models.score_mlp import (TIME_INPUTS, Array, Params, ScoreFn, ScoreMLPConfig, count_params,
                                      init_score_mlp, make_eps_fn, make_score_fn, param_template, score_mlp_apply)
from probkit.models.serialization import FORMAT_NAME, FORMAT_VERSION, load_score_model, read_metadata, save_score_model
from probkit.models.training import (TrainResult, TrainState, dsm_loss, dsm_train_init, make_dsm_train_step,
                                     make_optimizer, stratified_times, train_score_model)

__all__ = [
    "ScoreMLPConfig", "init_score_mlp", "score_mlp_apply", "make_eps_fn", "make_score_fn", "count_params",
    "param_template", "dsm_loss", "make_optimizer", "TrainState", "TrainResult", "dsm_train_init",
    "make_dsm_train_step", "train_score_model", "save_score_model", "load_score_model", "read_metadata",
    "stratified_times", "FORMAT_NAME", "FORMAT_VERSION", "TIME_INPUTS", "Array", "Params", "ScoreFn",
]
