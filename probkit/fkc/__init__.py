"""Feynman-Kac correctors (Skreta et al. 2025, arXiv 2503.02819): annealing, products of experts
and geometric mixtures / classifier-free guidance of diffusion models, from scores only, on the
generic engine :mod:`probkit.smc`. See :mod:`probkit.fkc.recipes` for the mathematics."""
from probkit.fkc.recipes import anneal, cfg, fkc_model, geometric, product, weight_rate

__all__ = ["anneal", "product", "geometric", "cfg", "fkc_model", "weight_rate"]
