"""Adversarial inputs: gradients with respect to the input (the vectors a model reads and
the token choices), attacks that use them, and training that resists them.

- `input_grad`: ∂L/∂inputs_embeds, ∂L/∂one-hot, first-order swap scores.
"""
from .input_grad import input_gradient, one_hot_gradient, swap_scores, token_table

__all__ = ["input_gradient", "one_hot_gradient", "swap_scores", "token_table"]
