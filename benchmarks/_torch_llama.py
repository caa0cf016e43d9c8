"""The PyTorch reference of the LLaMA-family decoding benchmark: a Llama written with
torch.nn.functional on a dict of tensors, and a hand-written KV-cache greedy decoder.

The tensors are Hugging Face's (a ``LlamaForCausalLM`` state dict, ``model.`` prefix
optional): ``embed_tokens.weight`` ``[V, C]``, ``layers.{i}.input_layernorm.weight``,
``layers.{i}.self_attn.{q,k,v,o}_proj.weight``, ``layers.{i}.post_attention_layernorm
.weight``, ``layers.{i}.mlp.{gate,up,down}_proj.weight``, ``norm.weight``, and
``lm_head.weight`` unless the head is tied to the embedding, and Qwen2's
``layers.{i}.self_attn.{q,k,v}_proj.bias`` when present. Linear weights are
``[out, in]`` as nn.Linear stores them.

The forward is Hugging Face's Llama (and Qwen2's: the same with q/k/v biases), written
out (no dropout; a sliding window is not supported):

    h = rms_norm(x);  q, k, v = h Wqᵀ (+ bq), h Wkᵀ (+ bk), h Wvᵀ (+ bv)
    q, k = rope(q), rope(k)                     (rotate-half)
    x = x + o_proj(attention(q, k, v))          grouped-query: n_kv_head key/value heads
    h = rms_norm(x);  x = x + down(silu(gate(h)) * up(h))
    logits = rms_norm(x) Eᵀ  (tied) or lm_head(...)

- RMSNorm is ``F.rms_norm`` (one ATen kernel), RoPE's cosines and sines are computed
  once for every position of the generation (angles in float64, as numpyllm, then cast).
- The cache holds the ``n_kv_head`` heads only (``[1, n_kv, T_max, hs]`` per layer,
  preallocated). A decoding step's query heads are viewed as ``[1, n_kv, group, hs]``:
  the ``group`` queries that share a key/value head become the "rows" of one
  ``F.scaled_dot_product_attention`` call against that head's keys (one query position
  needs no mask), so no key or value is ever repeated. The prefill, causal over the
  prompt, uses sdpa's ``enable_gqa``.

Two layouts of the projection weights, the same math (as `_torch_gpt`): ``"out_in"``
(nn.Linear's ``[out, in]``, ``F.linear``; the default) and ``"in_out"`` (``[in, out]``
contiguous, ``h @ w``, and the head as a ``[C, V]`` copy of its weight: on the machine
these benchmarks were written on, MKL's matrix-vector products are faster that way, the
LM head's by 1.7x). It imports torch: only PyTorch workers import it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def rope_cos_sin(n_pos: int, head_dim: int, theta: float, dtype=torch.float32) -> tuple:
    """``(cos, sin)`` ``[n_pos, head_dim]`` in Hugging Face's half layout (each angle
    twice: ``cat(freqs, freqs)``); angles ``pos · theta^(-2i/head_dim)`` in float64."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    freqs = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class TorchLlama:
    """A LLaMA-family decoder over Hugging Face-named tensors (Linear weights ``[out, in]``).

    `cfg`: ``n_layer``, ``n_head``, ``n_kv_head``, ``head_dim``, ``rope_theta``,
    ``rms_norm_eps`` (a dict, as the benchmark's model table has them; a
    ``sliding_window`` other than None is refused)."""

    def __init__(self, tensors: dict, cfg: dict, *, layout: str = "out_in",
                 requires_grad: bool = False):
        if layout not in ("out_in", "in_out"):
            raise ValueError(f"layout must be 'out_in' or 'in_out', got {layout!r}")
        if cfg.get("sliding_window") is not None:
            raise ValueError("TorchLlama: sliding-window attention is not written here")
        self.layout = layout
        self.n_layer, self.n_head, self.n_kv = cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"]
        self.hs = cfg["head_dim"]
        self.group = self.n_head // self.n_kv
        self.theta, self.eps = float(cfg["rope_theta"]), float(cfg["rms_norm_eps"])
        self.p = {}
        for name, t in tensors.items():
            name = name[len("model."):] if name.startswith("model.") else name
            if layout == "in_out" and any(name.endswith(f"{lin}.weight") for lin in LINEARS):
                t = t.t().contiguous()                          # [out, in] -> [in, out]
            self.p[name] = t.requires_grad_(requires_grad)
        self.head_w = self.p.get("lm_head.weight", self.p["embed_tokens.weight"])   # [V, C]
        # in_out: the head too as a contiguous [C, V] (a transposed copy of a tied
        # embedding: V·C more floats), which MKL multiplies by one row faster
        self.head_in_out = self.head_w.t().contiguous() if layout == "in_out" else None

    def parameters(self) -> list:
        return list(self.p.values())

    # ------------------------------------------------------------------ the math
    def _lin(self, name: str, h):
        w, b = self.p[name + ".weight"], self.p.get(name + ".bias")
        if self.layout == "out_in":
            return F.linear(h, w, b)                            # nn.Linear: h @ wᵀ + b
        if b is None:
            return h @ w
        out = torch.addmm(b, h.reshape(-1, w.shape[0]), w)      # b + h @ w
        return out.view(*h.shape[:-1], w.shape[1])

    def _head(self, h):
        """Logits ``[..., V]`` of hidden states ``[..., C]``."""
        return F.linear(h, self.head_w) if self.head_in_out is None else h @ self.head_in_out

    def _norm(self, name: str, x):
        return F.rms_norm(x, (x.shape[-1],), self.p[name + ".weight"], self.eps)

    def _layer(self, i: int, x, cos, sin, k_cache, v_cache, pos: int):
        """One decoder layer over the new tokens x ``[1, T, C]`` at slots pos .. pos+T-1,
        writing their keys and values into the cache; or, with no cache (training), over a
        batch ``[B, T, C]`` of whole sequences."""
        B, T, _ = x.shape
        pre = f"layers.{i}."
        nh, nkv, hs, g = self.n_head, self.n_kv, self.hs, self.group
        h = self._norm(pre + "input_layernorm", x)
        q = self._lin(pre + "self_attn.q_proj", h).view(B, T, nh, hs).transpose(1, 2)
        k = self._lin(pre + "self_attn.k_proj", h).view(B, T, nkv, hs).transpose(1, 2)
        v = self._lin(pre + "self_attn.v_proj", h).view(B, T, nkv, hs).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin                      # [1, nh, T, hs]
        k = k * cos + rotate_half(k) * sin                      # [1, nkv, T, hs]
        if k_cache is None:                                     # training: no cache
            keys, values = k, v
        else:
            k_cache[:, :, pos:pos + T] = k
            v_cache[:, :, pos:pos + T] = v
            keys, values = k_cache[:, :, :pos + T], v_cache[:, :, :pos + T]
        if T == 1:
            # the g query heads of a kv head as g query rows of one attention call
            y = F.scaled_dot_product_attention(q.reshape(B, nkv, g, hs), keys, values)
            y = y.reshape(B, 1, nh * hs)                        # heads in order: kv*g + j
        else:
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=True,
                                               enable_gqa=True)  # [1, nh, T, hs]
            y = y.transpose(1, 2).reshape(B, T, nh * hs)
        x = x + self._lin(pre + "self_attn.o_proj", y)
        h = self._norm(pre + "post_attention_layernorm", x)
        gate = F.silu(self._lin(pre + "mlp.gate_proj", h))
        return x + self._lin(pre + "mlp.down_proj", gate * self._lin(pre + "mlp.up_proj", h))

    def logits(self, idx):
        """Logits ``[1, T, V]`` of token ids `idx` ``[1, T]`` (no cache kept)."""
        T = idx.shape[1]
        cos, sin = rope_cos_sin(T, self.hs, self.theta)
        caches = [torch.empty(1, self.n_kv, T, self.hs) for _ in range(2)]
        x = F.embedding(idx, self.p["embed_tokens.weight"])
        for i in range(self.n_layer):
            x = self._layer(i, x, cos, sin, *caches, 0)
        return self._head(self._norm("norm", x))

    def loss(self, idx, targets):
        """The training loss of a batch ``idx [B, T]``: mean cross-entropy of the
        next-token logits (the whole sequence, causal, no cache)."""
        T = idx.shape[1]
        cos, sin = rope_cos_sin(T, self.hs, self.theta)
        x = F.embedding(idx, self.p["embed_tokens.weight"])
        for i in range(self.n_layer):
            x = self._layer(i, x, cos, sin, None, None, 0)
        logits = self._head(self._norm("norm", x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    # ------------------------------------------------------------------ decoding
    def generate(self, prompt, new_tokens: int) -> list:
        """Greedy continuation of `prompt` (a list of ids) by `new_tokens` tokens with a
        key/value cache: one forward over the prompt (prefill), then one token per step.
        The head runs on the last position only. Returns prompt + new tokens, as
        numpyllm's `generate`."""
        total = len(prompt) + new_tokens
        with torch.inference_mode():
            cos_all, sin_all = rope_cos_sin(total, self.hs, self.theta)
            k_cache = [torch.empty(1, self.n_kv, total, self.hs) for _ in range(self.n_layer)]
            v_cache = [torch.empty(1, self.n_kv, total, self.hs) for _ in range(self.n_layer)]
            out = list(prompt)
            ids = torch.tensor([prompt])
            pos = 0
            for _ in range(new_tokens):
                T = ids.shape[1]
                cos, sin = cos_all[pos:pos + T], sin_all[pos:pos + T]     # [T, hs]
                x = F.embedding(ids, self.p["embed_tokens.weight"])
                for i in range(self.n_layer):
                    x = self._layer(i, x, cos, sin, k_cache[i], v_cache[i], pos)
                x = self._norm("norm", x[:, -1])
                nxt = int(self._head(x).argmax(-1))
                out.append(nxt)
                pos += T
                ids = torch.tensor([[nxt]])
        return out
