"""`MultiHeadAttention`: self-attention (causal or bidirectional) and cross-attention.

Self-attention (GPT-2's layer and parameter names)::

    qkv = c_attn(x)                 # [B, T, C] -> [B, T, 3C]: q, k, v in one matmul
    y   = attention over heads      # [B, T, 3C] -> [B, T, C]: one fused graph node
    out = resid_dropout(c_proj(y))  # [B, T, C] -> [B, T, C]

Cross-attention (``cross=True``, the decoder's second attention in "Attention Is All
You Need"): the **queries come from the decoder** `x`, the **keys and values from the
encoder's output** `context`: ``q = q_proj(x)``, ``kv = kv_proj(context)``. (One of the
study notes in shared/seeds has this the other way round; the paper is as here.)

Positions inside attention: ``positions="rope"`` rotates q and k (`RotaryEmbedding`),
``positions="alibi"`` adds ALiBi's distance bias to the scores (`ALiBi`); an instance
of either may be passed instead, to share it or change its base. Learned and sinusoidal
positions are added to the embeddings by the model and need nothing here.

Masks follow `numpyllm.functional.masks`: **True = may attend**, also for
`key_padding_mask` (True at real tokens; PyTorch's ``key_padding_mask`` means the
opposite).

Decoding with a KV cache (``forward(x, cache=layer_cache)``, see `numpyllm.nn.kv_cache`):
self-attention projects only the new tokens, appends their keys and values to the
cache and attends over everything cached; RoPE rotates the new tokens by their slot
index and ALiBi's bias is aligned to the bottom right, so both match a full forward
pass. Cross-attention projects the encoder output on the first call and reuses its
keys and values afterwards. The cached path is for inference: it builds no graph.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor, no_grad
from ..functional.attention import (allowed_mask, attention_backward, attention_forward,
                                    check_dropout, read_only)
from ..functional.attention import scaled_dot_product_attention
from ..functional.masks import combine_masks
from ..validation import positive_int
from .layers import Dropout, Linear
from .module import Module
from .positional import ALiBi, RotaryEmbedding, apply_rope, rotate_pairs

__all__ = ["MultiHeadAttention"]


def _heads(a: np.ndarray, n: int, n_head: int) -> np.ndarray:
    """``[B, T, n*C] -> [n, B, nh, T, hs]``: `n` packed projections split into heads,
    as a view (no copy)."""
    B, T, width = a.shape
    return a.reshape(B, T, n, n_head, width // (n * n_head)).transpose(2, 0, 3, 1, 4)


class _HeadsAttention(Function):
    # Everything between the input projection(s) and c_proj, as one node:
    #   split heads:   qkv [B, T, 3C] -> q, k, v [B, nh, T, hs]     (views, no copy)
    #                  (cross: q [B, Tq, C] and kv [B, Tk, 2C])
    #   RoPE on q, k:  optional; its backward is the inverse rotation
    #   attention:     the kernels of functional.attention (derivation there)
    #   merge heads:   [B, nh, Tq, hs] -> [B, Tq, C]                (written in place)
    # Why one node: splitting [B, T, 3C] by indexing would make three GetItem nodes, and
    # the backward of each allocates a zero gradient of the whole [B, T, 3C] that the
    # engine then adds up. Here backward writes dq, dk, dv straight into one
    # [B, T, 3, nh, hs] buffer -- matmul's out= takes the strided head views at full
    # speed -- and that buffer, reshaped without a copy, is the gradient of qkv.
    @staticmethod
    def forward(ctx, q_in, kv_in, bias, *, n_head, rope, scale, allowed, dropout_p, rng,
                weights_sink):
        ctx.self_attention = q_in is None
        if ctx.self_attention:
            q, k, v = _heads(kv_in, 3, n_head)            # each [B, nh, T, hs]
        else:
            q = _heads(q_in, 1, n_head)[0]                # [B, nh, Tq, hs]
            k, v = _heads(kv_in, 2, n_head)               # each [B, nh, Tk, hs]
        if rope is not None:
            q, k = rotate_pairs(q, *rope[:2], layout=rope[2]), \
                rotate_pairs(k, *rope[:2], layout=rope[2])
        B, nh, Tq, hs = q.shape
        y = np.empty((B, Tq, nh, hs), dtype=q.dtype)
        _, p, keep = attention_forward(q, k, v, scale=scale, bias=bias, allowed=allowed,
                                       dropout_p=dropout_p, rng=rng,
                                       out=y.transpose(0, 2, 1, 3))   # [B, nh, Tq, hs] view
        ctx.save_for_backward(q, k, v, p, keep)
        ctx.rope, ctx.scale, ctx.dropout_p = rope, scale, dropout_p
        if weights_sink is not None:
            weights_sink.append(p)
        return y.reshape(B, Tq, nh * hs)                  # [B, Tq, nh, hs] -> [B, Tq, C]

    @staticmethod
    def backward(ctx, g):
        q, k, v, p, keep = ctx.saved
        need_q_in, need_kv, need_bias = ctx.needs_input_grad
        B, nh, Tq, hs = q.shape
        Tk, n = k.shape[2], (3 if ctx.self_attention else 2)
        g = _heads(g, 1, nh)[0]                           # [B, Tq, C] -> [B, nh, Tq, hs]
        dkv = np.empty((B, Tk, n, nh, hs), dtype=q.dtype) if need_kv else None
        dq_in = np.empty((B, Tq, nh, hs), dtype=q.dtype) if need_q_in else None
        slots = dkv.transpose(2, 0, 3, 1, 4) if need_kv else (None,) * n  # [n, B, nh, Tk, hs]
        need_q = need_kv if ctx.self_attention else need_q_in
        dq_out = slots[0] if ctx.self_attention else (
            dq_in.transpose(0, 2, 1, 3) if need_q_in else None)
        dk_out, dv_out = slots[-2], slots[-1]
        rope = ctx.rope
        dq, dk, _, dbias = attention_backward(
            g, q, k, v, p, keep, scale=ctx.scale, dropout_p=ctx.dropout_p,
            needs=(need_q, need_kv, need_kv, need_bias),
            out=(dq_out if rope is None else None, dk_out if rope is None else None, dv_out))
        if rope is not None:                              # back through the rotation
            if need_q:
                rotate_pairs(dq, *rope[:2], inverse=True, out=dq_out, layout=rope[2])
            if need_kv:
                rotate_pairs(dk, *rope[:2], inverse=True, out=dk_out, layout=rope[2])
        return (dq_in.reshape(B, Tq, nh * hs) if need_q_in else None,
                dkv.reshape(B, Tk, n * nh * hs) if need_kv else None,
                dbias)


class MultiHeadAttention(Module):
    """Multi-head attention, all heads batched: ``forward(x, context=None, mask=None,
    key_padding_mask=None, return_weights=False)``.

    - ``n_embd % n_head == 0`` is required; head size ``hs = n_embd // n_head``.
    - ``cross=False``: self-attention, parameters ``c_attn`` (C -> 3C, q|k|v) and
      ``c_proj`` (C -> C), GPT-2's names and ``[in, out]`` layout. ``causal=True`` masks
      the future (bottom-right aligned, see `functional.masks`).
    - ``cross=True``: queries from `x` ``[B, Tq, C]``, keys and values from `context`
      ``[B, Tk, C]``; parameters ``q_proj`` (C -> C), ``kv_proj`` (C -> 2C, k|v), ``c_proj``.
    - ``positions``: None, ``"rope"``, ``"alibi"``, or a `RotaryEmbedding` / `ALiBi`
      instance (self-attention only). Held as ``self.rope`` / ``self.alibi``.
    - ``dropout``: on the attention weights (inside the fused node) and on the output
      (``resid_dropout``), in training mode only; the masks come from `rng`.
    - ``proj_std``: init std of ``c_proj`` (GPT-2 uses 0.02/sqrt(2·n_layer)); the input
      projections use 0.02.

    `mask`: bool, broadcastable to ``[B, nh, Tq, Tk]``, True = may attend; combined
    with the causal rule unless ``causal=False`` is passed for this call (a prefix-LM
    mask, which lets the prefix see itself both ways, replaces the causal rule).
    `key_padding_mask`: bool ``[B, Tk]`` (or ``[B, 1, 1, Tk]``), True at real tokens.
    ``return_weights=True`` returns ``(out, weights)``, the per-head softmax weights
    ``[B, nh, Tq, Tk]`` (before dropout) as a read-only array.
    `cache`: a `LayerKVCache` to read and extend (decoding; see the module doc). Then
    Tk counts the cached keys too, and `key_padding_mask` covers all of them.

    >>> mha = MultiHeadAttention(8, 2, causal=True, rng=np.random.default_rng(0))
    >>> [name for name, _ in mha.named_parameters()]
    ['c_attn.weight', 'c_attn.bias', 'c_proj.weight', 'c_proj.bias']
    >>> mha(np.ones((1, 3, 8), np.float32)).shape
    (1, 3, 8)
    """

    def __init__(self, n_embd: int, n_head: int, *, cross: bool = False, causal: bool = False,
                 bias: bool = True, dropout: float = 0.0, positions=None,
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 proj_std: float = 0.02, block_size: int | None = None):
        super().__init__()
        # block_size: None, the standard fused node (keeps the [T, T] weights for
        # backward); an int, the memory-efficient path (functional.flash_attention:
        # tiles of block_size, weights recomputed in backward, memory linear in T)
        self.block_size = None if block_size is None else positive_int(
            "MultiHeadAttention block_size", block_size)
        C = positive_int("MultiHeadAttention n_embd", n_embd)
        nh = positive_int("MultiHeadAttention n_head", n_head)
        if C % nh:
            raise ValueError(f"MultiHeadAttention: n_embd={C} is not divisible by n_head={nh}")
        rng = np.random.default_rng() if rng is None else rng
        self.n_embd, self.n_head, self.head_size = C, nh, C // nh
        self.input_width = C        # what x must be (a tensor-parallel rank's heads: wider)
        self.cross, self.causal = bool(cross), bool(causal)
        if self.cross:
            self.q_proj = Linear(C, C, bias, rng=rng, dtype=dtype)
            self.kv_proj = Linear(C, 2 * C, bias, rng=rng, dtype=dtype)
        else:
            self.c_attn = Linear(C, 3 * C, bias, rng=rng, dtype=dtype)
        self.c_proj = Linear(C, C, bias, rng=rng, dtype=dtype, std=proj_std)
        self.dropout = check_dropout(dropout, rng)      # attention-weight dropout
        self.rng = rng
        self.resid_dropout = Dropout(self.dropout, rng=rng)
        self.rope, self.alibi = self._positions(positions)

    def _positions(self, positions) -> tuple:
        """``(rope, alibi)`` helpers from the `positions` argument."""
        if positions is None:
            return None, None
        if self.cross:
            raise ValueError("MultiHeadAttention: positions (RoPE, ALiBi) apply to "
                             "self-attention; cross-attention takes none")
        if isinstance(positions, str) and positions == "rope":
            if self.head_size % 2:
                raise ValueError(f"MultiHeadAttention: RoPE needs an even head size; n_embd="
                                 f"{self.n_embd} / n_head={self.n_head} = {self.head_size}")
            return RotaryEmbedding(self.head_size), None
        if isinstance(positions, str) and positions == "alibi":
            return None, ALiBi(self.n_head)
        if isinstance(positions, RotaryEmbedding):
            if positions.head_dim != self.head_size:
                raise ValueError(f"MultiHeadAttention: RotaryEmbedding head_dim="
                                 f"{positions.head_dim}, but the head size is {self.head_size}")
            return positions, None
        if isinstance(positions, ALiBi):
            if positions.n_head != self.n_head:
                raise ValueError(f"MultiHeadAttention: ALiBi for n_head={positions.n_head}, "
                                 f"but n_head={self.n_head}")
            return None, positions
        raise ValueError("MultiHeadAttention: positions must be None, 'rope', 'alibi', a "
                         f"RotaryEmbedding or an ALiBi; got {positions!r}")

    def _check_input(self, name: str, x) -> tuple:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 3 or shape[-1] != self.input_width:
            raise ValueError(f"MultiHeadAttention: {name} must be [B, T, n_embd="
                             f"{self.input_width}], got shape {shape}")
        return shape

    def _key_padding(self, key_padding_mask, B: int, Tk: int):
        if key_padding_mask is None:
            return None
        kpm = np.asarray(key_padding_mask.data if isinstance(key_padding_mask, Tensor)
                         else key_padding_mask)
        if kpm.dtype != bool or kpm.shape not in ((B, Tk), (B, 1, 1, Tk)):
            raise ValueError(f"MultiHeadAttention: key_padding_mask must be bool [B, Tk] = "
                             f"{[B, Tk]} (True at real tokens), got {kpm.dtype} {kpm.shape}")
        return kpm.reshape(B, 1, 1, Tk)

    def forward(self, x, context=None, mask=None, key_padding_mask=None,
                return_weights: bool = False, cache=None, causal: bool | None = None):
        causal = self.causal if causal is None else bool(causal)
        if cache is not None:
            with no_grad():
                return self._forward_cached(x, context, mask, key_padding_mask,
                                            return_weights, cache, causal)
        B, Tq, _ = self._check_input("x", x)
        if self.cross:
            if context is None:
                raise ValueError("MultiHeadAttention(cross=True) needs context, the encoder "
                                 "output [B, Tk, n_embd]")
            Bc, Tk, _ = self._check_input("context", context)
            if Bc != B:
                raise ValueError(f"MultiHeadAttention: x has batch {B}, context has {Bc}")
        elif context is not None:
            raise ValueError("MultiHeadAttention: self-attention takes no context; build it "
                             "with cross=True for cross-attention")
        else:
            Tk = Tq
        dtype = (x.data if isinstance(x, Tensor) else np.asarray(x)).dtype
        if self.block_size is not None and not return_weights:
            return self._forward_blocked(x, context, mask, key_padding_mask, B, Tq, Tk, dtype,
                                         causal)
        allowed = combine_masks(allowed_mask(mask, causal, (B, self.n_head, Tq, Tk)),
                                self._key_padding(key_padding_mask, B, Tk))
        bias = None if self.alibi is None else self.alibi.bias(Tq, Tk, dtype)
        rope = None if self.rope is None else (*self.rope.cos_sin(Tq, 0, dtype), self.rope.layout)
        sink = [] if return_weights else None
        options = dict(n_head=self.n_head, rope=rope, scale=1.0 / math.sqrt(self.head_size),
                       allowed=allowed, dropout_p=self.dropout if self.training else 0.0,
                       rng=self.rng, weights_sink=sink)
        if self.cross:
            y = _HeadsAttention.apply(self.q_proj(x), self.kv_proj(context), bias, **options)
        else:
            y = _HeadsAttention.apply(None, self.c_attn(x), bias, **options)   # [B, T, C]
        y = self.resid_dropout(self.c_proj(y))
        return (y, read_only(sink[0])) if return_weights else y

    def _forward_blocked(self, x, context, mask, key_padding_mask, B, Tq, Tk, dtype, causal):
        """The memory-efficient path: heads split with ordinary Tensor ops, then one
        blocked attention node; the causal mask is applied tile by tile, never built."""
        nh, hs = self.n_head, self.head_size

        def heads(t, n, T):                      # [B, T, n*C] -> n x [B, nh, T, hs]
            t = t.reshape(B, T, n, nh, hs).transpose(2, 0, 3, 1, 4)
            return [t[i] for i in range(n)]
        if self.cross:
            q, = heads(self.q_proj(x), 1, Tq)
            k, v = heads(self.kv_proj(context), 2, Tk)
        else:
            q, k, v = heads(self.c_attn(x), 3, Tq)
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(Tq, 0, dtype)
            layout = self.rope.layout
            q, k = apply_rope(q, cos, sin, layout), apply_rope(k, cos, sin, layout)
        bias = None if self.alibi is None else self.alibi.bias(Tq, Tk, dtype)
        y = scaled_dot_product_attention(
            q, k, v, mask=combine_masks(mask, self._key_padding(key_padding_mask, B, Tk)),
            causal=causal, bias=bias, dropout_p=self.dropout if self.training else 0.0,
            rng=self.rng, scale=1.0 / math.sqrt(hs), block_size=self.block_size)
        y = y.transpose(0, 2, 1, 3).reshape(B, Tq, nh * hs)   # [B, nh, Tq, hs] -> [B, Tq, C]
        return self.resid_dropout(self.c_proj(y))

    def _forward_cached(self, x, context, mask, key_padding_mask, return_weights, cache,
                        causal):
        """`forward` with a `LayerKVCache` (called under no_grad): the new tokens'
        queries attend every cached key, their own included."""
        B, Tq, _ = self._check_input("x", x)
        nh, hs = self.n_head, self.head_size
        if self.cross:
            if cache.length == 0:               # first call: project the encoder output once
                if context is None:
                    raise ValueError("MultiHeadAttention(cross=True): an empty cache needs "
                                     "context, the encoder output [B, Tk, n_embd]")
                Bc = self._check_input("context", context)[0]
                if Bc != B:
                    raise ValueError(f"MultiHeadAttention: x has batch {B}, context has {Bc}")
                cache.append(*_heads(self.kv_proj(context).data, 2, nh))
            q = _heads(self.q_proj(x).data, 1, nh)[0]            # [B, nh, Tq, hs]
            k, v = cache.keys_values()                             # [B, nh, Tk, hs] each
        else:
            if context is not None:
                raise ValueError("MultiHeadAttention: self-attention takes no context")
            q, k, v = _heads(self.c_attn(x).data, 3, nh)          # each [B, nh, Tq, hs]
            if self.rope is not None:                              # slots start .. start+Tq-1
                cos, sin = self.rope.cos_sin(Tq, cache.length, q.dtype)
                layout = self.rope.layout
                q, k = rotate_pairs(q, cos, sin, layout=layout), rotate_pairs(k, cos, sin,
                                                                               layout=layout)
            k, v = cache.append(k, v)                              # [B, nh, L + Tq, hs]
        Tk = k.shape[2]
        # one query attends every key up to itself: the causal mask is all True then
        allowed = combine_masks(allowed_mask(mask, causal and Tq > 1, (B, nh, Tq, Tk)),
                                self._key_padding(key_padding_mask, B, Tk))
        bias = None if self.alibi is None else self.alibi.bias(Tq, Tk, q.dtype)
        y = np.empty((B, Tq, nh, hs), dtype=q.dtype)
        _, p, _ = attention_forward(q, k, v, scale=1.0 / math.sqrt(hs), bias=bias,
                                    allowed=allowed,
                                    dropout_p=self.dropout if self.training else 0.0,
                                    rng=self.rng, out=y.transpose(0, 2, 1, 3))
        y = self.resid_dropout(self.c_proj(Tensor(y.reshape(B, Tq, nh * hs))))
        return (y, read_only(p)) if return_weights else y

    def extra_repr(self) -> str:
        kind = "cross" if self.cross else ("causal" if self.causal else "bidirectional")
        return (f"n_embd={self.n_embd}, n_head={self.n_head}, {kind}, "
                f"dropout={self.dropout:g}")
