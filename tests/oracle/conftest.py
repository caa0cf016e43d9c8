"""Hugging Face models computing in float64 for 1e-10 comparisons: the `hf_float64`
fixture of the oracle tests (its functions are below).

transformers computes a few things in float32 even in a float64 model, for the sake of
half-precision ones: RoPE's angles (its inverse frequencies too), RMSNorm's
normalisation, and the eager attention's softmax. Each function here replaces one of
them by the same formula in the input's dtype; the model's math is unchanged.
"""
import importlib
import types

import pytest


def float64_rope(rotary, theta: float, head_dim: int) -> None:
    """A rotary embedding module whose angles are computed in float64."""
    import torch
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)

    def forward(x, position_ids):
        freqs = position_ids[..., None].double() * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    rotary.forward = forward


def float64_rms_norms(model) -> None:
    """Every RMSNorm of `model` normalising in its input's dtype."""
    import torch
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            def forward(x, module=module):
                variance = x.pow(2).mean(-1, keepdim=True)
                return module.weight * (x * torch.rsqrt(variance + module.variance_epsilon))
            module.forward = forward


def float64_softmax(monkeypatch, arch: str) -> None:
    """transformers.models.<arch>'s eager attention with its softmax in the input's dtype
    (float32 inputs keep the original)."""
    import torch
    module = importlib.import_module(f"transformers.models.{arch}.modeling_{arch}")
    original = module.eager_attention_forward
    repeat = getattr(module, "repeat_kv", None)

    def eager(mod, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if query.dtype != torch.float64:
            return original(mod, query, key, value, attention_mask, scaling, dropout, **kwargs)
        groups = getattr(mod, "num_key_value_groups", 1)
        k = repeat(key, groups) if repeat is not None else key
        v = repeat(value, groups) if repeat is not None else value
        w = torch.matmul(query, k.transpose(2, 3)) * scaling
        if attention_mask is not None:
            w = w + attention_mask
        w = torch.nn.functional.softmax(w, dim=-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous(), w
    monkeypatch.setattr(module, "eager_attention_forward", eager)


@pytest.fixture
def hf_float64(monkeypatch):
    """The functions above, with `float64_softmax(arch)` bound to this test's monkeypatch."""
    return types.SimpleNamespace(
        rope=float64_rope, rms_norms=float64_rms_norms,
        softmax=lambda arch: float64_softmax(monkeypatch, arch))
