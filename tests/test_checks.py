"""Every check of ``numpyllm gradcheck`` under pytest: each passes, and each fails when any
one input's gradient is corrupted (the mutation test; the score must be 100%).

Also: the simulated corruption of `numpyllm.autograd.mutation` judges as a really wrong
backward does, on the cases that a review found the old checks passing (a zeroed layer-norm
gain in GPT, a zeroed attention weight in the encoder-decoder, every gain scaled by 1.01).
"""
import numpy as np
import pytest

from numpyllm import functional as F
from numpyllm.autograd import Function, gradcheck_report
from numpyllm.autograd.gradcheck import measure
from numpyllm.autograd.mutation import score_measurements
from numpyllm.checks import all_checks
from numpyllm.checks.models import _gpt, _seq2seq

CHECKS = all_checks()


def _judge_options(check):
    return {k: v for k, v in check.options if k in ("atol", "rtol")}


def _measure_options(check):
    return {k: v for k, v in check.options if k not in ("atol", "rtol")}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.kind}: {c.name} {c.shapes}")
def test_check_passes_and_catches_every_corrupted_gradient(check):
    case = check.make(np.random.default_rng(0))
    m = measure(case.fn, *case.inputs, **_measure_options(check))
    result = m.judge(**_judge_options(check))
    assert result.ok, "\n".join(result.failures)
    report = score_measurements(m, names=case.names, **_judge_options(check))
    assert len(report.mutants) == 3 * len(m.indices)
    assert report.score == 1.0, f"survivors: {report.describe_survivors()}"


@pytest.mark.parametrize("check", [c for c in CHECKS if c.kind != "op"],
                         ids=lambda c: f"{c.kind}: {c.name}")
def test_check_passes_at_another_seed(check):
    """The op rows get many seeds from hypothesis (tests/autograd/test_ops.py)."""
    case = check.make(np.random.default_rng(1))
    result = gradcheck_report(case.fn, *case.inputs, **dict(check.options))
    assert result.ok, "\n".join(result.failures)


def test_the_list_covers_what_the_issue_names():
    names = {c.name for c in CHECKS}
    for positions in ("learned", "sinusoidal", "rope", "alibi"):
        for norm in ("pre", "post"):
            assert f"GPT ({positions}, {norm}-LN)" in names
            assert f"GPT ({positions}, {norm}-LN, no bias)" in names
    for name in ("Transformer (post-LN)", "Encoder (learned pos, tied)", "MHA cross",
                 "MHA causal", "MHA blocked causal RoPE", "sdpa blocked causal+padding",
                 "clip (min only)", "clip (max only)"):
        assert name in names
    kinds = {c.kind for c in CHECKS}
    assert {"op", "function", "layer", "model"} <= kinds


# ------------------------------------------------------------------ real corruptions
class _Corrupt(Function):
    """Identity forward; backward hands back a corrupted gradient (a wrong backward)."""

    @staticmethod
    def forward(ctx, w, how):
        ctx.how = how
        return w

    @staticmethod
    def backward(ctx, g):
        return ctx.how(g), None


def _corrupt_layer_norm(ln, how):
    """Make `ln`'s weight gradient wrong, through the engine, as a buggy backward would."""
    ln.forward = lambda x: F.layer_norm(x, _Corrupt.apply(ln.weight, how), ln.bias, eps=ln.eps)


def _corrupt_linear(lin, how):
    lin.forward = lambda x: F.linear(x, _Corrupt.apply(lin.weight, how), lin.bias)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "alibi"])
@pytest.mark.parametrize("how, label", [(lambda g: 0 * g, "zeroed"),
                                        (lambda g: 1.01 * g, "scaled by 1.01")])
def test_a_wrong_layer_norm_gain_gradient_fails_the_gpt_check(positions, how, label):
    case = _gpt(positions=positions, norm="pre", bias=True)(np.random.default_rng(0))
    model = case.module
    assert gradcheck_report(case.fn, *case.inputs).ok
    _corrupt_layer_norm(model.h[0].ln_1, how)
    result = gradcheck_report(case.fn, *case.inputs)
    assert not result.ok
    target = [i for i, n in case.names.items() if n == "h.0.ln_1.weight"][0]
    assert all(f.startswith(f"input {target} ") for f in result.failures), result.failures
    # the simulated mutant of the clean measurements is judged the same way
    clean = _gpt(positions=positions, norm="pre", bias=True)(np.random.default_rng(0))
    report = score_measurements(measure(clean.fn, *clean.inputs), names=clean.names)
    assert [m.caught for m in report.mutants
            if m.name == "h.0.ln_1.weight" and m.mutation == label] == [True]


def test_a_zeroed_attention_weight_gradient_fails_the_encoder_decoder_check():
    case = _seq2seq(norm="pre")(np.random.default_rng(0))
    model = case.module
    assert gradcheck_report(case.fn, *case.inputs).ok
    _corrupt_linear(model.encoder.layers[0].self_attn.c_attn, lambda g: 0 * g)
    result = gradcheck_report(case.fn, *case.inputs)
    target = [i for i, n in case.names.items()
              if n == "encoder.layers.0.self_attn.c_attn.weight"][0]
    assert not result.ok and all(f.startswith(f"input {target} ") for f in result.failures)
