"""Adversarial inputs: gradients with respect to the input (the vectors a model reads and
the token choices), attacks that use them, and training that resists them.

- `input_grad`: ∂L/∂inputs_embeds, ∂L/∂one-hot, first-order swap scores.
- `hotflip`: the fewest token swaps that flip a classifier (greedy or beam search).
- `embedding_attack`: PGD in embedding space (L2 or L∞ ball), for adversarial training
  (`numpyllm.training.objectives.AdversarialClassification`).
"""
from .input_grad import input_gradient, one_hot_gradient, swap_scores, token_table
from .hotflip import HotFlipResult, hotflip
from .embedding_attack import pgd, project

__all__ = ["input_gradient", "one_hot_gradient", "swap_scores", "token_table",
           "HotFlipResult", "hotflip", "pgd", "project"]
