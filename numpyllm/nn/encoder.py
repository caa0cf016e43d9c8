"""The encoder: bidirectional self-attention layers, and the encoder-only model
(BERT-style) built from them.

    ids [B, T] --embed·√d + positions--> --N × (self-attention, feed-forward)-->
              hidden [B, T, C] --head--> logits [B, T, n_outputs]

Every position sees every real position (the key padding mask hides the padded ones).
The encoder of the encoder-decoder (`numpyllm.nn.transformer`) is the same `Encoder`.

>>> import numpy as np
>>> cfg = TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=1,
...                                dropout=0.0, mlm_head=True)
>>> model = TransformerEncoderModel(cfg, rng=0)
>>> logits, loss = model(np.array([[5, 6, 7, 0]]), np.array([3]),
...                      targets=np.array([[-100, 6, -100, -100]]))
>>> logits.shape
(1, 4, 11)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor
from ..validation import ConfigDict, as_generator, check_positive_fields
from .attention import MultiHeadAttention
from .heads import MLMHead, output_logits
from .inputs import ids_or_embeds, input_embeds
from .layers import MLP, Embedding, LayerNorm, Linear
from .module import Module
from .residual import ResidualLayer
from .stack import (Stack, check_pad_id, check_stack_config, loss_over_counted, pad_fallback,
                    padding_of, scaled_embedding, sublayer_options, token_ids)

__all__ = ["EncoderLayer", "Encoder", "TransformerEncoderConfig", "TransformerEncoderModel"]

ENCODER_POSITIONS = ("sinusoidal", "learned")


class EncoderLayer(ResidualLayer):
    """Bidirectional self-attention, then the position-wise feed-forward network.

    ``forward(x [B, S, C], key_padding_mask=None [B, S] bool, True at real tokens)``
    -> ``[B, S, C]``. Parameters: ``self_attn`` (c_attn, c_proj), ``ln_1``, ``mlp``
    (c_fc, c_proj), ``ln_2``.
    """

    def __init__(self, cfg, *, n_layers: int = 1, rng=None, dtype=np.float32):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        kw = sublayer_options(cfg, 2 * n_layers, rng, dtype)
        eps = cfg.layer_norm_eps
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, **kw)
        self.ln_1 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, activation=cfg.activation, **kw)
        self.ln_2 = LayerNorm(cfg.d_model, eps, dtype=dtype)

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        x = self.residual(x, self.ln_1,
                          lambda h: self.self_attn(h, key_padding_mask=key_padding_mask))
        return self.residual(x, self.ln_2, self.mlp)


class Encoder(Stack):
    """The encoder stack: ``forward(src [B, S] checked ids, key_padding_mask=None
    [B, S] bool, True at real tokens)`` -> hidden states ``[B, S, C]``."""

    def __init__(self, cfg, embed: Embedding, n_layers: int, *, rng=None, dtype=np.float32,
                 pos_embed: Embedding | None = None):
        super().__init__(cfg, embed, EncoderLayer, n_layers, rng=rng, dtype=dtype,
                         pos_embed=pos_embed)

    def forward(self, src, key_padding_mask=None, *, inputs_embeds=None) -> Tensor:
        x = self.embed_tokens(src, inputs_embeds=inputs_embeds)
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.finish(x)


@dataclass
class TransformerEncoderConfig(ConfigDict):
    """The shape of an encoder-only model (`TransformerEncoderModel`).

    The defaults follow the paper's encoder. For a BERT-like model use
    ``positions="learned", activation="gelu", max_len=512, mlm_head=True``.

    - ``n_outputs``: the width of the output head; None means ``vocab_size`` (masked
      language modelling). Set it to the number of classes for token classification.
    - ``tie_embeddings``: the output head reuses the token embedding (needs
      ``n_outputs == vocab_size``).
    - ``mlm_head``: BERT's masked-LM head (`numpyllm.nn.heads.MLMHead`: dense, GELU,
      LayerNorm, then the tied embedding and a bias); needs ``n_outputs == vocab_size``.
    - ``positions``: ``"sinusoidal"`` (fixed) or ``"learned"`` (an Embedding of
      ``max_len`` positions, ``pos_embed``).
    - ``pad_id``: when set, the key padding mask is derived from it when none is given.
    - ``dtype``: "float32" for speed, "float64" for gradient checks.
    """

    vocab_size: int
    d_model: int = 512
    n_head: int = 8
    n_layers: int = 6
    d_ff: int | None = None
    dropout: float = 0.1
    max_len: int = 5000
    norm: str = "post"
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    positions: str = "sinusoidal"
    n_outputs: int | None = None
    tie_embeddings: bool = False
    mlm_head: bool = False
    pad_id: int | None = None
    dtype: str = "float32"

    def __post_init__(self):
        name = type(self).__name__
        check_positive_fields(name, self, ("vocab_size", "n_layers"))
        check_stack_config(name, self)
        if self.positions not in ENCODER_POSITIONS:
            raise ValueError(f"{name}.positions must be one of {ENCODER_POSITIONS}, "
                             f"got {self.positions!r}")
        if self.n_outputs is None:
            self.n_outputs = self.vocab_size
        check_positive_fields(name, self, ("n_outputs",))
        for flag in ("tie_embeddings", "mlm_head"):
            if getattr(self, flag) and self.n_outputs != self.vocab_size:
                raise ValueError(f"{name}: {flag}=True needs n_outputs == vocab_size, got "
                                 f"n_outputs={self.n_outputs}, vocab_size={self.vocab_size}")
        check_pad_id(name, self.pad_id, {"vocab_size": self.vocab_size})


class TransformerEncoderModel(Module):
    """An encoder-only model (BERT-style): token and position embeddings, a bidirectional
    encoder stack, an output head.

    ``model(ids [B, T], key_padding_mask=None, targets=None) -> (logits [B, T,
    n_outputs], loss or None)``. `key_padding_mask` is bool ``[B, T]`` (True at real
    tokens) or lengths ``[B]``; without it, it is derived from ``config.pad_id``.
    `targets` ``[B, T]``: -100 (and padded positions) count for nothing, as in masked
    language modelling. `encode` returns the hidden states ``[B, T, d_model]`` (for a
    classifier on position 0, say).

    Parameters: ``encoder.embed.weight``, ``encoder.pos_embed.weight`` (learned
    positions only), ``encoder.layers.{i}...``, ``encoder.ln_f`` (pre-LN only), and the
    head: ``head.weight``, ``head.bias`` (a Linear), nothing (``tie_embeddings``) or
    ``mlm_head.{dense,ln,bias}`` (``mlm_head``). Randomness (initialisation, dropout)
    comes from `rng`: a Generator or a seed.
    """

    def __init__(self, config: TransformerEncoderConfig, *, rng=None):
        super().__init__()
        if not isinstance(config, TransformerEncoderConfig):
            raise TypeError(f"TransformerEncoderModel takes a TransformerEncoderConfig, got "
                            f"{type(config).__name__}")
        self.config = cfg = config
        rng, dtype = as_generator(rng), np.dtype(cfg.dtype)
        embed = scaled_embedding(cfg.vocab_size, cfg.d_model, rng, dtype)
        # learned positions at the scale of the token embedding times √d_model (unit
        # variance), as the sinusoidal table is: at Embedding's default std of 0.02 they
        # were 50 times smaller and the model hardly learned to use them
        pos_embed = Embedding(cfg.max_len, cfg.d_model, rng=rng, dtype=dtype, std=1.0) \
            if cfg.positions == "learned" else None
        self.encoder = Encoder(cfg, embed, cfg.n_layers, rng=rng, dtype=dtype,
                               pos_embed=pos_embed)
        self.head = None if cfg.tie_embeddings or cfg.mlm_head else \
            Linear(cfg.d_model, cfg.n_outputs, rng=rng, dtype=dtype)
        self.mlm_head = MLMHead(cfg.d_model, cfg.vocab_size, eps=cfg.layer_norm_eps, rng=rng,
                                dtype=dtype) if cfg.mlm_head else None

    def _inputs(self, ids, key_padding_mask, inputs_embeds=None) -> tuple:
        """``(ids or None, key padding mask or None, inputs_embeds or None)``, checked."""
        cfg = self.config
        owner = "TransformerEncoderModel"
        ids_or_embeds(ids, inputs_embeds, owner)
        if ids is not None:
            ids = token_ids(ids, f"{owner}: ids", cfg.vocab_size, cfg.max_len)
            shape, fallback = ids.shape, pad_fallback(ids, cfg.pad_id)
        else:
            inputs_embeds = input_embeds(inputs_embeds, cfg.d_model, cfg.dtype, owner,
                                         cfg.max_len)
            shape, fallback = inputs_embeds.shape[:2], None    # no ids: no pad_id to read
        kpm = None if key_padding_mask is None else \
            np.asarray(key_padding_mask.data if isinstance(key_padding_mask, Tensor)
                       else key_padding_mask)
        lengths = kpm if kpm is not None and kpm.ndim == 1 else None
        mask = kpm if lengths is None else None
        return ids, padding_of(tuple(shape), f"{owner}: key_padding_mask", mask, lengths,
                               fallback), inputs_embeds

    def token_embeddings(self, ids) -> Tensor:
        """The token lookup alone, ``ids [B, T]`` -> ``embed(ids)·√d_model [B, T, C]``:
        what ``inputs_embeds`` stands for (positions are added after it)."""
        cfg = self.config
        ids = token_ids(ids, "TransformerEncoderModel: ids", cfg.vocab_size, cfg.max_len)
        return self.encoder.token_embeddings(ids)

    def encode(self, ids=None, key_padding_mask=None, *, inputs_embeds=None) -> Tensor:
        """``ids [B, T]`` (or ``inputs_embeds [B, T, d_model]``, see `token_embeddings`)
        -> hidden states ``[B, T, d_model]``."""
        ids, valid, tokens = self._inputs(ids, key_padding_mask, inputs_embeds)
        return self.encoder(ids, valid, inputs_embeds=tokens)

    def padding(self, ids=None, key_padding_mask=None, *, inputs_embeds=None):
        """The key padding mask `encode` uses: bool ``[B, T]`` or None (nothing padded)."""
        return self._inputs(ids, key_padding_mask, inputs_embeds)[1]

    def logits(self, hidden: Tensor) -> Tensor:
        """The output head: hidden states ``[..., C]`` -> ``[..., n_outputs]``."""
        if self.mlm_head is not None:
            return self.mlm_head(hidden, self.encoder.embed)
        return output_logits(hidden, self.encoder.embed, self.head)

    def forward(self, ids=None, key_padding_mask=None, targets=None, *, inputs_embeds=None):
        ids, valid, tokens = self._inputs(ids, key_padding_mask, inputs_embeds)
        logits = self.logits(self.encoder(ids, valid, inputs_embeds=tokens))
        loss = None if targets is None else loss_over_counted(logits, targets, valid)
        return logits, loss

    def extra_repr(self) -> str:
        c = self.config
        return (f"d_model={c.d_model}, n_head={c.n_head}, n_layers={c.n_layers}, "
                f"d_ff={c.d_ff}, norm={c.norm}, positions={c.positions}, "
                f"vocab={c.vocab_size}, n_outputs={c.n_outputs}")
