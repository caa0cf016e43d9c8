"""GPT: the decoder-only transformer, with GPT-2's parameter names.

    idx [B, T] --wte--> [B, T, C] (+ positions) --h.0 .. h.{L-1}--> --ln_f--> @ wteᵀ --> logits [B, T, V]

Each block (pre-LN, as GPT-2):      x = x + attn(ln_1(x));   x = x + mlp(ln_2(x))
or, with ``norm="post"`` (as the original paper):
                                    x = ln_1(x + attn(x));   x = ln_2(x + mlp(x))

Parameter names follow GPT-2's checkpoint (``wte.weight``, ``wpe.weight``,
``h.{i}.ln_1.weight``, ``h.{i}.attn.c_attn.weight`` ...) and its weights are stored
``[in, out]`` as GPT-2 stores them, so its tensors map one to one. The language-model
head is tied to the token embedding by default (``logits = x @ wte.weightᵀ``), so it
adds no parameter.

>>> import numpy as np
>>> from numpyllm.nn.gpt import GPT, GPTConfig
>>> cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
>>> model = GPT(cfg, rng=np.random.default_rng(0))
>>> logits, loss = model(np.array([[1, 2, 3]]), targets=np.array([[2, 3, 4]]))
>>> logits.shape, round(float(loss.item()), 1)      # about ln(11) = 2.4 before training
((1, 3, 11), 2.4)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor, no_grad
from ..validation import (DTYPES, ConfigDict, as_generator, check_choice, check_fraction,
                          check_positive_fields, check_positive_number, positive_int)
from .attention import MultiHeadAttention
from .heads import next_token_loss, output_logits
from .inputs import attention_rule, check_vocab, ids_or_embeds, input_embeds, token_ids
from .kv_cache import KVCache
from .layers import Dropout, Embedding, LayerNorm, Linear, MLP
from .module import Module, ModuleList
from .positional import sinusoidal_table
from .residual import ResidualLayer

__all__ = ["GPTConfig", "GPT", "Block", "POSITIONS"]

POSITIONS = ("learned", "sinusoidal", "rope", "alibi")


@dataclass
class GPTConfig(ConfigDict):
    """The shape of a GPT. The defaults are GPT-2 small's."""

    vocab_size: int = 50257
    block_size: int = 1024        # the context length the model is trained on
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True             # biases in Linear layers and LayerNorms
    positions: str = "learned"    # "learned" | "sinusoidal" | "rope" | "alibi"
    norm: str = "pre"             # "pre" (GPT-2) | "post" (the original Transformer)
    tie_weights: bool = True      # LM head shares wte.weight
    activation: str = "gelu"      # "gelu" (tanh approximation, as GPT-2) | "relu"
    layer_norm_eps: float = 1e-5
    dtype: str = "float32"        # "float32" for speed, "float64" for checks and reference
    attn_block_size: int | None = None   # None: standard attention; an int: the
                                         # memory-efficient blocked path (long contexts)

    def __post_init__(self):
        check_positive_fields("GPTConfig", self, ("vocab_size", "block_size", "n_layer",
                                                  "n_head", "n_embd"))
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by "
                             f"n_head ({self.n_head})")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: RoPE needs an even head size; n_embd / n_head = "
                             f"{self.n_embd // self.n_head}")
        check_fraction("GPTConfig", "dropout", self.dropout)
        check_positive_number("GPTConfig", "layer_norm_eps", self.layer_norm_eps)
        if self.attn_block_size is not None:
            positive_int("GPTConfig.attn_block_size", self.attn_block_size)
        check_choice("GPTConfig", self, {"positions": POSITIONS, "norm": ("pre", "post"),
                                         "activation": ("gelu", "relu"), "dtype": DTYPES})

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


class Block(ResidualLayer):
    """One decoder block: causal self-attention and an MLP, each in a residual
    connection with its layer norm (pre-LN as GPT-2, or post-LN: `ResidualLayer`)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        dtype = np.dtype(config.dtype)
        # GPT-2 scales the init of the projections that write into the residual stream
        # by 1/sqrt(2 * n_layer): each block adds two of them, and the sum of 2L random
        # terms would otherwise grow with depth.
        proj_std = 0.02 / math.sqrt(2 * config.n_layer)
        positions = config.positions if config.positions in ("rope", "alibi") else None
        self.pre_norm = config.norm == "pre"
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias, dtype=dtype)
        self.attn = MultiHeadAttention(
            config.n_embd, config.n_head, causal=True, bias=config.bias, dropout=config.dropout,
            positions=positions, rng=rng, dtype=dtype, proj_std=proj_std,
            block_size=config.attn_block_size)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias, dtype=dtype)
        self.mlp = MLP(config.n_embd, activation=config.activation, dropout=config.dropout,
                       bias=config.bias, rng=rng, dtype=dtype, proj_std=proj_std)

    def forward(self, x: Tensor, mask=None) -> Tensor:  # x: [B, T, C] -> [B, T, C]
        """`mask` (bool ``[B, 1, T, T]``, True = may attend), when given, replaces the
        causal rule: a prefix-LM mask (`GPT.forward`'s ``prefix_lengths``)."""
        attn = self.attn if mask is None else (lambda h: self.attn(h, mask=mask, causal=False))
        x = self.residual(x, self.ln_1, attn)
        return self.residual(x, self.ln_2, self.mlp)

    def forward_cached(self, x: Tensor, cache, key_padding_mask=None,
                       causal: bool = True) -> Tensor:
        """`forward` whose attention reads and extends `cache` (a `LayerKVCache`);
        ``causal=False``: the new tokens see each other both ways (a prefix's prefill)."""
        x = self.residual(x, self.ln_1, lambda h: self.attn(
            h, key_padding_mask=key_padding_mask, cache=cache, causal=causal))
        return self.residual(x, self.ln_2, self.mlp)


class GPT(Module):
    """A decoder-only language model.
    ``model(idx, targets=None, *, prefix_lengths=None) -> (logits, loss)``.

    `idx` is an integer array ``[B, T]`` (or ``[T]``, taken as one sequence) of token ids;
    `targets` the same shape, the next token at each position (``-100`` is ignored).
    `loss` is None without targets. `prefix_lengths` (ints ``[B]`` in [0, T]) makes it a
    prefix decoder: the first ``prefix_lengths[b]`` positions of row b attend to each
    other both ways, the rest causally (`numpyllm.functional.prefix_lm_mask`).
    Randomness (initialisation and dropout) comes from `rng`: a Generator, a seed, or
    None for a fresh unseeded one.
    """

    def __init__(self, config: GPTConfig, *, rng=None):
        super().__init__()
        self.config = config
        rng = as_generator(rng)
        dtype = np.dtype(config.dtype)
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng, dtype=dtype)
        if config.positions == "learned":
            self.wpe = Embedding(config.block_size, config.n_embd, rng=rng, dtype=dtype)
        self.drop = Dropout(config.dropout, rng=rng)
        self.h = ModuleList(Block(config, rng) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias, dtype=dtype)
        if not config.tie_weights:
            self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False, rng=rng, dtype=dtype)
        self._sinusoid = None   # [T, C] table, built on first use and grown as needed

    # ------------------------------------------------------------------ input checks
    def check_ids(self, idx, name: str = "idx") -> np.ndarray:
        """`idx` as an int64 array [B, T], or a clear error."""
        idx = token_ids(idx, "GPT", name)
        self._check_length(idx.shape[1])
        return idx

    def _check_length(self, T: int) -> None:
        if self.config.positions == "learned" and T > self.config.block_size:
            raise ValueError(f"GPT: sequence length {T} is longer than block_size "
                             f"{self.config.block_size} (learned positions stop there; crop the "
                             "input, or use sinusoidal/rope/alibi positions)")

    def _inputs(self, idx, inputs_embeds) -> tuple:
        """``(idx or None, inputs_embeds or None, B, T)``, checked: exactly one given."""
        ids_or_embeds(idx, inputs_embeds, "GPT")
        if idx is not None:
            idx = self.check_ids(idx)
            return idx, None, *idx.shape
        x = input_embeds(inputs_embeds, self.config.n_embd, self.config.dtype, "GPT")
        self._check_length(x.shape[1])
        return None, x, x.shape[0], x.shape[1]

    def token_embeddings(self, idx) -> Tensor:
        """The token lookup alone, ``idx [B, T]`` -> ``wte(idx) [B, T, C]``: what
        ``inputs_embeds`` stands for (``forward(inputs_embeds=model.token_embeddings(idx))``
        computes ``forward(idx)``; positions are still added inside)."""
        idx = self.check_ids(idx)
        check_vocab(idx, self.config.vocab_size, "GPT")
        return self.wte(idx)

    # ------------------------------------------------------------------ forward
    def positions_table(self, T: int) -> np.ndarray:
        """The sinusoidal position table [T, C] in the model's dtype (cached, grown on demand:
        to the next power of two, not to block_size, which a checkpoint may set to anything)."""
        if self._sinusoid is None or len(self._sinusoid) < T:
            size = 1 << max(T - 1, 1).bit_length()
            self._sinusoid = sinusoidal_table(size, self.config.n_embd,
                                              dtype=np.dtype(self.config.dtype))
        return self._sinusoid[:T]

    def hidden_states(self, idx=None, *, inputs_embeds=None, prefix_lengths=None,
                      segment_ids=None) -> Tensor:
        """The last layer's output after ``ln_f``: ``idx [B, T]`` -> ``[B, T, C]`` (what
        the LM head reads; a sequence classifier pools it). `segment_ids` ``[B, T]``:
        several sequences packed in each row: each attends only within itself and its
        positions start at 0, so it computes exactly what it would alone (RoPE and ALiBi
        depend on i - j only: their positions need no restart). `inputs_embeds`
        ``[B, T, C]`` instead of `idx`: vectors in place of the token lookup."""
        idx, tokens, B, T = self._inputs(idx, inputs_embeds)
        mask, positions = attention_rule("GPT", B, T, prefix_lengths, segment_ids)
        x = self.embed(idx, positions, inputs_embeds=tokens)  # [B, T, C]
        for block in self.h:
            x = block(x, mask)
        return self.ln_f(x)

    def embed(self, idx, positions=None, *, inputs_embeds=None) -> Tensor:
        """What the first block reads: token embeddings, plus learned or sinusoidal
        positions (``positions``: ``[T]`` or, packed, ``[B, T]``; default 0..T-1), after
        dropout. ``idx [B, T]`` (checked) -> ``[B, T, C]``; or, with `idx` None, the
        checked ``inputs_embeds [B, T, C]`` in place of ``wte(idx)``."""
        x = self.wte(idx) if inputs_embeds is None else inputs_embeds   # [B, T, C]
        T = x.shape[1]
        if positions is None:
            positions = np.arange(T)                        # [T]; packed: [B, T]
        if self.config.positions == "learned":
            x = x + self.wpe(positions)                     # + [T, C] or [B, T, C]
        elif self.config.positions == "sinusoidal":
            x = x + self.positions_table(T)[positions]      # a constant: no gradient
        # rope and alibi act inside attention, on the queries/keys or the scores
        return self.drop(x)

    def forward(self, idx=None, targets=None, *, inputs_embeds=None, prefix_lengths=None,
                segment_ids=None):
        # the inputs are checked once, in hidden_states
        logits = self.head(self.hidden_states(idx, inputs_embeds=inputs_embeds,
                                              prefix_lengths=prefix_lengths,
                                              segment_ids=segment_ids))      # [B, T, V]
        return logits, next_token_loss(logits, targets, "GPT")

    # ------------------------------------------------------------------ decoding
    def new_cache(self, capacity: int | None = None) -> KVCache:
        """An empty `KVCache` for `forward_cached`, with room for `capacity` tokens
        (default: block_size, at most 1024 to begin with; it grows when needed)."""
        return KVCache(self.config.n_layer, capacity or min(self.config.block_size, 1024))

    def forward_cached(self, idx, cache: KVCache, *, key_padding_mask=None,
                       last_only: bool = False, prefix: bool = False) -> Tensor:
        """Logits of the new tokens `idx` ``[B, T]``, given the keys and values of the
        earlier ones in `cache`, which is extended by `idx` (inference only: no graph).

        Prefill with the prompt, then feed one token at a time; the logits equal those of
        `forward` on the whole sequence. `key_padding_mask` (bool ``[B, T]``, True at
        real tokens) marks padding in `idx` (left padding batches prompts of different
        lengths): padded slots are never attended, and a token's position counts the
        real tokens before it. With ``last_only`` only the last position's logits are
        computed (``[B, 1, V]``): a prefill needs no more.

        Learned positions stop at block_size: past it, `numpyllm.generate` crops the
        sequence and prefills a fresh cache. Sinusoidal, RoPE and ALiBi go on.

        ``prefix=True`` (a prefill into an empty cache only): the new tokens are a prefix
        and attend to each other both ways, as a prefix decoder reads its prompt; the
        logits then equal ``forward(idx, prefix_lengths=...)`` with the prompt's length.

        >>> cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
        >>> model = GPT(cfg, rng=np.random.default_rng(0))
        >>> cache = model.new_cache()
        >>> a = model.forward_cached(np.array([[1, 2, 3]]), cache)     # prefill
        >>> b = model.forward_cached(np.array([[4]]), cache)           # one more token
        >>> full, _ = model(np.array([[1, 2, 3, 4]]))
        >>> bool(np.allclose(b.data[:, -1], full.data[:, -1], atol=1e-6)), cache.length
        (True, 4)
        """
        idx = self.check_ids(idx)
        check_vocab(idx, self.config.vocab_size, "GPT")
        B, T = idx.shape
        cfg = self.config
        if prefix and cache.length:
            raise ValueError("GPT.forward_cached: prefix=True reads a prompt both ways; it "
                             f"needs an empty cache, this one holds {cache.length} tokens")
        with no_grad():
            positions, valid = cache.step(B, T, key_padding_mask)   # [B, T], [B, L+T]
            if cfg.positions == "learned" and positions.max() >= cfg.block_size:
                raise ValueError(f"GPT.forward_cached: position {int(positions.max())} is past "
                                 f"block_size {cfg.block_size} (learned positions stop there; "
                                 "crop the sequence and prefill a new cache)")
            x = self.wte(idx)                                       # [B, T, C]
            if cfg.positions == "learned":
                x = x + self.wpe(positions)                         # + [B, T, C]
            elif cfg.positions == "sinusoidal":
                x = x + self.positions_table(int(positions.max()) + 1)[positions]
            x = self.drop(x)
            for block, layer_cache in zip(self.h, cache.layers):
                x = block.forward_cached(x, layer_cache, valid, causal=not prefix)
            if last_only:
                x = x[:, -1:]                                       # [B, 1, C]
            return self.head(self.ln_f(x))                          # [B, T or 1, V]

    def head(self, x: Tensor) -> Tensor:
        """The LM head: [..., C] -> [..., V] logits, tied to ``wte`` by default."""
        return output_logits(x, self.wte, None if self.config.tie_weights else self.lm_head)

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, "
                f"vocab_size={c.vocab_size}, block_size={c.block_size}, positions={c.positions}")
