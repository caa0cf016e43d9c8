"""A whole GPT, forward and backward, against the same model written in PyTorch.

The PyTorch model is nanoGPT's forward written with torch.nn.functional, reading the
very same weight arrays (GPT-2 layout, [in, out]). Logits, loss and the gradient of
every parameter must agree: to 1e-10 in float64, to about 1e-5 in float32.
"""
import math

import numpy as np
import pytest

from numpyllm.nn.gpt import GPT, GPTConfig

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def torch_gpt(params: dict, cfg: GPTConfig, idx: np.ndarray, targets: np.ndarray):
    """nanoGPT's forward on torch tensors `params` (same names as numpyllm's)."""
    p = params
    B, T = idx.shape
    C, nh = cfg.n_embd, cfg.n_head
    idx_t = torch.tensor(idx)
    x = p["wte.weight"][idx_t] + p["wpe.weight"][:T]
    for i in range(cfg.n_layer):
        pre = f"h.{i}."
        h = TF.layer_norm(x, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], cfg.layer_norm_eps)
        qkv = h @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + (y @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"])
        h = TF.layer_norm(x, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], cfg.layer_norm_eps)
        h = TF.gelu(h @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"], approximate="tanh")
        x = x + (h @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"])
    x = TF.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], cfg.layer_norm_eps)
    logits = x @ p["wte.weight"].T
    loss = TF.cross_entropy(logits.view(-1, logits.size(-1)), torch.tensor(targets).view(-1),
                            ignore_index=-100)
    return logits, loss


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-5)])
def test_gpt_forward_and_backward_match_torch(dtype, tol):
    cfg = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_embd=32, dtype=dtype)
    model = GPT(cfg, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 37, size=(3, 16))
    targets = rng.integers(0, 37, size=(3, 16))
    targets[0, :4] = -100                        # some ignored positions

    logits, loss = model(idx, targets=targets)
    loss.backward()

    tparams = {n: torch.tensor(p.data.copy(), requires_grad=True)
               for n, p in model.named_parameters()}
    t_logits, t_loss = torch_gpt(tparams, cfg, idx, targets)
    t_loss.backward()

    scale = max(1.0, float(np.abs(logits.data).max()))
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=tol)
    for name, p in model.named_parameters():
        g_t = tparams[name].grad.numpy()
        np.testing.assert_allclose(p.grad, g_t, rtol=tol * 10, atol=tol * np.abs(g_t).max(),
                                   err_msg=name)
        assert p.grad.dtype == np.dtype(dtype)


def test_initial_loss_matches_ln_vocab_in_both():
    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32, dtype="float64")
    model = GPT(cfg, rng=np.random.default_rng(3))
    rng = np.random.default_rng(4)
    # independent targets: with a tied head, targets == inputs would score above chance
    idx, targets = rng.integers(0, 65, size=(2, 2, 32))
    _, loss = model(idx, targets=targets)
    tparams = {n: torch.tensor(p.data) for n, p in model.named_parameters()}
    _, t_loss = torch_gpt(tparams, cfg, idx, targets)
    assert abs(loss.item() - t_loss.item()) < 1e-10
    assert abs(loss.item() - math.log(65)) < 0.1
