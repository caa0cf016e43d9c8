"""The LLaMA family of decoders (LLaMA 2 and 3, TinyLlama, SmolLM, Qwen2, Mistral).

    idx [B, T] --embed_tokens--> [B, T, C] --layers.0 .. layers.{L-1}--> --norm-->
        @ lm_head (or embed_tokensᵀ) --> logits [B, T, V]

Each layer is pre-norm, as GPT-2's, with three changes that the family shares:

    x = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))),  h = RMSNorm(x)
    x = x + down_proj(silu(gate_proj(h)) * up_proj(h)),                      h = RMSNorm(x)

- **RMSNorm** instead of LayerNorm: scale by the root mean square, no centring, no bias
  (`numpyllm.functional.rms_norm`).
- **SwiGLU** feed-forward: a gated unit, ``silu(gate) * up``, then ``down``
  (`numpyllm.functional.silu_mul`); three matrices of ``intermediate_size``, not two.
- **RoPE** on the queries and keys, no position embedding, in Hugging Face's layout:
  the pairs are ``(x[i], x[i + hs/2])`` ("rotate half"), base `rope_theta`.
- **Grouped-query attention**: `n_kv_head` key/value heads, each shared by
  ``n_head / n_kv_head`` query heads (multi-query when 1; plain multi-head when equal).
  The keys and values are computed (and cached) for the `n_kv_head` heads only; the
  queries of a group are laid out ``[B, n_kv_head, group, T, hs]`` against keys
  ``[B, n_kv_head, 1, T, hs]``, and attention broadcasts the keys over the group (its
  backward sums their gradients back).

Options of the family: biases on q, k and v (Qwen2: `attention_bias`), a sliding window
of attention (Mistral: each query sees its last `sliding_window` positions, itself
included), a head tied to the embedding or not (`tie_weights`).

Parameter names are Hugging Face's without the ``model.`` prefix (``embed_tokens.weight``,
``layers.{i}.self_attn.q_proj.weight`` ... ``norm.weight``, ``lm_head.weight``); the
weights are stored ``[in, out]`` as all of numpyllm's are (Hugging Face's Linear stores
``[out, in]``: loading transposes).

Decoding with the KV cache (`Llama.forward_cached`, what `numpyllm.generate` calls) is
the same math on NumPy arrays, without Tensors: nothing there is differentiated, and a
step of one token is 7 matrix-vector products a layer and little else, so the
bookkeeping of a graph node per operation shows (about 40 µs a layer). RMSNorm and the
SwiGLU gate call the array kernels their graph nodes use (`infer`); RoPE's angles and
the attention mask are computed once per step for all layers; one new token's query
heads attend as ``[B, n_kv_head, group, hs]`` rows against their shared key/value
head; the head multiplies the last position only (``last_only``).

>>> import numpy as np
>>> cfg = LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_kv_head=2,
...                   n_embd=8, intermediate_size=16)
>>> model = Llama(cfg, rng=0)
>>> logits, loss = model(np.array([[1, 2, 3]]), targets=np.array([[2, 3, 4]]))
>>> logits.shape, [n for n, _ in model.named_parameters()][:4]
((1, 3, 11), ['embed_tokens.weight', 'layers.0.input_layernorm.weight', 'layers.0.self_attn.q_proj.weight', 'layers.0.self_attn.k_proj.weight'])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..functional.activations import silu_mul_
from ..functional.attention import attention_forward
from ..functional.normalization import rms_norm_forward
from ..validation import (DTYPES, ConfigDict, as_generator, check_choice, check_fraction,
                          check_positive_fields, check_positive_number, positive_int)
from .heads import next_token_loss, output_logits
from .inputs import attention_rule, check_vocab, ids_or_embeds, input_embeds, token_ids
from .kv_cache import KVCache
from .layers import Dropout, Embedding, Linear
from .module import Module, ModuleList, Parameter
from .positional import RotaryEmbedding, apply_rope, rotate_pairs
from .residual import ResidualLayer

__all__ = ["LlamaConfig", "Llama", "LlamaAttention", "SwiGLU", "RMSNorm", "LlamaLayer"]


@dataclass
class LlamaConfig(ConfigDict):
    """The shape of a LLaMA-family decoder. The defaults are SmolLM2-135M's.

    - ``block_size``: the context it is trained on (Hugging Face's
      ``max_position_embeddings``). RoPE has no table, so longer inputs run; they are
      just outside what the model has seen.
    - ``n_kv_head``: key/value heads (None: ``n_head``, plain multi-head attention; 1:
      multi-query); must divide ``n_head``.
    - ``head_dim``: None means ``n_embd // n_head``.
    - ``attention_bias``: biases on q, k, v (Qwen2); ``sliding_window``: None, or how many
      positions each query sees, itself included (Mistral).
    """

    vocab_size: int = 49152
    block_size: int = 2048
    n_layer: int = 30
    n_head: int = 9
    n_kv_head: int | None = 3
    n_embd: int = 576
    intermediate_size: int = 1536
    head_dim: int | None = None
    rope_theta: float = 100000.0
    rms_norm_eps: float = 1e-5
    attention_bias: bool = False
    sliding_window: int | None = None
    tie_weights: bool = True
    dropout: float = 0.0
    attn_block_size: int | None = None   # None: standard attention; an int: the blocked
                                         # memory-efficient kernels (long contexts)
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_fields("LlamaConfig", self, ("vocab_size", "block_size", "n_layer",
                                                    "n_head", "n_embd", "intermediate_size"))
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        positive_int("LlamaConfig.n_kv_head", self.n_kv_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"LlamaConfig: n_kv_head ({self.n_kv_head}) must divide n_head "
                             f"({self.n_head})")
        if self.head_dim is None:
            if self.n_embd % self.n_head:
                raise ValueError(f"LlamaConfig: n_embd ({self.n_embd}) must be divisible by "
                                 f"n_head ({self.n_head}), or give head_dim")
            self.head_dim = self.n_embd // self.n_head
        positive_int("LlamaConfig.head_dim", self.head_dim)
        if self.head_dim % 2:
            raise ValueError(f"LlamaConfig: RoPE needs an even head_dim, got {self.head_dim}")
        for name in ("sliding_window", "attn_block_size"):
            if getattr(self, name) is not None:
                positive_int(f"LlamaConfig.{name}", getattr(self, name))
        check_positive_number("LlamaConfig", "rope_theta", self.rope_theta)
        check_positive_number("LlamaConfig", "rms_norm_eps", self.rms_norm_eps)
        check_fraction("LlamaConfig", "dropout", self.dropout)
        check_choice("LlamaConfig", self, {"dtype": DTYPES})

    @property
    def positions(self) -> str:
        """Always rotary (what `numpyllm.generate` asks to know if inputs may outgrow the
        context: they may)."""
        return "rope"


def _project(x: np.ndarray, layer: Linear) -> np.ndarray:
    """``x @ W (+ b)`` on arrays: a `Linear` layer's math for inference (`Linear.infer`,
    which a LoRA layer extends with its adapter). [..., in] -> [..., out]"""
    return layer.infer(x)


class RMSNorm(Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the last axis; ``weight`` starts at ones.
    One fused node: `numpyllm.functional.rms_norm`."""

    def __init__(self, n: int, eps: float = 1e-6, *, dtype=np.float32):
        super().__init__()
        self.n, self.eps = positive_int("RMSNorm n", n), float(eps)
        self.weight = Parameter(np.ones(self.n), dtype=dtype)

    def forward(self, x):
        return F.rms_norm(x, self.weight, eps=self.eps)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """`forward` on an array, for inference (no graph)."""
        return rms_norm_forward(x, self.weight.data, self.eps)

    def extra_repr(self) -> str:
        return f"{self.n}, eps={self.eps:g}, dtype={self.weight.dtype}"


class SwiGLU(Module):
    """The gated feed-forward: ``down_proj(silu(gate_proj(x)) * up_proj(x))``, with
    Hugging Face's names; no biases. [..., C] -> [..., I] (twice) -> [..., C]."""

    def __init__(self, n_embd: int, intermediate_size: int, *, rng=None, dtype=np.float32,
                 dropout: float = 0.0):
        super().__init__()
        self.gate_proj = Linear(n_embd, intermediate_size, bias=False, rng=rng, dtype=dtype)
        self.up_proj = Linear(n_embd, intermediate_size, bias=False, rng=rng, dtype=dtype)
        self.down_proj = Linear(intermediate_size, n_embd, bias=False, rng=rng, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)

    def forward(self, x):
        return self.dropout(self.down_proj(F.silu_mul(self.gate_proj(x), self.up_proj(x))))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """`forward` on an array, for inference (no graph, no dropout): three matrix
        products and the gate written in place."""
        gate = _project(x, self.gate_proj)                           # [..., I]
        return _project(silu_mul_(gate, _project(x, self.up_proj)), self.down_proj)


class LlamaAttention(Module):
    """Grouped-query self-attention with RoPE (rotate-half layout), causal, optionally
    within a sliding window; ``q_proj`` [C, nh·hs], ``k_proj`` and ``v_proj``
    [C, nkv·hs], ``o_proj`` [nh·hs, C]."""

    def __init__(self, config: LlamaConfig, *, rng=None, dtype=np.float32):
        super().__init__()
        cfg = config
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.group = cfg.n_head // cfg.n_kv_head
        self.sliding_window, self.block_size = cfg.sliding_window, cfg.attn_block_size
        bias = cfg.attention_bias
        self.q_proj = Linear(cfg.n_embd, cfg.n_head * cfg.head_dim, bias, rng=rng, dtype=dtype)
        self.k_proj = Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias, rng=rng,
                             dtype=dtype)
        self.v_proj = Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias, rng=rng,
                             dtype=dtype)
        self.o_proj = Linear(cfg.n_head * cfg.head_dim, cfg.n_embd, bias=False, rng=rng,
                             dtype=dtype, std=0.02)
        self.rope = RotaryEmbedding(cfg.head_dim, base=cfg.rope_theta, layout="half")
        self.dropout, self.rng = cfg.dropout, as_generator(rng)
        self.resid_dropout = Dropout(cfg.dropout, rng=self.rng)

    def _mask(self, Tq: int, Tk: int, prefix_mask):
        """(mask, causal) for sdpa: the causal rule, narrowed to the window; or a
        prefix-LM mask that replaces it."""
        if prefix_mask is not None:          # the model's: prefix or packed (window in it)
            return prefix_mask[:, :, None], False            # [B, 1, 1, T, T] over the group
        if self.sliding_window is not None and self.sliding_window < Tk:
            return F.sliding_window_mask(Tq, self.sliding_window, Tk), False
        return None, True

    def forward(self, x: Tensor, prefix_mask=None) -> Tensor:
        B, T, _ = x.shape
        nh, nkv, hs, g = self.n_head, self.n_kv_head, self.head_dim, self.group
        q = self.q_proj(x).reshape(B, T, nh, hs).transpose(0, 2, 1, 3)     # [B, nh, T, hs]
        k = self.k_proj(x).reshape(B, T, nkv, hs).transpose(0, 2, 1, 3)    # [B, nkv, T, hs]
        v = self.v_proj(x).reshape(B, T, nkv, hs).transpose(0, 2, 1, 3)    # [B, nkv, T, hs]
        cos, sin = self.rope.cos_sin(T, 0, x.dtype)
        q, k = apply_rope(q, cos, sin, "half"), apply_rope(k, cos, sin, "half")
        # group the query heads by the key/value head they share (no copy of k, v):
        q = q.reshape(B, nkv, g, T, hs)                                    # [B, nkv, g, T, hs]
        k, v = k.unsqueeze(2), v.unsqueeze(2)                              # [B, nkv, 1, T, hs]
        mask, causal = self._mask(T, T, prefix_mask)
        y = F.scaled_dot_product_attention(
            q, k, v, mask=mask, causal=causal, scale=1.0 / math.sqrt(hs),
            dropout_p=self.dropout if self.training else 0.0, rng=self.rng,
            block_size=self.block_size)                                    # [B, nkv, g, T, hs]
        y = y.reshape(B, nh, T, hs).transpose(0, 2, 1, 3).reshape(B, T, nh * hs)
        return self.resid_dropout(self.o_proj(y))

    def cached_mask(self, Tq: int, Tk: int, valid, causal: bool = True):
        """Which keys each new query may see in `forward_cached`: bool ``[B or 1, Tq, Tk]``
        (True = may attend), or None for all. The causal rule (bottom-right aligned: the
        queries come after the cached keys), narrowed to the sliding window, and the key
        padding mask `valid` (bool ``[B, Tk]``, True at real tokens). The same for every
        layer: the model computes it once per forward pass."""
        allowed = None
        if causal and Tq > 1:
            allowed = F.causal_mask(Tq, Tk)                       # [Tq, Tk]
        if self.sliding_window is not None and self.sliding_window < Tk:
            allowed = F.sliding_window_mask(Tq, self.sliding_window, Tk)
        if valid is not None:
            kpm = np.asarray(valid, dtype=bool)[:, None, :]       # [B, 1, Tk]
            allowed = kpm if allowed is None else (allowed & kpm)
        return None if allowed is None else allowed.reshape((-1,) + allowed.shape[-2:])

    def forward_cached(self, x: np.ndarray, cache, cos: np.ndarray, sin: np.ndarray,
                       allowed=None) -> np.ndarray:
        """`forward` for the new tokens `x` ``[B, Tq, C]`` (an array) after ``cache.length``
        cached ones (a `LayerKVCache` holding the n_kv_head heads), which it extends;
        inference on arrays, no graph. `cos`, `sin` ``[Tq, hs/2]``: RoPE's angles at slots
        L .. L+Tq-1; `allowed`: `cached_mask`. Returns ``o_proj``'s output ``[B, Tq, C]``.

        One new token (decoding, Tq = 1): the `group` query heads that share a key/value
        head are the `group` query rows of one attention against that head's keys,
        ``[B, nkv, g, hs] @ [B, nkv, hs, L]``: a matrix product per key/value head, no
        key or value repeated or broadcast. Several (a prefill): the queries are laid out
        ``[B, nkv, g, Tq, hs]`` against keys ``[B, nkv, 1, Tk, hs]``, as in `forward`."""
        B, Tq, _ = x.shape
        nh, nkv, hs, g = self.n_head, self.n_kv_head, self.head_dim, self.group
        q = _project(x, self.q_proj).reshape(B, Tq, nh, hs).transpose(0, 2, 1, 3)
        k = _project(x, self.k_proj).reshape(B, Tq, nkv, hs).transpose(0, 2, 1, 3)
        v = _project(x, self.v_proj).reshape(B, Tq, nkv, hs).transpose(0, 2, 1, 3)
        q = rotate_pairs(q, cos, sin, layout="half")              # [B, nh, Tq, hs]
        k = rotate_pairs(k, cos, sin, layout="half")              # [B, nkv, Tq, hs]
        k, v = cache.append(k, v)                                 # [B, nkv, L + Tq, hs]
        scale = 1.0 / math.sqrt(hs)
        y = np.empty((B, Tq, nkv, g, hs), dtype=q.dtype)          # = [B, Tq, nh·hs]
        if Tq == 1:
            attention_forward(q.reshape(B, nkv, g, hs), k, v, scale=scale,
                              allowed=None if allowed is None else allowed[:, None],
                              out=y.reshape(B, nkv, g, hs))       # mask [B, 1, 1, Tk]
        else:
            attention_forward(q.reshape(B, nkv, g, Tq, hs), k[:, :, None], v[:, :, None],
                              scale=scale,
                              allowed=None if allowed is None else allowed[:, None, None],
                              out=y.transpose(0, 2, 3, 1, 4))     # [B, nkv, g, Tq, hs] view
        return _project(y.reshape(B, Tq, nh * hs), self.o_proj)

    def extra_repr(self) -> str:
        return (f"n_head={self.n_head}, n_kv_head={self.n_kv_head}, head_dim={self.head_dim}"
                + (f", sliding_window={self.sliding_window}" if self.sliding_window else ""))


class LlamaLayer(ResidualLayer):
    """One decoder layer: pre-RMSNorm attention and SwiGLU, each with a residual."""

    pre_norm = True

    def __init__(self, config: LlamaConfig, *, rng=None, dtype=np.float32):
        super().__init__()
        self.pre_norm = True
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps, dtype=dtype)
        self.self_attn = LlamaAttention(config, rng=rng, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps,
                                                dtype=dtype)
        self.mlp = SwiGLU(config.n_embd, config.intermediate_size, rng=rng, dtype=dtype,
                          dropout=config.dropout)

    def forward(self, x: Tensor, prefix_mask=None) -> Tensor:     # [B, T, C] -> [B, T, C]
        x = self.residual(x, self.input_layernorm, lambda h: self.self_attn(h, prefix_mask))
        return self.residual(x, self.post_attention_layernorm, self.mlp)

    def forward_cached(self, x: np.ndarray, cache, cos: np.ndarray, sin: np.ndarray,
                       allowed=None) -> np.ndarray:
        """`forward` on an array for the new tokens, reading and extending `cache` (see
        `LlamaAttention.forward_cached`); the residual stream `x` is updated in place."""
        x += self.self_attn.forward_cached(self.input_layernorm.infer(x), cache, cos, sin,
                                           allowed)
        x += self.mlp.infer(self.post_attention_layernorm.infer(x))
        return x


class Llama(Module):
    """A LLaMA-family decoder (see the module doc).
    ``model(idx, targets=None, *, prefix_lengths=None) -> (logits, loss)``, as `GPT`.

    `idx` ``[B, T]`` (or ``[T]``) token ids; `targets` the next token at each position
    (``-100`` ignored); `prefix_lengths` (ints ``[B]``) makes it a prefix decoder.
    `forward_cached` / `new_cache` decode with a KV cache that holds the n_kv_head heads,
    so `numpyllm.generate` works as with a GPT. Randomness (initialisation: N(0, 0.02²),
    Hugging Face's; dropout) comes from `rng`: a Generator or a seed.
    """

    def __init__(self, config: LlamaConfig, *, rng=None):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"Llama takes a LlamaConfig, got {type(config).__name__}")
        self.config = cfg = config
        rng, dtype = as_generator(rng), np.dtype(cfg.dtype)
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.n_embd, rng=rng, dtype=dtype)
        self.drop = Dropout(cfg.dropout, rng=rng)
        self.layers = ModuleList(LlamaLayer(cfg, rng=rng, dtype=dtype)
                                 for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps, dtype=dtype)
        self.lm_head = None if cfg.tie_weights else \
            Linear(cfg.n_embd, cfg.vocab_size, bias=False, rng=rng, dtype=dtype)

    # ------------------------------------------------------------------ inputs
    def check_ids(self, idx, name: str = "idx") -> np.ndarray:
        """`idx` as an int64 array [B, T] with every id in the vocabulary, or a clear error."""
        idx = token_ids(idx, "Llama", name)
        check_vocab(idx, self.config.vocab_size, "Llama")
        return idx

    def _inputs(self, idx, inputs_embeds) -> tuple:
        """``(idx or None, inputs_embeds or None, B, T)``, checked: exactly one given."""
        ids_or_embeds(idx, inputs_embeds, "Llama")
        if idx is not None:
            idx = self.check_ids(idx)
            return idx, None, *idx.shape
        x = input_embeds(inputs_embeds, self.config.n_embd, self.config.dtype, "Llama")
        return None, x, x.shape[0], x.shape[1]

    def token_embeddings(self, idx) -> Tensor:
        """The token lookup alone, ``idx [B, T]`` -> ``embed_tokens(idx) [B, T, C]``: what
        ``inputs_embeds`` stands for."""
        return self.embed_tokens(self.check_ids(idx))

    # ------------------------------------------------------------------ forward
    def hidden_states(self, idx=None, *, inputs_embeds=None, prefix_lengths=None,
                      segment_ids=None) -> Tensor:
        """The last layer's output after ``norm``: ``[B, T]`` -> ``[B, T, C]``.
        `segment_ids` ``[B, T]``: sequences packed in each row attend only within
        themselves (and the window); RoPE is relative, so no position restarts.
        `inputs_embeds` ``[B, T, C]`` instead of `idx`: vectors in place of the lookup."""
        idx, tokens, B, T = self._inputs(idx, inputs_embeds)
        mask, _ = attention_rule("Llama", B, T, prefix_lengths, segment_ids,
                                 self.config.sliding_window)
        x = self.drop(self.embed_tokens(idx) if tokens is None else tokens)   # [B, T, C]
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)

    def head(self, x: Tensor) -> Tensor:
        """[..., C] -> [..., V] logits: ``lm_head``, or the embedding read backwards."""
        return output_logits(x, self.embed_tokens, self.lm_head)

    def forward(self, idx=None, targets=None, *, inputs_embeds=None, prefix_lengths=None,
                segment_ids=None):
        # the inputs are checked once, in hidden_states
        logits = self.head(self.hidden_states(idx, inputs_embeds=inputs_embeds,
                                              prefix_lengths=prefix_lengths,
                                              segment_ids=segment_ids))      # [B, T, V]
        return logits, next_token_loss(logits, targets, "Llama")

    # ------------------------------------------------------------------ decoding
    def new_cache(self, capacity: int | None = None) -> KVCache:
        """An empty `KVCache` for `forward_cached` (one `LayerKVCache` of the n_kv_head
        heads per layer), with room for `capacity` tokens (it grows when needed)."""
        return KVCache(self.config.n_layer, capacity or min(self.config.block_size, 1024))

    def forward_cached(self, idx, cache: KVCache, *, key_padding_mask=None,
                       last_only: bool = False, prefix: bool = False) -> Tensor:
        """Logits of the new tokens `idx` ``[B, T]`` given the cached keys and values of
        the earlier ones, which `cache` is extended with (inference only). As
        `GPT.forward_cached`: `key_padding_mask` marks left padding, ``last_only`` gives
        the last position's logits, ``prefix=True`` reads a prompt both ways (a prefill
        into an empty cache). RoPE uses the slot index: padding shifts no distance.

        >>> cfg = LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_kv_head=1,
        ...                   n_embd=8, intermediate_size=16)
        >>> model = Llama(cfg, rng=0)
        >>> cache = model.new_cache()
        >>> a = model.forward_cached(np.array([[1, 2, 3]]), cache)        # prefill
        >>> b = model.forward_cached(np.array([[4]]), cache)              # one more token
        >>> full, _ = model(np.array([[1, 2, 3, 4]]))
        >>> bool(np.allclose(b.data[:, -1], full.data[:, -1], atol=1e-5)), cache.length
        (True, 4)
        """
        idx = self.check_ids(idx)
        B, T = idx.shape
        if prefix and cache.length:
            raise ValueError("Llama.forward_cached: prefix=True reads a prompt both ways; it "
                             f"needs an empty cache, this one holds {cache.length} tokens")
        if prefix and self.config.sliding_window is not None:
            raise ValueError("Llama.forward_cached: a prefix with a sliding window is not "
                             "supported")
        L = cache.length
        _, valid = cache.step(B, T, key_padding_mask)                  # valid: [B, L+T] or None
        attn = self.layers[0].self_attn                                # (all layers alike)
        allowed = attn.cached_mask(T, L + T, valid, causal=not prefix)  # [B or 1, T, L+T]
        table = self.embed_tokens
        quantized = hasattr(table, "qweight")      # numpyllm.quantize.QuantizedEmbedding
        x = table.lookup(idx) if quantized else table.weight.data[idx]   # [B, T, C], a copy
        cos, sin = attn.rope.cos_sin(T, L, x.dtype)                    # slots L .. L+T-1
        for layer, layer_cache in zip(self.layers, cache.layers):
            x = layer.forward_cached(x, layer_cache, cos, sin, allowed)
        if last_only:
            x = x[:, -1:]                                              # [B, 1, C]
        x = self.norm.infer(x)
        if self.lm_head is None and quantized:                         # x Eᵀ, E in tiles
            return Tensor(table.tied_logits_array(x))                  # [B, T, V]
        if self.lm_head is None:                                       # tied: x Eᵀ
            w = table.weight.data                                      # [V, C]
            return Tensor((x.reshape(-1, w.shape[1]) @ w.T).reshape(*x.shape[:-1], -1))
        return Tensor(_project(x, self.lm_head))                       # [B, T, V]

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_layer={c.n_layer}, n_head={c.n_head}, n_kv_head={c.n_kv_head}, "
                f"n_embd={c.n_embd}, intermediate_size={c.intermediate_size}, "
                f"vocab_size={c.vocab_size}, rope_theta={c.rope_theta:g}")
