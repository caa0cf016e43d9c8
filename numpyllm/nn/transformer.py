"""The original encoder-decoder Transformer ("Attention Is All You Need"), and an
encoder-only stack for BERT-style models.

    src [B, S] --embed·√d + PE--> --encoder layers--> memory [B, S, C]
    tgt [B, T] --embed·√d + PE--> --decoder layers (causal self-attn, cross-attn over
               memory, FFN)--> [B, T, C] --output projection--> logits [B, T, V]

Every sub-layer (self-attention, cross-attention, feed-forward) sits in a residual
connection with a layer norm, arranged as in the paper (``norm="post"``)::

    x = LayerNorm(x + Dropout(Sublayer(x)))

or, with ``norm="pre"`` (as GPT-2 and most later models; easier to train deep),
``x = x + Dropout(Sublayer(LayerNorm(x)))`` and a final LayerNorm ``ln_f`` after the
last layer of each stack. The dropout on a sub-layer's output lives inside the
sub-layer (`MultiHeadAttention.resid_dropout`, `MLP.dropout`); attention also drops
attention weights, as PyTorch's `nn.Transformer` does.

**Cross-attention**: the queries come from the decoder, the keys and values from the
encoder's output (the paper, §3.2.3; one of the study notes has this backwards). The
source padding mask hides padded source positions from the encoder's self-attention
and from every decoder layer's cross-attention, so what sits there changes nothing.

**Embeddings** are multiplied by √d_model (§3.4) and initialised N(0, 1/d_model), so
the scaled embedding has unit variance, the scale of the sinusoidal table it is added
to (fairseq's choice). With ``share_embeddings=True`` (one vocabulary for both sides)
the source embedding, the target embedding and the pre-softmax projection are one
matrix, listed once in `named_parameters` as ``encoder.embed.weight``.

>>> import numpy as np
>>> cfg = TransformerConfig(src_vocab_size=11, tgt_vocab_size=11, d_model=8, n_head=2,
...                         n_encoder_layers=1, n_decoder_layers=1, dropout=0.0, pad_id=0)
>>> model = Transformer(cfg, seed=0)
>>> src = np.array([[5, 6, 7, 0]])                  # one padded source sequence
>>> tgt_in, targets = np.array([[1, 7, 6]]), np.array([[7, 6, 5]])
>>> logits, loss = model(src, tgt_in, targets)
>>> logits.shape
(1, 3, 11)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from .attention import MultiHeadAttention
from .kv_cache import KVCache
from ..validation import ConfigDict, check_positive_fields
from .layers import MLP, Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList
from .positional import SinusoidalPositions

__all__ = ["TransformerConfig", "TransformerEncoderConfig", "EncoderLayer", "DecoderLayer",
           "Encoder", "Decoder", "Transformer", "TransformerEncoderModel"]

NORMS = ("post", "pre")
ACTIVATIONS = ("relu", "gelu")
ENCODER_POSITIONS = ("sinusoidal", "learned")


# --------------------------------------------------------------------------- configs
def _check_stack(cls: str, cfg) -> None:
    """The checks shared by both configs: sizes, heads, dropout, choices, pad_id."""
    check_positive_fields(cls, cfg, ("d_model", "n_head", "max_len"))
    if cfg.d_ff is None:
        cfg.d_ff = 4 * cfg.d_model
    check_positive_fields(cls, cfg, ("d_ff",))
    if cfg.d_model % cfg.n_head:
        raise ValueError(f"{cls}: d_model ({cfg.d_model}) must be divisible by n_head "
                         f"({cfg.n_head})")
    if isinstance(cfg.dropout, bool) or not isinstance(cfg.dropout, numbers.Real) \
            or not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"{cls}.dropout must be a number in [0, 1), got {cfg.dropout!r}")
    if not cfg.layer_norm_eps > 0:
        raise ValueError(f"{cls}.layer_norm_eps must be > 0, got {cfg.layer_norm_eps!r}")
    for name, allowed in (("norm", NORMS), ("activation", ACTIVATIONS)):
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{cls}.{name} must be one of {allowed}, got {getattr(cfg, name)!r}")


def _check_pad_id(cls: str, pad_id, vocabs: dict) -> None:
    if pad_id is None:
        return
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)):
        raise ValueError(f"{cls}.pad_id must be None or an integer token id, got {pad_id!r}")
    for name, size in vocabs.items():
        if not 0 <= pad_id < size:
            raise ValueError(f"{cls}.pad_id={pad_id} is outside [0, {name}={size})")


@dataclass
class TransformerConfig(ConfigDict):
    """The shape of an encoder-decoder Transformer. The defaults are the paper's base
    model (d_model 512, 8 heads, 6 + 6 layers, d_ff 2048, dropout 0.1, post-LN, ReLU).

    - ``d_ff``: the feed-forward width; None means ``4 * d_model``.
    - ``max_len``: the longest source or target sequence accepted (sinusoidal positions
      exist at any length: raise it freely).
    - ``share_embeddings``: one matrix for the source and target embeddings and the
      output projection (needs ``src_vocab_size == tgt_vocab_size``).
    - ``pad_id``: the padding token. When set, source and target padding masks are
      derived from it when none is given, and targets equal to it are ignored by the loss.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_head: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int | None = None
    dropout: float = 0.1
    max_len: int = 5000
    norm: str = "post"
    share_embeddings: bool = False
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    pad_id: int | None = None

    def __post_init__(self):
        name = type(self).__name__
        check_positive_fields(name, self, ("src_vocab_size", "tgt_vocab_size", "n_encoder_layers",
                                     "n_decoder_layers"))
        _check_stack(name, self)
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"{name}: share_embeddings=True needs one vocabulary, but "
                             f"src_vocab_size={self.src_vocab_size} != "
                             f"tgt_vocab_size={self.tgt_vocab_size}")
        _check_pad_id(name, self.pad_id, {"src_vocab_size": self.src_vocab_size,
                                          "tgt_vocab_size": self.tgt_vocab_size})


@dataclass
class TransformerEncoderConfig(ConfigDict):
    """The shape of an encoder-only model (`TransformerEncoderModel`).

    The defaults follow the paper's encoder. For a BERT-like model use
    ``positions="learned", activation="gelu", max_len=512``.

    - ``n_outputs``: the width of the output head; None means ``vocab_size`` (masked
      language modelling). Set it to the number of classes for token classification.
    - ``tie_embeddings``: the output head reuses the token embedding (needs
      ``n_outputs == vocab_size``).
    - ``positions``: ``"sinusoidal"`` (fixed) or ``"learned"`` (an Embedding of
      ``max_len`` positions, ``pos_embed``).
    - ``pad_id``: when set, the key padding mask is derived from it when none is given.
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
    pad_id: int | None = None

    def __post_init__(self):
        name = type(self).__name__
        check_positive_fields(name, self, ("vocab_size", "n_layers"))
        _check_stack(name, self)
        if self.positions not in ENCODER_POSITIONS:
            raise ValueError(f"{name}.positions must be one of {ENCODER_POSITIONS}, "
                             f"got {self.positions!r}")
        if self.n_outputs is None:
            self.n_outputs = self.vocab_size
        check_positive_fields(name, self, ("n_outputs",))
        if self.tie_embeddings and self.n_outputs != self.vocab_size:
            raise ValueError(f"{name}: tie_embeddings=True needs n_outputs == vocab_size, got "
                             f"n_outputs={self.n_outputs}, vocab_size={self.vocab_size}")
        _check_pad_id(name, self.pad_id, {"vocab_size": self.vocab_size})


# --------------------------------------------------------------------------- inputs
def _token_ids(ids, what: str, vocab_size: int, max_len: int) -> np.ndarray:
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


def _valid_mask(shape: tuple, what: str, mask=None, lengths=None, fallback=None):
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


def _pad_fallback(ids: np.ndarray, pad_id):
    return None if pad_id is None else ids != pad_id


def _loss(logits: Tensor, targets, valid, pad_id=None) -> Tensor:
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
    return F.cross_entropy(logits, t, ignore_index=-100)


# --------------------------------------------------------------------------- layers
class _ResidualLayer(Module):
    """A layer made of sub-layers, each in a residual connection with a layer norm."""

    pre_norm = False

    def residual(self, x: Tensor, norm: LayerNorm, sublayer) -> Tensor:
        """post-LN (the paper): ``norm(x + sublayer(x))``; pre-LN: ``x + sublayer(norm(x))``.
        The sub-layer's output dropout is inside the sub-layer."""
        if self.pre_norm:
            return x + sublayer(norm(x))
        return norm(x + sublayer(x))


def _sublayers(cfg, n_sublayers: int, rng, dtype) -> dict:
    """The keyword arguments shared by a layer's attention and feed-forward blocks.

    Pre-LN adds every sub-layer's output to the residual stream unnormalised, so, as
    GPT-2 does, the projections into it start smaller: 0.02 / sqrt(n_sublayers)."""
    proj_std = 0.02 / math.sqrt(n_sublayers) if cfg.norm == "pre" else 0.02
    return dict(dropout=cfg.dropout, rng=rng, dtype=dtype, proj_std=proj_std)


class EncoderLayer(_ResidualLayer):
    """Bidirectional self-attention, then the position-wise feed-forward network.

    ``forward(x [B, S, C], key_padding_mask=None [B, S] bool, True at real tokens)``
    -> ``[B, S, C]``. Parameters: ``self_attn`` (c_attn, c_proj), ``ln_1``, ``mlp``
    (c_fc, c_proj), ``ln_2``.
    """

    def __init__(self, cfg, *, n_layers: int = 1, rng=None, dtype=np.float32):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        kw = _sublayers(cfg, 2 * n_layers, rng, dtype)
        eps = cfg.layer_norm_eps
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, **kw)
        self.ln_1 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, activation=cfg.activation, **kw)
        self.ln_2 = LayerNorm(cfg.d_model, eps, dtype=dtype)

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        x = self.residual(x, self.ln_1,
                          lambda h: self.self_attn(h, key_padding_mask=key_padding_mask))
        return self.residual(x, self.ln_2, self.mlp)


class DecoderLayer(_ResidualLayer):
    """Causal self-attention, cross-attention over the encoder output, feed-forward.

    ``forward(x [B, T, C], memory [B, S, C], memory_mask=None [B, S], tgt_mask=None
    [B, T])`` -> ``[B, T, C]``; the masks are bool, True at real tokens. Parameters:
    ``self_attn`` (c_attn, c_proj), ``ln_1``, ``cross_attn`` (q_proj, kv_proj, c_proj),
    ``ln_2``, ``mlp`` (c_fc, c_proj), ``ln_3``.
    """

    def __init__(self, cfg, *, n_layers: int = 1, rng=None, dtype=np.float32):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        kw = _sublayers(cfg, 3 * n_layers, rng, dtype)
        eps = cfg.layer_norm_eps
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, causal=True, **kw)
        self.ln_1 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, cross=True, **kw)
        self.ln_2 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, activation=cfg.activation, **kw)
        self.ln_3 = LayerNorm(cfg.d_model, eps, dtype=dtype)

    def cross_attend(self, h: Tensor, memory: Tensor, memory_mask=None, cache=None) -> Tensor:
        """Queries from the decoder state `h`, keys and values from the encoder output
        `memory`. The only place the decoder reads `memory`: the keys and values
        (``cross_attn.kv_proj(memory)``) depend on the source alone, so with a `cache`
        (a `LayerKVCache`) they are computed on the first call and reused after."""
        return self.cross_attn(h, context=memory, key_padding_mask=memory_mask, cache=cache)

    def forward(self, x: Tensor, memory: Tensor, memory_mask=None, tgt_mask=None) -> Tensor:
        x = self.residual(x, self.ln_1,
                          lambda h: self.self_attn(h, key_padding_mask=tgt_mask))
        x = self.residual(x, self.ln_2, lambda h: self.cross_attend(h, memory, memory_mask))
        return self.residual(x, self.ln_3, self.mlp)

    def forward_cached(self, x: Tensor, memory: Tensor, memory_mask, cache,
                       cross_cache) -> Tensor:
        """`forward` for the new target tokens `x` only: self-attention reads and extends
        `cache`, cross-attention reuses `cross_cache` (both `LayerKVCache`)."""
        x = self.residual(x, self.ln_1, lambda h: self.self_attn(h, cache=cache))
        x = self.residual(x, self.ln_2,
                          lambda h: self.cross_attend(h, memory, memory_mask, cross_cache))
        return self.residual(x, self.ln_3, self.mlp)


# --------------------------------------------------------------------------- stacks
class _Stack(Module):
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

    def embed_tokens(self, ids: np.ndarray, offset: int = 0) -> Tensor:
        """``[B, T]`` checked ids -> ``[B, T, C]``: ``embed(ids)·√d + PE[offset:offset+T]``,
        then dropout. (`offset` > 0: tokens that continue a sequence, as a decoder fed one
        new token at a time sees them.)"""
        x = self.embed(ids) * math.sqrt(self.d_model)          # [B, T, C]
        T = ids.shape[1]
        if self.pos_embed is not None:
            x = x + self.pos_embed(np.arange(offset, offset + T))   # + [T, C], learned
        else:
            x = x + self.positions(T, offset, dtype=x.dtype)    # + [T, C], a constant
        return self.drop(x)

    def finish(self, x: Tensor) -> Tensor:
        return x if self.ln_f is None else self.ln_f(x)


class Encoder(_Stack):
    """The encoder stack: ``forward(src [B, S] checked ids, key_padding_mask=None
    [B, S] bool, True at real tokens)`` -> memory ``[B, S, C]``. Bidirectional: every
    position sees every real position."""

    def __init__(self, cfg, embed: Embedding, n_layers: int, *, rng=None, dtype=np.float32,
                 pos_embed: Embedding | None = None):
        super().__init__(cfg, embed, EncoderLayer, n_layers, rng=rng, dtype=dtype,
                         pos_embed=pos_embed)

    def forward(self, src: np.ndarray, key_padding_mask=None) -> Tensor:
        x = self.embed_tokens(src)
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.finish(x)


class Decoder(_Stack):
    """The decoder stack: ``forward(tgt [B, T] checked ids, memory [B, S, C],
    memory_mask=None [B, S], tgt_mask=None [B, T])`` -> ``[B, T, C]`` (before the output
    projection). Position t sees target positions <= t and every real source position."""

    def __init__(self, cfg, embed: Embedding, n_layers: int, *, rng=None, dtype=np.float32):
        super().__init__(cfg, embed, DecoderLayer, n_layers, rng=rng, dtype=dtype)

    def forward(self, tgt: np.ndarray, memory: Tensor, memory_mask=None,
                tgt_mask=None) -> Tensor:
        x = self.embed_tokens(tgt)
        for layer in self.layers:
            x = layer(x, memory, memory_mask, tgt_mask)
        return self.finish(x)

    def forward_cached(self, tgt: np.ndarray, memory: Tensor, memory_mask, cache) -> Tensor:
        """`forward` for the new target tokens `tgt` ``[B, T]``, which follow the
        ``cache.length`` tokens whose keys and values `cache` (a `KVCache` with cross
        caches) holds; `cache` is extended."""
        offset = cache.length
        cache.step(*tgt.shape)
        x = self.embed_tokens(tgt, offset)
        for layer, self_cache, cross_cache in zip(self.layers, cache.layers, cache.cross):
            x = layer.forward_cached(x, memory, memory_mask, self_cache, cross_cache)
        return self.finish(x)


def _generator(rng, seed) -> np.random.Generator:
    if rng is not None and seed is not None:
        raise ValueError("give rng or seed, not both")
    if rng is None:
        return np.random.default_rng(seed)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    return rng


def _embedding(vocab_size: int, d_model: int, rng, dtype) -> Embedding:
    # N(0, 1/d_model): times √d_model in the stack, unit variance (see the module doc)
    return Embedding(vocab_size, d_model, rng=rng, dtype=dtype, std=d_model ** -0.5)


# --------------------------------------------------------------------------- models
class Transformer(Module):
    """The encoder-decoder of "Attention Is All You Need".

    ``model(src, tgt_in, targets=None, *, src_mask=None, src_lengths=None,
    tgt_mask=None) -> (logits [B, T, tgt_vocab_size], loss or None)``

    - `src` ``[B, S]`` and `tgt_in` ``[B, T]``: integer token ids (the target shifted
      right, starting with BOS); `targets` ``[B, T]``: the next target token at each
      position. Targets equal to -100 or to ``config.pad_id`` count for nothing.
    - Source padding: `src_mask` (bool ``[B, S]``, True at real tokens) or `src_lengths`
      (``[B]``, right padding), else derived from ``config.pad_id``, else none.
      `tgt_mask` likewise for the target (derived from pad_id when not given; with right
      padding the causal mask already keeps real positions from seeing padding).

    The pieces, for decoding one token at a time::

        src_mask = model.source_mask(src, src_lengths=lengths)   # [B, S] or None
        memory = model.encode(src, src_mask)                     # once per source
        logits = model.decode(tgt_so_far, memory, src_mask)      # [B, T, V]

    Parameters: ``encoder.embed.weight``, ``encoder.layers.{i}.{self_attn,ln_1,mlp,
    ln_2}...``, ``decoder.embed.weight`` (absent when shared), ``decoder.layers.{i}.
    {self_attn,ln_1,cross_attn,ln_2,mlp,ln_3}...``, ``encoder.ln_f`` and
    ``decoder.ln_f`` (pre-LN only), ``lm_head.weight`` (absent when shared). Weights
    are ``[in, out]``. Randomness (initialisation, dropout) comes from `rng` or `seed`.
    """

    def __init__(self, config: TransformerConfig, *, rng: np.random.Generator | None = None,
                 seed: int | None = None, dtype=np.float32):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Transformer takes a TransformerConfig, got {type(config).__name__}")
        self.config = cfg = config
        rng = _generator(rng, seed)
        src_embed = _embedding(cfg.src_vocab_size, cfg.d_model, rng, dtype)
        tgt_embed = src_embed if cfg.share_embeddings else \
            _embedding(cfg.tgt_vocab_size, cfg.d_model, rng, dtype)
        self.encoder = Encoder(cfg, src_embed, cfg.n_encoder_layers, rng=rng, dtype=dtype)
        self.decoder = Decoder(cfg, tgt_embed, cfg.n_decoder_layers, rng=rng, dtype=dtype)
        self.lm_head = None if cfg.share_embeddings else \
            Linear(cfg.d_model, cfg.tgt_vocab_size, bias=False, rng=rng, dtype=dtype)

    # ------------------------------------------------------------------ pieces
    def _source(self, src, src_mask, src_lengths) -> tuple:
        """Checked source ids [B, S] and their key padding mask (or None)."""
        cfg = self.config
        ids = _token_ids(src, "Transformer: src", cfg.src_vocab_size, cfg.max_len)
        return ids, _valid_mask(ids.shape, "Transformer: src", src_mask, src_lengths,
                                _pad_fallback(ids, cfg.pad_id))

    def _target(self, tgt, tgt_mask, what: str) -> tuple:
        cfg = self.config
        ids = _token_ids(tgt, f"Transformer: {what}", cfg.tgt_vocab_size, cfg.max_len)
        return ids, _valid_mask(ids.shape, f"Transformer: {what}", tgt_mask, None,
                                _pad_fallback(ids, cfg.pad_id))

    def source_mask(self, src, src_mask=None, src_lengths=None):
        """The source key padding mask: bool ``[B, S]`` (True at real tokens), or None
        when nothing is padded. See the class doc for where it comes from."""
        return self._source(src, src_mask, src_lengths)[1]

    def encode(self, src, src_mask=None, src_lengths=None) -> Tensor:
        """``src [B, S]`` -> memory ``[B, S, d_model]``, the encoder's output."""
        return self.encoder(*self._source(src, src_mask, src_lengths))

    def decode(self, tgt, memory: Tensor, src_mask=None, src_lengths=None,
               tgt_mask=None) -> Tensor:
        """``tgt [B, T]`` and memory ``[B, S, C]`` -> logits ``[B, T, tgt_vocab_size]``.

        `src_mask` / `src_lengths` describe the source padding (`source_mask` gives it):
        decode cannot derive it from pad_id, having only the memory."""
        ids, tgt_valid = self._target(tgt, tgt_mask, "tgt")
        shape = np.shape(memory.data if isinstance(memory, Tensor) else memory)
        if len(shape) != 3 or shape[0] != ids.shape[0] or shape[2] != self.config.d_model:
            raise ValueError(f"Transformer.decode: memory must be [B, S, d_model] = "
                             f"[{ids.shape[0]}, S, {self.config.d_model}] for tgt of shape "
                             f"{ids.shape}, got {shape}")
        src_valid = _valid_mask(shape[:2], "Transformer: src", src_mask, src_lengths)
        return self.project(self.decoder(ids, memory, src_valid, tgt_valid))

    def new_cache(self, capacity: int = 64) -> KVCache:
        """An empty `KVCache` for `decode_cached` (self- and cross-attention caches for
        every decoder layer), with room for `capacity` target tokens (it grows)."""
        return KVCache(self.config.n_decoder_layers, capacity, cross=True)

    def decode_cached(self, tgt, memory: Tensor, cache: KVCache, src_mask=None,
                      src_lengths=None, *, last_only: bool = False) -> Tensor:
        """Logits ``[B, T, V]`` of the new target tokens `tgt` ``[B, T]``, the keys and
        values of the earlier ones being in `cache`, which is extended (inference only:
        no graph). The first call computes the cross-attention keys and values of
        `memory` (from `encode`) and the cache keeps them: the encoder output is read
        once per source. Equal to `decode` on the whole target (no target padding:
        decoding feeds real tokens only). ``last_only``: logits of the last position
        only (``[B, 1, V]``).

        >>> cfg = TransformerConfig(11, 11, d_model=8, n_head=2, n_encoder_layers=1,
        ...                         n_decoder_layers=1, dropout=0.0)
        >>> model = Transformer(cfg, seed=0)
        >>> memory = model.encode(np.array([[5, 6, 7]]))
        >>> cache = model.new_cache()
        >>> a = model.decode_cached(np.array([[1, 7]]), memory, cache)   # prefill
        >>> b = model.decode_cached(np.array([[6]]), memory, cache)      # one more
        >>> full = model.decode(np.array([[1, 7, 6]]), memory)
        >>> bool(np.allclose(b.data[:, -1], full.data[:, -1], atol=1e-6)), cache.length
        (True, 3)
        """
        cfg = self.config
        ids = _token_ids(tgt, "Transformer: tgt", cfg.tgt_vocab_size, cfg.max_len)
        if cache.length + ids.shape[1] > cfg.max_len:
            raise ValueError(f"Transformer.decode_cached: {cache.length} cached and "
                             f"{ids.shape[1]} new target tokens exceed max_len={cfg.max_len}")
        shape = np.shape(memory.data if isinstance(memory, Tensor) else memory)
        if len(shape) != 3 or shape[0] != ids.shape[0] or shape[2] != cfg.d_model:
            raise ValueError(f"Transformer.decode_cached: memory must be [B, S, d_model] = "
                             f"[{ids.shape[0]}, S, {cfg.d_model}] for tgt of shape "
                             f"{ids.shape}, got {shape}")
        src_valid = _valid_mask(shape[:2], "Transformer: src", src_mask, src_lengths)
        with no_grad():
            x = self.decoder.forward_cached(ids, memory, src_valid, cache)
            if last_only:
                x = x[:, -1:]                                   # [B, 1, C]
            return self.project(x)

    def project(self, x: Tensor) -> Tensor:
        """The pre-softmax projection: ``[..., C] -> [..., V]``, tied to the shared
        embedding (``x @ Eᵀ``) when ``share_embeddings``."""
        if self.lm_head is None:
            return x @ self.encoder.embed.weight.T          # [..., C] @ [C, V]
        return self.lm_head(x)

    # ------------------------------------------------------------------ forward
    def forward(self, src, tgt_in, targets=None, *, src_mask=None, src_lengths=None,
                tgt_mask=None):
        src_ids, src_valid = self._source(src, src_mask, src_lengths)
        tgt_ids, tgt_valid = self._target(tgt_in, tgt_mask, "tgt_in")
        if src_ids.shape[0] != tgt_ids.shape[0]:
            raise ValueError(f"Transformer: src has batch size {src_ids.shape[0]} "
                             f"(shape {src_ids.shape}) but tgt_in has {tgt_ids.shape[0]} "
                             f"(shape {tgt_ids.shape})")
        memory = self.encoder(src_ids, src_valid)
        logits = self.project(self.decoder(tgt_ids, memory, src_valid, tgt_valid))
        loss = None if targets is None else _loss(logits, targets, None, self.config.pad_id)
        return logits, loss

    def extra_repr(self) -> str:
        c = self.config
        return (f"d_model={c.d_model}, n_head={c.n_head}, layers={c.n_encoder_layers}+"
                f"{c.n_decoder_layers}, d_ff={c.d_ff}, norm={c.norm}, "
                f"vocab={c.src_vocab_size}->{c.tgt_vocab_size}, shared={c.share_embeddings}")


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
    positions only), ``encoder.layers.{i}...``, ``encoder.ln_f`` (pre-LN only),
    ``head.weight``, ``head.bias`` (absent when ``tie_embeddings``).
    """

    def __init__(self, config: TransformerEncoderConfig, *,
                 rng: np.random.Generator | None = None, seed: int | None = None,
                 dtype=np.float32):
        super().__init__()
        if not isinstance(config, TransformerEncoderConfig):
            raise TypeError(f"TransformerEncoderModel takes a TransformerEncoderConfig, got "
                            f"{type(config).__name__}")
        self.config = cfg = config
        rng = _generator(rng, seed)
        embed = _embedding(cfg.vocab_size, cfg.d_model, rng, dtype)
        pos_embed = Embedding(cfg.max_len, cfg.d_model, rng=rng, dtype=dtype) \
            if cfg.positions == "learned" else None
        self.encoder = Encoder(cfg, embed, cfg.n_layers, rng=rng, dtype=dtype,
                               pos_embed=pos_embed)
        self.head = None if cfg.tie_embeddings else \
            Linear(cfg.d_model, cfg.n_outputs, rng=rng, dtype=dtype)

    def _inputs(self, ids, key_padding_mask) -> tuple:
        cfg = self.config
        ids = _token_ids(ids, "TransformerEncoderModel: ids", cfg.vocab_size, cfg.max_len)
        kpm = None if key_padding_mask is None else \
            np.asarray(key_padding_mask.data if isinstance(key_padding_mask, Tensor)
                       else key_padding_mask)
        lengths = kpm if kpm is not None and kpm.ndim == 1 else None
        mask = kpm if lengths is None else None
        return ids, _valid_mask(ids.shape, "TransformerEncoderModel: key_padding_mask", mask,
                                lengths, _pad_fallback(ids, cfg.pad_id))

    def encode(self, ids, key_padding_mask=None) -> Tensor:
        """``ids [B, T]`` -> hidden states ``[B, T, d_model]``."""
        return self.encoder(*self._inputs(ids, key_padding_mask))

    def forward(self, ids, key_padding_mask=None, targets=None):
        ids, valid = self._inputs(ids, key_padding_mask)
        x = self.encoder(ids, valid)
        logits = x @ self.encoder.embed.weight.T if self.head is None else self.head(x)
        loss = None if targets is None else _loss(logits, targets, valid)
        return logits, loss

    def extra_repr(self) -> str:
        c = self.config
        return (f"d_model={c.d_model}, n_head={c.n_head}, n_layers={c.n_layers}, "
                f"d_ff={c.d_ff}, norm={c.norm}, positions={c.positions}, "
                f"vocab={c.vocab_size}, n_outputs={c.n_outputs}")
