"""The PyTorch reference model of the benchmarks: nanoGPT's GPT written with
torch.nn.functional on a dict of tensors, and a hand-written KV-cache greedy decoder.

The tensors are named as numpyllm's (and GPT-2's) parameters: ``wte.weight``,
``wpe.weight``, ``h.{i}.ln_1.weight``, ``h.{i}.attn.c_attn.weight`` ... The forward is
nanoGPT's: ``F.embedding``, pre-LN blocks with ``F.layer_norm``,
``F.scaled_dot_product_attention`` (causal), tanh-GELU, the LM head tied to ``wte``,
``F.cross_entropy``; dropout 0 (nanoGPT's CPU recipe), so no dropout call. Biases are
used when present.

Two layouts of the projection weights, the same math:

- ``"out_in"``: ``[out, in]`` contiguous, each projection ``F.linear(h, w, b)``: what
  nanoGPT's ``nn.Linear`` stores and calls;
- ``"in_out"``: ``[in, out]`` as numpyllm and GPT-2's checkpoint store them, each
  projection ``torch.addmm(b, h, w)`` (or ``h @ w``): what Hugging Face's GPT-2
  ``Conv1D`` does.

On the machine these benchmarks were written on, MKL's matrix-vector products (one token
of decoding) are faster with ``in_out``; the decoding benchmark uses it so that the
reference is the faster PyTorch. It imports torch: only PyTorch workers import it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class TorchGPT:
    """nanoGPT's GPT over numpyllm-named arrays (Linear weights ``[in, out]``)."""

    def __init__(self, arrays: dict, n_layer: int, n_head: int, *, layout: str = "out_in",
                 requires_grad: bool = False, eps: float = 1e-5):
        if layout not in ("out_in", "in_out"):
            raise ValueError(f"layout must be 'out_in' or 'in_out', got {layout!r}")
        self.n_layer, self.n_head, self.layout, self.eps = n_layer, n_head, layout, eps
        self.p = {}
        for name, a in arrays.items():
            t = torch.from_numpy(a.copy())
            if layout == "out_in" and any(name.endswith(f"{lin}.weight") for lin in LINEARS):
                t = t.t().contiguous()                          # [in, out] -> [out, in]
            self.p[name] = t.requires_grad_(requires_grad)

    def parameters(self) -> list:
        return list(self.p.values())

    # ------------------------------------------------------------------ the math
    def _lin(self, name: str, h):
        w, b = self.p[name + ".weight"], self.p.get(name + ".bias")
        if self.layout == "out_in":
            return F.linear(h, w, b)                            # nn.Linear: h @ wᵀ + b
        if b is None:
            return h @ w
        out = torch.addmm(b, h.reshape(-1, w.shape[0]), w)      # Conv1D: b + h @ w
        return out.view(*h.shape[:-1], w.shape[1])

    def _ln(self, name: str, x):
        return F.layer_norm(x, (x.shape[-1],), self.p[name + ".weight"],
                            self.p.get(name + ".bias"), self.eps)

    def _block(self, i: int, x, attend):
        """One pre-LN block; `attend(q, k, v)` does the attention ([B, nh, T, hs] each)."""
        B, T, C = x.shape
        pre = f"h.{i}."
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # [B, nh, T, hs]
                   for t in self._lin(pre + "attn.c_attn", self._ln(pre + "ln_1", x)).split(C, dim=2))
        y = attend(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self._lin(pre + "attn.c_proj", y)
        h = F.gelu(self._lin(pre + "mlp.c_fc", self._ln(pre + "ln_2", x)), approximate="tanh")
        return x + self._lin(pre + "mlp.c_proj", h)

    def logits(self, idx):
        """Logits [B, T, V] of token ids `idx` [B, T]."""
        T = idx.shape[1]
        wte = self.p["wte.weight"]
        x = F.embedding(idx, wte) + F.embedding(torch.arange(T), self.p["wpe.weight"])
        causal = (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        for i in range(self.n_layer):
            x = self._block(i, x, causal)
        return F.linear(self._ln("ln_f", x), wte)              # tied head

    def loss(self, idx, targets):
        """nanoGPT's training loss: mean cross-entropy of the next-token logits."""
        logits = self.logits(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    # ------------------------------------------------------------------ decoding
    def generate(self, prompt, new_tokens: int) -> list:
        """Greedy continuation of `prompt` (a list of ids) by `new_tokens` tokens with a
        key/value cache: one forward over the prompt (prefill), then one token per step,
        each attending to the cached keys and values of all earlier positions. The cache
        is preallocated ([1, nh, T_max, hs] per layer); the head runs on the last position
        only. Returns prompt + new tokens, as numpyllm's `generate`."""
        C = self.p["wte.weight"].shape[1]
        hs = C // self.n_head
        total = len(prompt) + new_tokens
        with torch.inference_mode():
            k_cache = [torch.empty(1, self.n_head, total, hs) for _ in range(self.n_layer)]
            v_cache = [torch.empty(1, self.n_head, total, hs) for _ in range(self.n_layer)]
            out = list(prompt)
            ids = torch.tensor([prompt])
            pos = 0
            for _ in range(new_tokens):
                T = ids.shape[1]
                x = F.embedding(ids, self.p["wte.weight"]) + self.p["wpe.weight"][pos:pos + T]
                for i in range(self.n_layer):
                    def attend(q, k, v, i=i):
                        k_cache[i][:, :, pos:pos + T] = k
                        v_cache[i][:, :, pos:pos + T] = v
                        # the prefill (pos 0) is causal over the prompt; a decoding step's
                        # single query sees every cached position: no mask
                        return F.scaled_dot_product_attention(
                            q, k_cache[i][:, :, :pos + T], v_cache[i][:, :, :pos + T],
                            is_causal=T > 1)
                    x = self._block(i, x, attend)
                x = self._ln("ln_f", x[:, -1])
                nxt = int(F.linear(x, self.p["wte.weight"]).argmax(-1))
                out.append(nxt)
                pos += T
                ids = torch.tensor([[nxt]])
        return out
