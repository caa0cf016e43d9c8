"""Checks of the fused functions of `numpyllm.functional` (each a single graph node with
a hand-written backward), with respect to every input that has a gradient."""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..functional import (cross_entropy, distill_loss, dpo_loss, dropout, embedding, gelu, layer_norm,
                          linear, log_softmax, lora_linear, padding_mask, prefix_lm_mask, relu,
                          rms_norm, scaled_dot_product_attention, sequence_logprob, silu_mul,
                          softmax)
from ..functional.vae import gaussian_kl, reparameterize
from ..nn.positional import RotaryEmbedding, apply_rope
from .case import Case, Check, leaf

__all__ = ["CHECKS"]


def _away_from_zero(rng, *shape):
    """Values with |x| >= 0.1: kinks (relu) stay far from the finite differences."""
    x = rng.standard_normal(shape)
    return Tensor(np.sign(x) * (0.1 + np.abs(x)), requires_grad=True)


def _cross_entropy(reduction, label_smoothing=0.0):
    def build(rng):
        targets = rng.integers(0, 7, size=(2, 4))
        targets[0, 1] = targets[1, 3] = -100          # ignored: no gradient from these rows
        return Case(lambda x: cross_entropy(x, targets, reduction=reduction,
                                            label_smoothing=label_smoothing),
                    (leaf(rng, 2, 4, 7),))
    return build


def _sequence_logprob(average):
    def build(rng):
        targets = rng.integers(0, 7, size=(3, 4))
        targets[0, :2] = targets[1, 3] = -100         # prompt and padding: no gradient there
        return Case(lambda x: sequence_logprob(x, targets, average=average),
                    (leaf(rng, 3, 4, 7),))
    return build


def _dpo_loss(smoothing):
    def build(rng):
        ref_c, ref_r = rng.standard_normal(4), rng.standard_normal(4)    # constants
        return Case(lambda c, r: dpo_loss(c, r, ref_c, ref_r, beta=0.7,
                                          label_smoothing=smoothing),
                    (leaf(rng, 4), leaf(rng, 4)))
    return build


def _distill_loss(alpha, reduction="mean"):
    def build(rng):
        teacher = 2 * rng.standard_normal((2, 4, 7))                    # a constant
        targets = rng.integers(0, 7, size=(2, 4))
        targets[0, 2] = -100                          # ignored: no gradient from this row
        return Case(lambda x: distill_loss(x, teacher, targets, temperature=2.5, alpha=alpha,
                                           reduction=reduction), (leaf(rng, 2, 4, 7),))
    return build


def _embedding(rng):
    ids = rng.integers(0, 4, size=(2, 5))
    ids[0, :4] = np.arange(4)                     # every row used, some twice: backward adds
    return Case(lambda w: embedding(ids, w), (leaf(rng, 4, 3),))


def _dropout(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    return Case(lambda x: dropout(x, 0.3, rng=np.random.default_rng(seed)), (leaf(rng, 4, 6),))


def _apply_rope(layout):
    def build(rng):
        cos, sin = RotaryEmbedding(4).cos_sin(5, offset=3, dtype=np.float64)
        return Case(lambda x: apply_rope(x, cos, sin, layout), (leaf(rng, 2, 2, 5, 4),))
    return build


def _sdpa_grouped(rng):
    """Grouped-query attention: 2 key/value heads, each shared by 3 query heads (broadcast
    over the group axis; backward sums the group's key gradients)."""
    q = leaf(rng, 2, 2, 3, 4, 3)                       # [B, n_kv, group, T, hs]
    k, v = leaf(rng, 2, 2, 1, 4, 3), leaf(rng, 2, 2, 1, 4, 3)
    return Case(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True), (q, k, v))


# --- scaled_dot_product_attention: each mask kind, a bias with a gradient, dropout, and
# the memory-efficient blocked kernels
def _qkv(rng, B, nh, Tq, Tk, hs):
    return leaf(rng, B, nh, Tq, hs), leaf(rng, B, nh, Tk, hs), leaf(rng, B, nh, Tk, hs)


def _sdpa_causal(rng):
    return Case(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True),
                _qkv(rng, 2, 2, 3, 5, 4))


def _sdpa_masks_bias(rng):
    mask = padding_mask([4, 2], 4) & prefix_lm_mask(4, np.array([1, 2]))
    return Case(lambda q, k, v, b: scaled_dot_product_attention(q, k, v, mask=mask, bias=b),
                _qkv(rng, 2, 2, 4, 4, 3) + (leaf(rng, 2, 4, 4),))


def _sdpa_dropout(rng):
    seed = int(rng.integers(2**31))
    return Case(lambda q, k, v: scaled_dot_product_attention(
        q, k, v, causal=True, dropout_p=0.2, rng=np.random.default_rng(seed)),
        _qkv(rng, 2, 2, 4, 4, 3))


def _sdpa_blocked(rng):
    seed = int(rng.integers(2**31))
    mask = padding_mask([5, 3], 5)
    return Case(lambda q, k, v, b: scaled_dot_product_attention(
        q, k, v, mask=mask, causal=True, bias=b, dropout_p=0.2,
        rng=np.random.default_rng(seed), block_size=2),
        _qkv(rng, 2, 2, 5, 5, 3) + (leaf(rng, 2, 5, 5),))


def _lora_linear(rng):
    """Every input: x, W, b, A, B, with an inverted-dropout mask on the adapter's input."""
    mask = (rng.random((2, 3, 4)) >= 0.25) / 0.75
    return Case(lambda x, w, b, a, bb: lora_linear(x, w, b, a, bb, 1.5, mask),
                (leaf(rng, 2, 3, 4), leaf(rng, 4, 5), leaf(rng, 5), leaf(rng, 4, 2),
                 leaf(rng, 2, 5)))


def _gaussian_kl(free_bits=0.0, reduction="mean"):
    """The VAE's KL at mu, logvar [4, 6]. With free bits, three dimensions sit well below
    the floor (no gradient) and three well above it, so that no finite difference
    crosses the clamp."""
    def build(rng):
        mu, logvar = rng.standard_normal((4, 6)), 0.5 * rng.standard_normal((4, 6))
        if free_bits:
            mu[:, :3] *= 0.05                   # KL_j about 0.05 << 0.5: held at the floor
            logvar[:, :3] *= 0.1
            mu[:, 3:] += 2.0 * np.sign(mu[:, 3:])     # KL_j > 2 >> 0.5: the plain gradient
        return Case(lambda m, v: gaussian_kl(m, v, free_bits=free_bits, reduction=reduction),
                    (Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)))
    return build


def _reparameterize(rng):
    eps = rng.standard_normal((3, 5))           # the noise, held fixed
    return Case(lambda m, v: reparameterize(m, v, eps), (leaf(rng, 3, 5), leaf(rng, 3, 5)))


def _function(name, build, shapes) -> Check:
    return Check(name, build, shapes, kind="function")


CHECKS = [
    _function("linear", lambda rng: Case(linear, (leaf(rng, 2, 3, 4), leaf(rng, 4, 5), leaf(rng, 5))),
          "x [2, 3, 4], W [4, 5], b [5]"),
    _function("lora_linear", _lora_linear, "x [2,3,4], W [4,5], A [4,2], B [2,5], mask"),
    _function("softmax", lambda rng: Case(softmax, (leaf(rng, 2, 3, 5),)), "x [2, 3, 5], axis -1"),
    _function("log_softmax", lambda rng: Case(lambda x: log_softmax(x, axis=1), (leaf(rng, 2, 3, 5),)),
          "x [2, 3, 5], axis 1"),
    _function("gelu (tanh)", lambda rng: Case(gelu, (leaf(rng, 3, 8),)), "x [3, 8]"),
    _function("gelu (exact, erf)", lambda rng: Case(lambda x: gelu(x, approximate="none"),
                                                (leaf(rng, 3, 8),)), "x [3, 8]"),
    _function("relu", lambda rng: Case(relu, (_away_from_zero(rng, 3, 8),)), "x [3, 8], |x| >= 0.1"),
    _function("cross_entropy (mean)", _cross_entropy("mean"), "logits [2, 4, 7], 2 ignored"),
    _function("cross_entropy (sum)", _cross_entropy("sum"), "logits [2, 4, 7], 2 ignored"),
    _function("cross_entropy (none)", _cross_entropy("none"), "logits [2, 4, 7], 2 ignored"),
    _function("cross_entropy (smoothing 0.1)", _cross_entropy("mean", 0.1),
              "logits [2, 4, 7], 2 ignored"),
    _function("cross_entropy (none, smoothing)", _cross_entropy("none", 0.3),
              "logits [2, 4, 7], 2 ignored"),
    _function("sequence_logprob (sum)", _sequence_logprob(False), "logits [3, 4, 7], 3 ignored"),
    _function("sequence_logprob (mean)", _sequence_logprob(True), "logits [3, 4, 7], 3 ignored"),
    _function("dpo_loss", _dpo_loss(0.0), "logps [4] x2, beta 0.7"),
    _function("distill_loss (alpha 0.5)", _distill_loss(0.5), "logits [2, 4, 7], T 2.5"),
    _function("distill_loss (alpha 1, none)", _distill_loss(1.0, "none"),
              "logits [2, 4, 7], T 2.5"),
    _function("dpo_loss (label smoothing 0.2)", _dpo_loss(0.2), "logps [4] x2, beta 0.7"),
    _function("rms_norm", lambda rng: Case(rms_norm, (leaf(rng, 2, 3, 8), leaf(rng, 8))),
              "x [2, 3, 8], w [8]"),
    _function("silu_mul (SwiGLU)", lambda rng: Case(silu_mul, (leaf(rng, 3, 8), leaf(rng, 3, 8))),
              "a, b [3, 8]"),
    _function("layer_norm", lambda rng: Case(layer_norm, (leaf(rng, 2, 3, 8), leaf(rng, 8),
                                                      leaf(rng, 8))), "x [2, 3, 8], w [8], b [8]"),
    _function("embedding", _embedding, "ids [2, 5] of 4, W [4, 3]"),
    _function("dropout", _dropout, "x [4, 6], p 0.3"),
    _function("apply_rope", _apply_rope("interleaved"), "x [2,2,5,4], positions 3..7"),
    _function("apply_rope (half)", _apply_rope("half"), "x [2,2,5,4], positions 3..7"),
    _function("sdpa grouped-query", _sdpa_grouped, "q [2,2,3,4,3], k v [2,2,1,4,3]"),
    _function("sdpa causal, Tq < Tk", _sdpa_causal, "q [2,2,3,4], k v [2,2,5,4]"),
    _function("sdpa padding+prefix, bias", _sdpa_masks_bias, "qkv [2,2,4,3], bias [2,4,4]"),
    _function("sdpa dropout 0.2", _sdpa_dropout, "q, k, v [2, 2, 4, 3]"),
    _function("sdpa blocked causal+padding", _sdpa_blocked, "qkv[2,2,5,3] bias drop 0.2"),
    _function("vae gaussian_kl (mean)", _gaussian_kl(), "mu, logvar [4, 6]"),
    _function("vae gaussian_kl (none)", _gaussian_kl(reduction="none"), "mu, logvar [4, 6]"),
    _function("vae gaussian_kl (free bits 0.5)", _gaussian_kl(0.5), "mu, logvar [4, 6], 3 held"),
    _function("vae reparameterize", _reparameterize, "mu, logvar, eps [3, 5]"),
]
