"""The original encoder-decoder Transformer ("Attention Is All You Need").

    src [B, S] --embed·√d + PE--> --encoder layers--> memory [B, S, C]
    tgt [B, T] --embed·√d + PE--> --decoder layers (causal self-attn, cross-attn over
               memory, FFN)--> [B, T, C] --output projection--> logits [B, T, V]

Every sub-layer (self-attention, cross-attention, feed-forward) sits in a residual
connection with a layer norm (`numpyllm.nn.residual`), post-LN as in the paper or pre-LN
(``norm="pre"``, with a final ``ln_f`` after each stack). The dropout on a sub-layer's
output lives inside the sub-layer; attention also drops attention weights, as PyTorch's
`nn.Transformer` does. The encoder is `numpyllm.nn.encoder.Encoder`, the decoder
`numpyllm.nn.decoder.Decoder`; what they share is in `numpyllm.nn.stack`.

With ``share_embeddings=True`` (one vocabulary for both sides) the source embedding, the
target embedding and the pre-softmax projection are one matrix, listed once in
`named_parameters` as ``encoder.embed.weight``.

>>> import numpy as np
>>> cfg = TransformerConfig(src_vocab_size=11, tgt_vocab_size=11, d_model=8, n_head=2,
...                         n_encoder_layers=1, n_decoder_layers=1, dropout=0.0, pad_id=0)
>>> model = Transformer(cfg, rng=0)
>>> src = np.array([[5, 6, 7, 0]])                  # one padded source sequence
>>> tgt_in, targets = np.array([[1, 7, 6]]), np.array([[7, 6, 5]])
>>> logits, loss = model(src, tgt_in, targets)
>>> logits.shape
(1, 3, 11)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor, no_grad
from ..validation import ConfigDict, as_generator, check_positive_fields
from .decoder import Decoder
from .encoder import Encoder
from .heads import output_logits
from .inputs import ids_or_embeds, input_embeds
from .kv_cache import KVCache
from .layers import Linear
from .module import Module
from .stack import (check_pad_id, check_stack_config, loss_over_counted, pad_fallback,
                    padding_of, scaled_embedding, token_ids)

__all__ = ["TransformerConfig", "Transformer"]


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
    - ``dtype``: "float32" for speed, "float64" for gradient checks.
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
    dtype: str = "float32"

    def __post_init__(self):
        name = type(self).__name__
        check_positive_fields(name, self, ("src_vocab_size", "tgt_vocab_size", "n_encoder_layers",
                                     "n_decoder_layers"))
        check_stack_config(name, self)
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"{name}: share_embeddings=True needs one vocabulary, but "
                             f"src_vocab_size={self.src_vocab_size} != "
                             f"tgt_vocab_size={self.tgt_vocab_size}")
        check_pad_id(name, self.pad_id, {"src_vocab_size": self.src_vocab_size,
                                          "tgt_vocab_size": self.tgt_vocab_size})


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
    are ``[in, out]``. Randomness (initialisation, dropout) comes from `rng`: a
    Generator or a seed.
    """

    def __init__(self, config: TransformerConfig, *, rng=None):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Transformer takes a TransformerConfig, got {type(config).__name__}")
        self.config = cfg = config
        rng, dtype = as_generator(rng), np.dtype(cfg.dtype)
        src_embed = scaled_embedding(cfg.src_vocab_size, cfg.d_model, rng, dtype)
        tgt_embed = src_embed if cfg.share_embeddings else \
            scaled_embedding(cfg.tgt_vocab_size, cfg.d_model, rng, dtype)
        self.encoder = Encoder(cfg, src_embed, cfg.n_encoder_layers, rng=rng, dtype=dtype)
        self.decoder = Decoder(cfg, tgt_embed, cfg.n_decoder_layers, rng=rng, dtype=dtype)
        self.lm_head = None if cfg.share_embeddings else \
            Linear(cfg.d_model, cfg.tgt_vocab_size, bias=False, rng=rng, dtype=dtype)

    # ------------------------------------------------------------------ pieces
    def _source(self, src, src_mask, src_lengths, inputs_embeds=None) -> tuple:
        """Checked source ids [B, S] (None when `inputs_embeds` [B, S, C] stand in their
        place), their key padding mask (or None), and the checked inputs_embeds (or None).
        Without ids, padding comes from `src_mask` / `src_lengths` only (no pad_id to read)."""
        cfg = self.config
        ids_or_embeds(src, inputs_embeds, "Transformer")
        if src is not None:
            ids = token_ids(src, "Transformer: src", cfg.src_vocab_size, cfg.max_len)
            return ids, padding_of(ids.shape, "Transformer: src", src_mask, src_lengths,
                                   pad_fallback(ids, cfg.pad_id)), None
        x = input_embeds(inputs_embeds, cfg.d_model, cfg.dtype, "Transformer", cfg.max_len)
        return None, padding_of(tuple(x.shape[:2]), "Transformer: src", src_mask,
                                src_lengths), x

    def token_embeddings(self, src) -> Tensor:
        """The source token lookup alone, ``src [B, S]`` -> ``embed(src)·√d_model``:
        what ``inputs_embeds`` stands for (positions are added after it)."""
        cfg = self.config
        ids = token_ids(src, "Transformer: src", cfg.src_vocab_size, cfg.max_len)
        return self.encoder.token_embeddings(ids)

    def _target(self, tgt, tgt_mask, what: str) -> tuple:
        cfg = self.config
        ids = token_ids(tgt, f"Transformer: {what}", cfg.tgt_vocab_size, cfg.max_len)
        return ids, padding_of(ids.shape, f"Transformer: {what}", tgt_mask, None,
                                pad_fallback(ids, cfg.pad_id))

    def source_mask(self, src, src_mask=None, src_lengths=None):
        """The source key padding mask: bool ``[B, S]`` (True at real tokens), or None
        when nothing is padded. See the class doc for where it comes from."""
        return self._source(src, src_mask, src_lengths)[1]

    def encode(self, src=None, src_mask=None, src_lengths=None, *, inputs_embeds=None) -> Tensor:
        """``src [B, S]`` (or ``inputs_embeds [B, S, d_model]``, see `token_embeddings`)
        -> memory ``[B, S, d_model]``, the encoder's output."""
        ids, valid, embeds = self._source(src, src_mask, src_lengths, inputs_embeds)
        return self.encoder(ids, valid, inputs_embeds=embeds)

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
        src_valid = padding_of(shape[:2], "Transformer: src", src_mask, src_lengths)
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
        >>> model = Transformer(cfg, rng=0)
        >>> memory = model.encode(np.array([[5, 6, 7]]))
        >>> cache = model.new_cache()
        >>> a = model.decode_cached(np.array([[1, 7]]), memory, cache)   # prefill
        >>> b = model.decode_cached(np.array([[6]]), memory, cache)      # one more
        >>> full = model.decode(np.array([[1, 7, 6]]), memory)
        >>> bool(np.allclose(b.data[:, -1], full.data[:, -1], atol=1e-6)), cache.length
        (True, 3)
        """
        cfg = self.config
        ids = token_ids(tgt, "Transformer: tgt", cfg.tgt_vocab_size, cfg.max_len)
        if cache.length + ids.shape[1] > cfg.max_len:
            raise ValueError(f"Transformer.decode_cached: {cache.length} cached and "
                             f"{ids.shape[1]} new target tokens exceed max_len={cfg.max_len}")
        shape = np.shape(memory.data if isinstance(memory, Tensor) else memory)
        if len(shape) != 3 or shape[0] != ids.shape[0] or shape[2] != cfg.d_model:
            raise ValueError(f"Transformer.decode_cached: memory must be [B, S, d_model] = "
                             f"[{ids.shape[0]}, S, {cfg.d_model}] for tgt of shape "
                             f"{ids.shape}, got {shape}")
        src_valid = padding_of(shape[:2], "Transformer: src", src_mask, src_lengths)
        with no_grad():
            x = self.decoder.forward_cached(ids, memory, src_valid, cache)
            if last_only:
                x = x[:, -1:]                                   # [B, 1, C]
            return self.project(x)

    def project(self, x: Tensor) -> Tensor:
        """The pre-softmax projection: ``[..., C] -> [..., V]``, tied to the shared
        embedding (``x @ Eᵀ``) when ``share_embeddings``."""
        return output_logits(x, self.encoder.embed, self.lm_head)

    # ------------------------------------------------------------------ forward
    def forward(self, src, tgt_in, targets=None, *, src_mask=None, src_lengths=None,
                tgt_mask=None, label_smoothing: float = 0.0, inputs_embeds=None):
        # src may be None with inputs_embeds [B, S, C] in its place (the source side only)
        src_ids, src_valid, embeds = self._source(src, src_mask, src_lengths, inputs_embeds)
        tgt_ids, tgt_valid = self._target(tgt_in, tgt_mask, "tgt_in")
        src_shape = tuple(src_ids.shape if src_ids is not None else embeds.shape[:2])
        if src_shape[0] != tgt_ids.shape[0]:
            raise ValueError(f"Transformer: src has batch size {src_shape[0]} "
                             f"(shape {src_shape}) but tgt_in has {tgt_ids.shape[0]} "
                             f"(shape {tgt_ids.shape})")
        memory = self.encoder(src_ids, src_valid, inputs_embeds=embeds)
        logits = self.project(self.decoder(tgt_ids, memory, src_valid, tgt_valid))
        loss = None if targets is None else loss_over_counted(
            logits, targets, None, self.config.pad_id, label_smoothing)
        return logits, loss

    def extra_repr(self) -> str:
        c = self.config
        return (f"d_model={c.d_model}, n_head={c.n_head}, layers={c.n_encoder_layers}+"
                f"{c.n_decoder_layers}, d_ff={c.d_ff}, norm={c.norm}, "
                f"vocab={c.src_vocab_size}->{c.tgt_vocab_size}, shared={c.share_embeddings}")
