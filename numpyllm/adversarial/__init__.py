"""Adversarial inputs: gradients with respect to the input (the vectors a model reads and
the token choices), attacks that use them, and training that resists them.

- `input_grad`: ∂L/∂inputs_embeds, ∂L/∂one-hot, first-order swap scores.
- `suffix`, `gcg`, `random_search`: a suffix that makes a language model say a target
  (GCG, Zou et al. 2023), and its random-search baseline at the same budget.
- `hotflip`: the fewest token swaps that flip a classifier (greedy or beam search).
- `embedding_attack`: PGD in embedding space (L2 or L∞ ball), for adversarial training
  (`numpyllm.training.objectives.AdversarialClassification`).
"""
from .input_grad import input_gradient, one_hot_gradient, swap_scores, token_table
from .hotflip import HotFlipResult, hotflip
from .embedding_attack import pgd, project
from .gcg import gcg, gcg_candidates
from .random_search import random_candidates, random_search
from .suffix import AttackResult, SuffixTask, allowed_tokens

__all__ = ["input_gradient", "one_hot_gradient", "swap_scores", "token_table",
           "gcg", "gcg_candidates", "random_search", "random_candidates", "SuffixTask",
           "AttackResult", "allowed_tokens", "HotFlipResult", "hotflip", "pgd", "project"]
