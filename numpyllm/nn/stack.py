"""What the encoder and the decoder stacks of `numpyllm.nn.encoder`, `.decoder` and
`.transformer` share: the config checks, token ids and padding masks at the boundary,
the loss over the targets that count, and the stack itself.

**A stack** is token embedding (× √d_model) + positions + dropout, N layers, and the final
LayerNorm ``ln_f`` of pre-LN stacks (None for post-LN, whose last layer ends in one).

**Embeddings** are multiplied by √d_model (§3.4 of the paper) and initialised
N(0, 1/d_model), so the scaled embedding has unit variance, the scale of the sinusoidal
table it is added to (fairseq's choice).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..validation import (DTYPES, check_choice, check_fraction, check_positive_fields,
                          check_positive_number)
from .layers import Dropout, Embedding, LayerNorm
from .module import Module, ModuleList
from .positional import SinusoidalPositions

__all__ = ["NORMS", "ACTIVATIONS", "check_stack_config", "check_pad_id", "token_ids",
           "padding_of", "pad_fallback", "loss_over_counted", "Stack", "scaled_embedding",
           "sublayer_options"]

NORMS = ("post", "pre")
ACTIVATIONS = ("relu", "gelu")


# --------------------------------------------------------------------------- configs
def check_stack_config(cls: str, cfg) -> None:
    """The checks every encoder/decoder config shares: sizes, heads, dropout, choices."""
    check_positive_fields(cls, cfg, ("d_model", "n_head", "max_len"))
    if cfg.d_ff is None:
        cfg.d_ff = 4 * cfg.d_model
    check_positive_fields(cls, cfg, ("d_ff",))
    if cfg.d_model % cfg.n_head:
        raise ValueError(f"{cls}: d_model ({cfg.d_model}) must be divisible by n_head "
                         f"({cfg.n_head})")
    check_fraction(cls, "dropout", cfg.dropout)
    check_positive_number(cls, "layer_norm_eps", cfg.layer_norm_eps)
    check_choice(cls, cfg, {"norm": NORMS, "activation": ACTIVATIONS, "dtype": DTYPES})


def check_pad_id(cls: str, pad_id, vocabs: dict) -> None:
    if pad_id is None:
        return
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)):
        raise ValueError(f"{cls}.pad_id must be None or an integer token id, got {pad_id!r}")
    for name, size in vocabs.items():
        if not 0 <= pad_id < size:
            raise ValueError(f"{cls}.pad_id={pad_id} is outside [0, {name}={size})")


# --------------------------------------------------------------------------- inputs
def token_ids(ids, what: str, vocab_size: int, max_len: int) -> np.ndarray:
    """`ids` as an integer array [B, T] (T >= 1, every id in [0, vocab_size)), or a
    clear error naming `what`. The caller's array is not modified."""
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must hold integer token ids, got dtype {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"{what} must have shape [B, T] with B, T >= 1, got {arr.shape}")
    if arr.shape[1] > max_len:
        raise ValueError(f"{what} has length {arr.shape[1]}, longer than max_len={max_len} "
                         "(sinusoidal positions work at any length: raise max_len)")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= vocab_size:
        raise IndexError(f"{what}: token id {lo if lo < 0 else hi} is outside the vocabulary "
                         f"[0, {vocab_size})")
    return arr


def padding_of(shape: tuple, what: str, mask=None, lengths=None, fallback=None):
    """The key padding mask of a [B, T] sequence: bool [B, T], True at real tokens, or
    None when every token is real. From `mask` (bool [B, T]), else `lengths` ([B], right
    padding), else `fallback` (``ids != pad_id``, or None)."""
    B, T = shape
    if mask is not None and lengths is not None:
        raise ValueError(f"{what}: give a mask or lengths, not both")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"{what} lengths must have shape [B] = ({B},), got {lengths.shape}")
        valid = F.padding_mask(lengths, T)[:, 0, 0, :]          # [B, 1, 1, T] -> [B, T]
    elif mask is not None:
        valid = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if valid.dtype != bool or valid.shape != (B, T):
            raise ValueError(f"{what} mask must be bool [B, T] = {[B, T]} (True at real "
                             f"tokens), got {valid.dtype} {valid.shape}")
    else:
        valid = fallback
    return None if valid is None or valid.all() else valid


def pad_fallback(ids: np.ndarray, pad_id):
    return None if pad_id is None else ids != pad_id


def loss_over_counted(logits: Tensor, targets, valid, pad_id=None,
                      label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy over the targets that count: not -100, not `pad_id`, and (when
    `valid` is given) at a real input position."""
    B, T = logits.shape[:2]
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if t.shape != (B, T):
        raise ValueError(f"targets have shape {t.shape}; the logits need [B, T] = {[B, T]}")
    ignored = np.zeros(t.shape, dtype=bool)
    if pad_id is not None:
        ignored |= t == pad_id
    if valid is not None:
        ignored |= ~valid
    if ignored.any():
        t = np.where(ignored, -100, t)                  # a copy: the caller's array stays
    return F.cross_entropy(logits, t, ignore_index=-100, label_smoothing=label_smoothing)


# --------------------------------------------------------------------------- building
def scaled_embedding(vocab_size: int, d_model: int, rng, dtype) -> Embedding:
    # N(0, 1/d_model): times √d_model in the stack, unit variance (see the module doc)
    return Embedding(vocab_size, d_model, rng=rng, dtype=dtype, std=d_model ** -0.5)


def sublayer_options(cfg, n_sublayers: int, rng, dtype) -> dict:
    """The keyword arguments shared by a layer's attention and feed-forward blocks.

    Pre-LN adds every sub-layer's output to the residual stream unnormalised, so, as
    GPT-2 does, the projections into it start smaller: 0.02 / sqrt(n_sublayers)."""
    proj_std = 0.02 / math.sqrt(n_sublayers) if cfg.norm == "pre" else 0.02
    return dict(dropout=cfg.dropout, rng=rng, dtype=dtype, proj_std=proj_std)


class Stack(Module):
    """Token embedding (× √d_model) + positions + dropout, N layers, and the final
    LayerNorm ``ln_f`` of pre-LN stacks (None for post-LN, whose last layer ends in one)."""

    def __init__(self, cfg, embed: Embedding, layer_cls, n_layers: int, *, rng, dtype,
                 pos_embed: Embedding | None = None):
        super().__init__()
        self.d_model, self.max_len = cfg.d_model, cfg.max_len
        self.embed = embed
        self.pos_embed = pos_embed            # learned positions, or None: sinusoidal
        self.positions = SinusoidalPositions(cfg.d_model, dtype=dtype)
        self.drop = Dropout(cfg.dropout, rng=rng)
        self.layers = ModuleList(layer_cls(cfg, n_layers=n_layers, rng=rng, dtype=dtype)
                                 for _ in range(n_layers))
        self.ln_f = LayerNorm(cfg.d_model, cfg.layer_norm_eps, dtype=dtype) \
            if cfg.norm == "pre" else None

    def token_embeddings(self, ids: np.ndarray) -> Tensor:
        """``[B, T]`` checked ids -> ``embed(ids)·√d [B, T, C]``: the token lookup alone,
        what ``inputs_embeds`` stands for."""
        return self.embed(ids) * math.sqrt(self.d_model)

    def embed_tokens(self, ids, offset: int = 0, *, inputs_embeds=None) -> Tensor:
        """``[B, T]`` checked ids -> ``[B, T, C]``: ``embed(ids)·√d + PE[offset:offset+T]``,
        then dropout. (`offset` > 0: tokens that continue a sequence, as a decoder fed one
        new token at a time sees them.) With `ids` None, the checked ``inputs_embeds
        [B, T, C]`` stand in place of ``embed(ids)·√d``."""
        x = self.token_embeddings(ids) if inputs_embeds is None else inputs_embeds  # [B, T, C]
        T = x.shape[1]
        if self.pos_embed is not None:
            x = x + self.pos_embed(np.arange(offset, offset + T))   # + [T, C], learned
        else:
            x = x + self.positions(T, offset, dtype=x.dtype)    # + [T, C], a constant
        return self.drop(x)

    def finish(self, x: Tensor) -> Tensor:
        return x if self.ln_f is None else self.ln_f(x)
