"""The mutation test of a check: corrupted gradients must fail it; a weak check is shown."""
import numpy as np
import pytest

from numpyllm.autograd import Tensor
from numpyllm.autograd.mutation import MUTATIONS, gradcheck_mutants
from numpyllm.nn.gpt import GPT, GPTConfig


def rand(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("shape", [(3, 4), (40, 30)])      # Jacobian, and projections
def test_every_mutant_of_a_sound_check_is_caught(shape):
    report = gradcheck_mutants(lambda a, b: (a.tanh() * b).sum(axis=-1), rand(*shape),
                               rand(*shape, seed=1), names={0: "a", 1: "b"})
    assert report.clean_ok and report.score == 1.0 and report.survivors == []
    assert [(m.name, m.mutation.split(" of ")[0]) for m in report.mutants] == \
        [(n, k.split(" flipped")[0]) for n in "ab" for k in MUTATIONS]
    assert all(m.err_ratio > 1 for m in report.mutants)


def test_a_loose_tolerance_lets_a_scaled_gradient_survive():
    report = gradcheck_mutants(lambda a: (a * a).sum(), rand(3, 4), rtol=0.02)
    assert report.clean_ok and report.score == pytest.approx(2 / 3)
    assert [m.mutation for m in report.survivors] == ["scaled by 1.01"]
    assert "scaled by 1.01" in report.describe_survivors()


def test_an_input_the_check_never_reaches_is_reported():
    # b's gradient is zero wherever this check looks: the check proves nothing about it
    report = gradcheck_mutants(lambda a, b: (a * a).sum() + 0 * b.sum(), rand(3), rand(2))
    assert {m.input for m in report.survivors} == {1}
    assert len(report.survivors) == 3
    assert all("zero" in m.why for m in report.survivors)


def test_the_old_absolute_tolerance_misses_corrupted_gpt_gradients():
    """What the review found: at initial weights, an absolute tolerance of 1e-5 (scaled by
    sqrt(size) in projections, 1e-3 here) passes zeroed gradients of a small GPT's
    parameters; the default tolerance model catches them all."""
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8,
                    dtype="float64", positions="sinusoidal")
    model = GPT(cfg, rng=np.random.default_rng(0))
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 13, (2, 5)), rng.integers(0, 13, (2, 5))
    names = {i: n for i, (n, _) in enumerate(model.named_parameters())}
    params = list(model.parameters())

    def loss(*_):
        return model(x, targets=y)[1]
    weak = gradcheck_mutants(loss, *params, names=names, atol=1e-3, n_projections=2)
    assert weak.clean_ok and weak.score < 0.9
    assert any(m.mutation == "zeroed" for m in weak.survivors)
    sound = gradcheck_mutants(loss, *params, names=names, n_projections=2)
    assert sound.clean_ok and sound.score == 1.0


def test_a_flip_targets_the_largest_element():
    x = Tensor(np.array([0.1, -3.0, 0.5]), requires_grad=True)
    report = gradcheck_mutants(lambda t: (t * t).sum(), x)
    assert report.mutants[2].mutation == "sign of element [1] flipped"
