"""The math of the transformer as plain functions on Tensors (`numpyllm.functional`).

Fused operations (softmax, log_softmax, cross_entropy, layer_norm, rms_norm, gelu,
silu_mul, embedding, dropout, scaled_dot_product_attention) are single graph nodes with a
hand-derived backward, written beside their forward: fewer Python calls, less memory, and
the derivation where a student can read it. Each is gradient-checked and compared with its
composition from primitives in the tests.

One concept per file:
  linear.py         linear (x @ W + b)
  lora.py           lora_linear (x W + b + s (m ⊙ x) A B, a low-rank adapter)
  activations.py    softmax, log_softmax, gelu, relu, silu, silu_mul (SwiGLU's gate)
  loss.py           cross_entropy
  sequence_logprob.py  sequence_logprob (a response's log-probability, masked, per row)
  dpo.py            dpo_loss (direct preference optimisation)
  distill.py        distill_loss (knowledge distillation: softened KL + cross-entropy)
  vae.py            gaussian_kl (closed form, free bits), reparameterize (a VAE's sample)
  normalization.py  layer_norm, rms_norm
  embedding.py      embedding (lookup with a scatter-add backward)
  dropout.py        dropout
  masks.py          causal, padding, prefix-LM and sliding-window attention masks
  attention.py      scaled_dot_product_attention
  flash_attention.py  its memory-efficient tiled kernels (``block_size=n``)
"""
# Each module adds its public names here as it lands.
from .linear import linear
from .lora import lora_linear
from .activations import gelu, log_softmax, relu, silu, silu_mul, softmax
from .embedding import embedding
from .loss import cross_entropy
from .sequence_logprob import sequence_logprob
from .dpo import dpo_loss
from .distill import distill_loss
from .vae import gaussian_kl, kl_per_dimension, reparameterize
from .normalization import layer_norm, rms_norm
from .dropout import dropout
from .masks import (causal_mask, combine_masks, padding_mask, prefix_lm_mask, segment_mask,
                    segment_positions, sliding_window_mask)
from .attention import scaled_dot_product_attention
