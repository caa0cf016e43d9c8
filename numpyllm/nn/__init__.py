"""Layers and models as thin Modules around `numpyllm.functional` (`numpyllm.nn`).

  module.py      Module, Parameter, ModuleList
  layers.py      Linear, Embedding, LayerNorm, Dropout, ReLU, GELU, MLP (feed-forward)
  positional.py  sinusoidal, learned, RoPE, ALiBi positions
  attention.py   MultiHeadAttention (self and cross)
  gpt.py         GPTConfig, GPT (decoder-only)
  transformer.py TransformerConfig, Transformer (encoder-decoder),
                 TransformerEncoderConfig, TransformerEncoderModel (encoder-only)
"""
# Each module adds its public names here as it lands.
from .module import Module, ModuleList, Parameter  # noqa: F401
from .layers import (GELU, MLP, Dropout, Embedding, FeedForward, LayerNorm,  # noqa: F401
                     Linear, ReLU)
from .positional import (ALiBi, RotaryEmbedding, SinusoidalPositions,  # noqa: F401
                         alibi_bias, alibi_slopes, apply_rope, sinusoidal_table)
from .attention import MultiHeadAttention  # noqa: F401
from .gpt import GPT, Block, GPTConfig  # noqa: F401
from .transformer import (Decoder, DecoderLayer, Encoder, EncoderLayer,  # noqa: F401
                          Transformer, TransformerConfig, TransformerEncoderConfig,
                          TransformerEncoderModel)
