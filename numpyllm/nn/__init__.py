"""Layers and models as thin Modules around `numpyllm.functional` (`numpyllm.nn`).

  module.py      Module, Parameter, ModuleList
  layers.py      Linear, Embedding, LayerNorm, Dropout, ReLU, GELU, MLP (feed-forward)
  positional.py  sinusoidal, learned, RoPE, ALiBi positions
  attention.py   MultiHeadAttention (self and cross)
  kv_cache.py    the keys and values of earlier tokens, for decoding one token at a time
  residual.py    the residual connection with its layer norm (pre-LN or post-LN)
  heads.py       output heads: tied LM head, BERT's MLM head, pooling for classifiers
  inputs.py      a decoder's inputs checked: token ids, prefix / packed-segment masks
  gpt.py         GPTConfig, GPT (decoder-only; prefix decoder with prefix_lengths)
  llama.py       LlamaConfig, Llama (the LLaMA family: RMSNorm, SwiGLU, RoPE, grouped-query
                 attention; Qwen2's q/k/v biases, Mistral's sliding window)
  stack.py       what the encoder and decoder stacks share (embedding, positions, checks)
  encoder.py     Encoder, TransformerEncoderConfig, TransformerEncoderModel (encoder-only)
  decoder.py     Decoder (causal self-attention + cross-attention)
  transformer.py TransformerConfig, Transformer (encoder-decoder)
  classifier.py  ClassifierConfig, SequenceClassifier (a GPT or an encoder, pooled),
                 train_blocks (freeze all but the last blocks, final norm and head)
  vae.py         SentenceVAEConfig, SentenceVAE (a sentence VAE: the encoder to q(z|x), a
                 GPT decoder given z), reconstruct / sample_prior / interpolate / denoise,
                 posterior_stats (KL per dimension, active units)
  lora.py        LoRALinear, apply_lora, merge_lora / unmerge_lora, disable_lora: low-rank
                 adapters on any Linear

Every model takes ``(config, *, rng=None)``: the config (a dataclass, `to_dict` /
`from_dict`, dtype included) and a random generator or seed for the initial weights and
dropout.
"""
from .module import Module, ModuleList, Parameter  # noqa: F401
from .layers import (GELU, MLP, Dropout, Embedding, FeedForward, LayerNorm,  # noqa: F401
                     Linear, ReLU)
from .positional import (ALiBi, RotaryEmbedding, SinusoidalPositions,  # noqa: F401
                         alibi_bias, alibi_slopes, apply_rope, sinusoidal_table)
from .attention import MultiHeadAttention  # noqa: F401
from .heads import MLMHead  # noqa: F401
from .gpt import GPT, Block, GPTConfig  # noqa: F401
from .llama import Llama, LlamaConfig  # noqa: F401
from .encoder import (Encoder, EncoderLayer, TransformerEncoderConfig,  # noqa: F401
                      TransformerEncoderModel)
from .decoder import Decoder, DecoderLayer  # noqa: F401
from .transformer import Transformer, TransformerConfig  # noqa: F401
from .classifier import ClassifierConfig, SequenceClassifier, train_blocks  # noqa: F401
from .vae import SentenceVAE, SentenceVAEConfig  # noqa: F401
from .lora import (LoRALinear, apply_lora, disable_lora, enable_lora,  # noqa: F401
                   load_lora_state_dict, lora_layers, lora_state_dict, merge_lora,
                   unload_lora, unmerge_lora)
