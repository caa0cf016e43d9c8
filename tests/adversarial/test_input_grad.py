"""Input gradients: the one-hot gradient is the gradient of the one-hot path, the swap
scores predict the exact loss change of a swap, and the weights are left alone."""
import numpy as np
import pytest

from numpyllm.adversarial import input_gradient, one_hot_gradient, swap_scores, token_table
from numpyllm.autograd import Tensor, no_grad
from numpyllm.checks.case import perturb
from numpyllm.nn import TransformerEncoderConfig, TransformerEncoderModel
from numpyllm.nn.gpt import GPT, GPTConfig

V = 17


def _gpt(seed=0, std=0.1):
    model = GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=2, n_head=2, n_embd=16,
                          dtype="float64"), rng=seed)
    return perturb(model, np.random.default_rng(seed + 1), std)


def test_one_hot_gradient_is_the_gradient_of_the_one_hot_path():
    """Feed ``onehot @ E`` through autograd and differentiate the one-hot itself."""
    model = _gpt()
    rng = np.random.default_rng(0)
    ids, y = rng.integers(0, V, (2, 5)), rng.integers(0, V, (2, 5))
    E = token_table(model)                                         # [V, C]
    onehot = Tensor(np.eye(V)[ids], requires_grad=True)            # [B, T, V]
    model(inputs_embeds=onehot @ Tensor(E), targets=y)[1].backward()
    _, grad = input_gradient(model, ids, lambda e: model(inputs_embeds=e, targets=y)[1])
    np.testing.assert_allclose(one_hot_gradient(grad, E), onehot.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("seed", range(4))
def test_swap_scores_predict_the_exact_loss_change(seed):
    """First order only, so not equal; but across every single-token swap the estimate
    and the exact change move together (seen failing with the sign flipped)."""
    model = _gpt(seed)
    rng = np.random.default_rng(seed)
    ids, y = rng.integers(0, V, (1, 6)), rng.integers(0, V, (1, 6))
    loss, grad = input_gradient(model, ids, lambda e: model(inputs_embeds=e, targets=y)[1])
    scores = swap_scores(grad, token_table(model), ids)            # [1, 6, V]
    estimate, exact = [], []
    with no_grad():
        for t in range(6):
            assert scores[0, t, ids[0, t]] == 0.0
            for v in range(V):
                if v != ids[0, t]:
                    swapped = ids.copy()
                    swapped[0, t] = v
                    exact.append(model(swapped, y)[1].item() - loss)
                    estimate.append(scores[0, t, v])
    assert np.corrcoef(estimate, exact)[0, 1] > 0.7


def test_the_weights_are_untouched():
    model = _gpt()
    model.wte.requires_grad_(False)
    ids = np.array([[1, 2, 3]])
    model(ids, ids)[1].backward()
    before = {n: (p.requires_grad, None if p.grad is None else p.grad.copy())
              for n, p in model.named_parameters()}
    input_gradient(model, ids, lambda e: model(inputs_embeds=e, targets=ids)[1])
    for n, p in model.named_parameters():
        requires, grad = before[n]
        assert p.requires_grad == requires, n
        assert (p.grad is None and grad is None) or np.array_equal(p.grad, grad), n


def test_the_encoder_table_is_what_it_reads():
    """The scaled encoder reads embed·√d: the table's rows are those vectors."""
    enc = TransformerEncoderModel(TransformerEncoderConfig(vocab_size=V, d_model=8, n_head=2,
                                                           n_layers=1, dtype="float64"), rng=0)
    ids = np.array([[3, 1, 4, 1, 5]])
    np.testing.assert_array_equal(token_table(enc)[ids], enc.token_embeddings(ids).data)


def test_a_loss_that_is_not_a_scalar_is_refused():
    model = _gpt()
    with pytest.raises(ValueError, match="scalar Tensor"):
        input_gradient(model, np.array([[1, 2]]), lambda e: model(inputs_embeds=e)[0])
